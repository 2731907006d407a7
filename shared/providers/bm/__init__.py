"""Google Business Messages (shut down by Google on 2024-07-31; RBM is its live successor).

`webhook.py` answers the handshake and checks signatures, `normalise.py` turns a payload
into the product's events, `read_receipts.py` sends the agent's READ receipt. This module
holds the provider's vocabulary and its registry entry, whose loaders import them when
first used.
"""

from __future__ import annotations

from typing import Any

from shared.core import routing
from shared.core.events import StatusScale
from shared.core.provider import Normaliser, Provider, ReadReceiptPart, WebhookPart

NAME = "bm"
SCALE = StatusScale({"DELIVERED": 1, "READ": 2})
KINDS = (
    "message",
    "receipts",
    "suggestionResponse",
    "authenticationResponse",
    "userStatus",
    "surveyResponse",
)
UNKNOWN = "unknown"
# User messages that carry a message name, and so get the agent's READ receipt.
READABLE_KINDS = frozenset({"message", "suggestionResponse"})


def kind_of(document: Any) -> str:
    if isinstance(document, dict):
        for kind in KINDS:
            if kind in document:
                return kind
    return UNKNOWN


def topic_key(kind: str) -> str:
    return routing.READABLE if kind in READABLE_KINDS else routing.EVENTS


def _webhook() -> WebhookPart:
    from shared.providers.bm import webhook

    return webhook


def _normaliser() -> Normaliser:
    from shared.providers.bm import normalise

    return normalise


def _read_receipts() -> ReadReceiptPart:
    from shared.providers.bm import read_receipts

    return read_receipts


PROVIDER = Provider(
    name=NAME,
    title="Business Messages",
    route="",
    switch=("BM_SIGNING_KEY", "BM_CLIENT_TOKEN"),
    topic_key=topic_key,
    scale=SCALE,
    # Business Messages has no SENT receipt: a send record only dates the message.
    sent_status="SENT",
    # Google redelivers for 7 days: a 503 while Pub/Sub is down loses nothing.
    spools_by_default=False,
    load_webhook=_webhook,
    load_normaliser=_normaliser,
    load_read_receipts=_read_receipts,
)
