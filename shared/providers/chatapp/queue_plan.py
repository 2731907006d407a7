"""What the Chat App queue puller does with the messages one receive gave it (pure).

Each queue message holds one status report, user message or template review (an array is
accepted too), base64 on the wire. The messages of one receive become as few Pub/Sub
messages as the recorder's bound allows, each a JSON array of elements: what an HTTP batch
push of that MessageType looks like, so everything after the publish is the push's path.

Some messages go alone, so that a redelivery publishes exactly the same bytes and what it
sets aside lands in the same parked document (named by its body's hash): a message with an
element that would be parked, one that cannot be decoded, and one received `max_receives`
times, which is parked with the reason rather than retried. No content makes `plan` raise:
the boundary screen (`shape.set_aside`) runs before anything else reads an element.
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
from urllib.parse import urlsplit

from shared.core import routing
from shared.core.ingress import parse_json
from shared.core.screening import screen
from shared.providers.chatapp import KIND_BY_PATH, NAME, PARKED_ATTRIBUTE
from shared.providers.chatapp.normalise import normalise_batch
from shared.providers.chatapp.shape import set_aside

# Elements one Pub/Sub message carries at most, so that one delivery's work stays small.
MAX_EVENTS = 1000

# SMQ queue names: letters, digits and hyphens, starting with a letter (at most 120).
_QUEUE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,119}")


@dataclass(frozen=True)
class QueueMessage:
    message_id: str
    receipt_handle: str
    body: str  # as on the wire: base64 of the JSON, or whatever was sent
    dequeue_count: int  # how often the queue has handed it out, this time included


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
    """The body's elements, or why it has none: base64 then JSON, else JSON as it is."""
    try:
        document = parse_json(base64.b64decode(body, validate=True))
    except (binascii.Error, ValueError):
        document = None
    if document is None:
        document = parse_json(body.encode("utf-8", errors="replace"))
    if isinstance(document, dict):
        return [document]
    if isinstance(document, list):
        return document
    if document is None:
        return "the queue message is neither base64 of JSON nor JSON"
    return f"the queue message holds a JSON {type(document).__name__}, not an object or array"


def plan(
    kind: str, messages: Sequence[QueueMessage], max_receives: int, received: datetime
) -> list[Outgoing]:
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
        elif len(elements) > MAX_EVENTS or _sets_aside(kind, elements, received):
            planned.append(_alone(kind, message, elements))
        else:
            if sum(len(e) for _, e in together) + len(elements) > MAX_EVENTS:
                planned.append(_published(kind, together))
                together = []
            together.append((message, elements))
    if together:
        planned.append(_published(kind, together))
    return planned


def _sets_aside(kind: str, elements: list[Any], received: datetime) -> bool:
    """Whether the recorder would park any of these elements instead of recording it. The
    boundary screen comes first: only what passes it is encoded and normalised here."""
    if any(set_aside(kind, element) for element in elements):
        return True
    payloads = screen(normalise_batch(_encode(elements), kind, received))
    return any(payload.parked for payload in payloads)


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
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if parse_json(raw) is None:
        raw = body.encode("utf-8", errors="replace")
    return raw if raw.lstrip().startswith(b"[") else b"[" + raw + b"]"


def _published(
    kind: str, carried: Sequence[tuple[QueueMessage, list[Any]]], body: bytes | None = None
) -> Outgoing:
    elements = [element for _, message_elements in carried for element in message_elements]
    return Outgoing(
        _encode(elements) if body is None else body,
        routing.attributes(provider=NAME, kind=kind, events=str(len(elements))),
        tuple(message for message, _ in carried),
    )


def _parked(kind: str, message: QueueMessage, body: bytes, events: int, reason: str) -> Outgoing:
    attributes = routing.attributes(provider=NAME, kind=kind, events=str(events))
    return Outgoing(body, {**attributes, PARKED_ATTRIBUTE: reason}, (message,))


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


def endpoint_problem(name: str, url: str) -> str | None:
    """Why `url` is not a service endpoint (http:// or https://, a host, no path)."""
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        return f"{name} is not a URL: {url!r}"
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        return f"{name} must be an http:// or https:// URL of a host, not {url!r}"
    if parts.path.strip("/") or parts.query or parts.fragment:
        return f"{name} must name a host only, with no path: {url!r}"
    return None
