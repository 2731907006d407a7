"""Aware UTC datetimes: now, and timestamps as providers send them."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_rfc3339(value: object) -> datetime | None:
    """Parses `2024-05-01T10:00:00.123456789Z`; anything unusable gives None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def from_unix_millis(value: object) -> datetime | None:
    """Unix milliseconds as a number or a numeric string; anything else gives None."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        millis = float(value)
        return datetime.fromtimestamp(millis / 1000, tz=UTC) if millis > 0 else None
    except (ValueError, OverflowError, OSError):
        return None


def utc_now() -> datetime:
    return datetime.now(UTC)
