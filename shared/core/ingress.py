"""What a provider's webhook part decides about one request (pure data, no I/O).

Each provider module turns an Incoming request into either a Reply (handshake, refusal,
bad input) or a Publish: the body goes to Pub/Sub (unchanged, unless the provider gives
the bytes to publish instead), and the provider's own answer is given once the publish is
confirmed, or its refusal if it is not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


def parse_json(body: bytes) -> Any:
    """The body as JSON, or None: bad UTF-8, bad JSON and absurd nesting all count as not JSON.

    An integer too long for Python to parse (over 4,300 digits) is read as one beyond 64
    bits, so the screen sets aside the element holding it, not the whole body.
    """
    try:
        return json.loads(body, parse_int=_integer)
    except (ValueError, RecursionError):
        return None


_MAX_INTEGER_DIGITS = 100  # far beyond 64 bits (19 digits), far below Python's limit


def _integer(literal: str) -> int:
    if len(literal) <= _MAX_INTEGER_DIGITS:
        return int(literal)
    return -(2**64) if literal.startswith("-") else 2**64


class Headers(Protocol):
    """Case-insensitive header lookup, as werkzeug's Headers offers."""

    def get(self, key: str) -> str | None: ...


@dataclass(frozen=True)
class Incoming:
    path: tuple[str, ...]  # the path's segments after the provider's prefix
    headers: Headers
    body: bytes  # empty for a method without a body (GET)
    client_ip: str | None
    method: str = "POST"  # one of the provider's `methods`
    query: Mapping[str, str] = field(default_factory=dict)  # the first value of each key


@dataclass(frozen=True)
class Reply:
    status: int
    body: str | Mapping[str, Any]  # a string is sent as text/plain, a mapping as JSON
    headers: Mapping[str, str] = field(default_factory=dict)
    # Why a request was refused, for the log only: the answer may be vaguer on purpose.
    reason: str = ""


@dataclass(frozen=True)
class Publish:
    topic_key: str
    attributes: Mapping[str, str]
    accepted: Mapping[str, Any]  # JSON answer once Pub/Sub confirmed; messageId is added
    refused: Reply  # when the publish failed or timed out: the provider must push again
    # What is published (and spooled) instead of the request body: a canonical form, or the
    # body with a credential redacted. None publishes the request body unchanged.
    body: bytes | None = None
