"""What `make replay` may publish again (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.core.events import payload_key


def redrive_refusal(parked: Mapping[str, Any], pieces: Sequence[bytes] | None = None) -> str | None:
    """Why a parked document cannot be published again as it arrived; None when it can.

    `pieces` are the rest of a body kept in pieces (`records.raw_body`), in order; None
    when they were not read (a listing): then a body in pieces is taken at its word.
    """
    raw = parked.get("rawBody")
    if not isinstance(raw, bytes):
        return "it is part of a payload, not a whole one: it holds no raw body to publish"
    expected = parked.get("rawBodyPieces", 1)
    if pieces is None:
        if isinstance(expected, int) and expected > 1:
            return None
        pieces = ()
    elif isinstance(expected, int) and expected != 1 + len(pieces):
        return f"{1 + len(pieces)} of the {expected} pieces of its body are stored"
    body = reassembled(parked, pieces)
    stored = parked.get("rawBodyBytes", len(body))
    if isinstance(stored, int) and stored > len(body):
        return (
            f"its body was stored truncated ({len(body):,} of {stored:,} bytes kept): "
            "republishing it would hand the pipeline a different event"
        )
    if not body:
        return "its body is empty"
    key = parked.get("payloadKey")
    if isinstance(key, str) and payload_key(body) != key:
        return "its stored body is not the one parked (its sha256 is not the payloadKey)"
    return None


def reassembled(parked: Mapping[str, Any], pieces: Sequence[bytes]) -> bytes:
    """The body a parked document keeps, whole (check `redrive_refusal` first)."""
    return bytes(parked["rawBody"]) + b"".join(pieces)
