"""RCS Business Messaging (RBM, "RCS for Business"): the live successor of Business Messages.

`envelope.py` reads the Pub/Sub-push-shaped request Google sends, `webhook.py` answers the
handshake and checks the signature, `normalise.py` turns an event into the product's
events, `read_receipts.py` sends the agent's READ. This module holds the provider's
vocabulary and its registry entry, whose loaders import them when first used.
"""

from __future__ import annotations

from typing import Any

from shared.core import routing
from shared.core.events import StatusScale
from shared.core.provider import Normaliser, Provider, ReadReceiptPart, WebhookPart

NAME = "rbm"
# Receipts of the agent's own messages. A READ may come before its DELIVERED.
SCALE = StatusScale({"DELIVERED": 1, "READ": 2})
# What a user sends: exactly one of these fields; each gets the agent's READ receipt.
MESSAGE_KINDS = ("text", "userFile", "location", "suggestionResponse")
SUBSCRIPTION_EVENTS = ("SUBSCRIBE", "UNSUBSCRIBE")
TYPING = "IS_TYPING"
# Server events: the agent's message outlived its time to live.
TTL_EVENTS = ("TTL_EXPIRATION_REVOKED", "TTL_EXPIRATION_REVOKE_FAILED")
LAUNCH = "agent_launch_event"  # the kind of an agent's launch event
# An AgentLaunchEvent's own fields: its signed data tells it from every user or server event.
# (Google's guide checks the envelope's attributes.type instead, but the attributes are not
# signed: anyone holding one signed event could re-type it.)
LAUNCH_STATES = ("oldLaunchState", "newLaunchState")
UNKNOWN = "unknown"
AGENT_SUFFIX = "@rbm.goog"  # how payloads write an agent id; the API takes the bare id


def kind_of(event: Any) -> str:
    """A user message's kind (its content field), an event's type, or the launch event:
    decided from the signed event alone."""
    if not isinstance(event, dict):
        return UNKNOWN
    if any(state in event for state in LAUNCH_STATES):
        return LAUNCH
    event_type = event.get("eventType")
    if isinstance(event_type, str) and event_type:
        return event_type
    return next((kind for kind in MESSAGE_KINDS if kind in event), UNKNOWN)


def topic_key(kind: str) -> str:
    return routing.READABLE if kind in MESSAGE_KINDS else routing.EVENTS


# RBM's route reads at most this much. Events are 1-2 KiB; files come as URIs, never inline;
# a text as long as RBM lets an agent send (3,072 characters) stays under 50 KiB even if
# each character were an escaped surrogate pair (12 bytes), then base64-encoded (x 4/3).
# A body within it parses in a few milliseconds, so an outsider holding no key cannot make
# the webhook spend much on one (RBM_MAX_BODY_BYTES overrides it).
MAX_BODY_BYTES = 64 * 1024


def _webhook() -> WebhookPart:
    from shared.providers.rbm import webhook

    return webhook


def _normaliser() -> Normaliser:
    from shared.providers.rbm import normalise

    return normalise


def _read_receipts() -> ReadReceiptPart:
    from shared.providers.rbm import read_receipts

    return read_receipts


PROVIDER = Provider(
    name=NAME,
    title="RCS Business Messaging",
    route="rbm",
    switch=("RBM_CLIENT_TOKEN",),
    topic_key=topic_key,
    scale=SCALE,
    sent_status="SENT",  # RBM reports no send: a send record only dates the message
    # Google retries for 7 days: a 503 while Pub/Sub is down loses nothing.
    spools_by_default=False,
    load_webhook=_webhook,
    load_normaliser=_normaliser,
    load_read_receipts=_read_receipts,
    max_body_bytes=MAX_BODY_BYTES,
)
