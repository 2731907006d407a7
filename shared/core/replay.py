"""What `make replay` may publish again (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def redrive_refusal(parked: Mapping[str, Any]) -> str | None:
    """Why a parked document cannot be published again as it arrived; None when it can."""
    raw = parked.get("rawBody")
    if not isinstance(raw, bytes):
        return "it is part of a payload, not a whole one: it holds no raw body to publish"
    stored = parked.get("rawBodyBytes", len(raw))
    if isinstance(stored, int) and stored > len(raw):
        return (
            f"its body was stored truncated ({len(raw):,} of {stored:,} bytes kept): "
            "republishing it would hand the pipeline a different event"
        )
    if not raw:
        return "its body is empty"
    return None
