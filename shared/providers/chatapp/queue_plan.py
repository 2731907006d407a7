"""What the Chat App queue puller does with the messages one receive gave it (pure).

Each queue message holds one status report, user message or template review (an array is
accepted too), base64 on the wire. The messages of one receive become as few Pub/Sub
messages as the recorder's bound allows, each a JSON array of elements: what an HTTP batch
push of that MessageType looks like, so everything after the publish is the push's path.

Some messages go alone, so that a redelivery publishes exactly the same bytes and what it
sets aside lands in the same parked document (named by its body's hash): a message with an
element that would be parked, one that cannot be decoded, and one received `max_receives`
times, which is parked with the reason rather than retried. No content makes `plan` raise:
the boundary screen (`element_screen.set_aside`) runs before anything else reads an element.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.core import arrival, routing
from shared.core.ingress import parse_json
from shared.providers.chatapp import KIND_BY_PATH, NAME, PARKED_ATTRIBUTE
from shared.providers.chatapp.element_screen import set_aside

# Elements one Pub/Sub message carries at most, so that one delivery's work stays small.
MAX_EVENTS = 1000

# SMQ queue names: letters, digits and hyphens, starting with a letter (at most 120).
_QUEUE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,119}")
_ASCII_WHITESPACE = re.compile(r"[ \t\n\r\f\v]+")


@dataclass(frozen=True)
class QueueMessage:
    message_id: str
    receipt_handle: str
    body: str  # as on the wire: base64 of the JSON, or whatever was sent
    dequeue_count: int  # how often the queue has handed it out, this time included
    # When it entered the queue (SMQ's EnqueueTime): the same on every receive, unlike
    # the time it is received, so a redelivery publishes the same attributes.
    enqueue_time: datetime | None = None


@dataclass(frozen=True)
class Outgoing:
    """One Pub/Sub message, and the queue messages it carries (deleted once it is confirmed)."""

    body: bytes
    attributes: dict[str, str]
    messages: tuple[QueueMessage, ...]

    @property
    def handles(self) -> list[str]:
        return [message.receipt_handle for message in self.messages]


def decode(body: str) -> list[Any] | str:
    """The body's elements, or why it has none: base64 then JSON, else JSON as it is.

    Base64 may be wrapped in lines (MIME's 76 columns, as Java's encoders write it): ASCII
    white space is dropped, as Alibaba's SDK decoders drop it. Any other character outside
    the alphabet makes it not base64 (they drop those too, but a JSON body would then decode
    to garbage instead of being read as JSON).
    """
    document = parse_json(_json_bytes(body))
    if isinstance(document, dict):
        return [document]
    if isinstance(document, list):
        return document
    if document is None:
        return "the queue message is neither base64 of JSON nor JSON"
    return f"the queue message holds a JSON {type(document).__name__}, not an object or array"


def plan(kind: str, messages: Sequence[QueueMessage], max_receives: int) -> list[Outgoing]:
    """The Pub/Sub messages that carry what one receive of a `kind` queue gave."""
    planned: list[Outgoing] = []
    together: list[tuple[QueueMessage, list[Any]]] = []
    for message in messages:
        elements = decode(message.body)
        if isinstance(elements, str):
            planned.append(_parked(kind, message, message.body.encode(), 1, elements))
        elif message.dequeue_count >= max_receives:
            reason = (
                f"received {message.dequeue_count} times from its queue without being "
                "confirmed: parked so it cannot loop; redrive it once the cause is fixed"
            )
            planned.append(_alone(kind, message, elements, reason))
        elif len(elements) > MAX_EVENTS or _sets_aside(kind, elements):
            planned.append(_alone(kind, message, elements))
        else:
            if sum(len(e) for _, e in together) + len(elements) > MAX_EVENTS:
                planned.append(_published(kind, together))
                together = []
            together.append((message, elements))
    if together:
        planned.append(_published(kind, together))
    return planned


def _sets_aside(kind: str, elements: list[Any]) -> bool:
    """Whether the recorder would park any of these elements instead of recording it: the
    classification it uses itself (`element_screen.set_aside`, which the webhook's counts share)."""
    return any(set_aside(kind, element) for element in elements)


def _alone(
    kind: str, message: QueueMessage, elements: list[Any], parked_because: str | None = None
) -> Outgoing:
    """The message on its own: published (or parked with the reason) as its elements."""
    try:
        body = _encode(elements)
    except RecursionError:  # nested too deep to encode again here: its own bytes, as an array
        body = _as_array(message.body)
    if parked_because is not None:
        return _parked(kind, message, body, len(elements), parked_because)
    return _published(kind, [(message, elements)], body)


def _as_array(body: str) -> bytes:
    """The JSON a decodable body carries, as it came, as an array of elements."""
    raw = _json_bytes(body)
    return raw if raw.lstrip().startswith(b"[") else b"[" + raw + b"]"


def _json_bytes(body: str) -> bytes:
    """The bytes of the JSON a body carries: base64 decoded when it is base64 of JSON, else
    the body as it is."""
    try:
        decoded = base64.b64decode(_ASCII_WHITESPACE.sub("", body), validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    return decoded if parse_json(decoded) is not None else body.encode("utf-8", errors="replace")


def _published(
    kind: str, carried: Sequence[tuple[QueueMessage, list[Any]]], body: bytes | None = None
) -> Outgoing:
    elements = [element for _, message_elements in carried for element in message_elements]
    messages = tuple(message for message, _ in carried)
    attributes = routing.attributes(provider=NAME, kind=kind, events=str(len(elements)))
    encoded = _encode(elements) if body is None else body
    return Outgoing(encoded, {**attributes, **_arrival(messages)}, messages)


def _parked(kind: str, message: QueueMessage, body: bytes, events: int, reason: str) -> Outgoing:
    attributes = routing.attributes(provider=NAME, kind=kind, events=str(events))
    return Outgoing(
        body, {**attributes, **_arrival((message,)), PARKED_ATTRIBUTE: reason}, (message,)
    )


def _arrival(messages: Sequence[QueueMessage]) -> dict[str, str]:
    """The carried messages' first arrival: when the last of them entered the queue, as a
    webhook batch is dated by when its push arrived whole. None known: no attribute."""
    times = [message.enqueue_time for message in messages if message.enqueue_time is not None]
    if not times or len(times) < len(messages):
        return {}
    return {arrival.RECEIVED_TIME: arrival.stamp(max(times))}


def _encode(elements: list[Any]) -> bytes:
    # Compact and in the elements' own key order: the same elements give the same bytes.
    # ASCII, so a lone surrogate that JSON allows (\ud800) stays an escape, never bad UTF-8.
    return json.dumps(elements, separators=(",", ":")).encode()


# --- configuration ----------------------------------------------------------------------


def queue_pairs(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    """`ChatAppStatus=Alicom-Queue-1-ChatAppStatus,...` as (MessageType, queue name) pairs,
    and the problems with the text."""
    pairs: list[tuple[str, str]] = []
    problems: list[str] = []
    for entry in filter(None, (part.strip() for part in text.split(","))):
        message_type, _, queue = (side.strip() for side in entry.partition("="))
        if message_type not in KIND_BY_PATH.values():
            known = ", ".join(KIND_BY_PATH.values())
            problems.append(f"CHATAPP_SMQ_QUEUES: {message_type!r} is not a MessageType ({known})")
        elif not _QUEUE_NAME.fullmatch(queue):
            problems.append(f"CHATAPP_SMQ_QUEUES: {entry!r} does not name a queue")
        elif queue in (name for _, name in pairs):
            problems.append(f"CHATAPP_SMQ_QUEUES: queue {queue} is named twice")
        else:
            pairs.append((message_type, queue))
    if not pairs and not problems:
        problems.append("CHATAPP_SMQ_QUEUES holds no MessageType=QueueName pair")
    return pairs, problems
