"""Timestamps as providers send them (RFC 3339, Unix milliseconds) to aware datetimes."""

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
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return datetime.fromtimestamp(float(value) / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None
