"""One module per messaging provider: authentication, envelope parsing, normalisation.

Everything after `normalise` is shared by all providers.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from shared import routing
from shared.events import UNKNOWN_KIND, Payload, StatusScale, parked_whole, payload_key
from shared.providers import bm, chatapp

SCALES = {bm.PROVIDER: bm.SCALE, chatapp.PROVIDER: chatapp.SCALE}
# The status a business's own send record takes: Chat App reports "Sent" itself; Business
# Messages has no such receipt, so a send record only dates the message.
SENT_STATUS = {bm.PROVIDER: "SENT", chatapp.PROVIDER: "Sent"}


def topic_key(attributes: Mapping[str, str]) -> str:
    """The topic an event was published to, from its attributes: where a replay sends it."""
    if attributes.get("provider") == bm.PROVIDER:
        return bm.topic_key(attributes.get("kind", ""))
    return routing.EVENTS


def normalise(attributes: Mapping[str, str], raw: bytes, received: datetime) -> list[Payload]:
    """A published body as the product's own events; an unknown provider's body is parked.

    `received` is when the webhook published it, for events that carry no time of their own.
    """
    provider = attributes.get("provider", "")
    if provider == bm.PROVIDER:
        return [bm.normalise(raw)]
    if provider == chatapp.PROVIDER:
        return chatapp.normalise(raw, attributes.get("kind", ""), received)
    unknown = Payload(
        provider=provider or "unknown",
        kind="unknown",
        key=payload_key(raw),
        scale=StatusScale({}),
        raw=raw,
    )
    return [parked_whole(unknown, UNKNOWN_KIND, f"no parser for provider {provider!r}")]
