"""Decoding a Pub/Sub push delivery, as functions-framework hands it to a CloudEvent function."""

from __future__ import annotations

import base64
import binascii
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.core.events import payload_key
from shared.core.times import parse_rfc3339, utc_now

log = logging.getLogger(__name__)


class NotAPushMessage(ValueError):
    """The CloudEvent does not carry a Pub/Sub message: no redelivery can fix that."""


@dataclass(frozen=True)
class PushedMessage:
    message_id: str
    data: bytes
    attributes: dict[str, str]
    publish_time: datetime  # when the webhook published it

    @property
    def key(self) -> str:
        """The body's identity (SHA-256), the same for every delivery of the same body."""
        return payload_key(self.data)


def decode(event: Any) -> PushedMessage:
    message = event.data.get("message") if isinstance(event.data, dict) else None
    if not isinstance(message, dict):
        raise NotAPushMessage("CloudEvent data has no Pub/Sub message")
    try:
        data = base64.b64decode(message.get("data") or "", validate=True)
    except (binascii.Error, ValueError) as error:
        raise NotAPushMessage("Pub/Sub message data is not base64") from error
    attributes = message.get("attributes") or {}
    return PushedMessage(
        message_id=str(message.get("messageId") or event["id"]),
        data=data,
        attributes={str(k): str(v) for k, v in attributes.items()},
        publish_time=parse_rfc3339(message.get("publishTime")) or utc_now(),
    )


def subscriber(handle: Callable[[PushedMessage], None]) -> Callable[[Any], None]:
    """Wraps a handler of Pub/Sub messages as a CloudEvent function.

    A delivery that is not a Pub/Sub message is logged and acknowledged: redelivering it
    could never help. Exceptions from the handler propagate, so Pub/Sub redelivers.
    """

    @functools.wraps(handle)
    def handle_event(event: Any) -> None:
        try:
            message = decode(event)
        except NotAPushMessage as problem:
            log.error("dropped a delivery that is not a Pub/Sub message: %s", problem)
            return
        handle(message)

    return handle_event
