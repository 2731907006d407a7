"""Which elements of a Chat App batch are usable (pure): the webhook counts the malformed
ones in its answer, the normaliser parks them with the reason."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.core.ingress import parse_json
from shared.core.times import from_unix_millis
from shared.providers.chatapp import AUDIT, SCALE, STATUS, UNRANKED_STATUSES


def event_problem(kind: str, event: Any) -> str | None:
    """Why one element of a batch cannot be used, or None when its shape is right."""
    if not isinstance(event, dict):
        return "not an object"
    if kind == AUDIT:
        return _missing(event, "TemplateCode", "Language", "AuditStatus")
    missing = _missing(event, "MessageId", "From", "To")
    if missing:
        return missing
    if from_unix_millis(timestamp(event)) is None:
        return "Timestamp is not Unix milliseconds"
    if kind == STATUS:
        status = event.get("Status")
        known = isinstance(status, str) and (status in SCALE.ranks or status in UNRANKED_STATUSES)
        return None if known else "Status is not a known status"
    if not _text(event.get("Type")) or not isinstance(event.get("Message"), str):
        return "Type or Message missing"
    if event["Type"] != "TEXT" and not isinstance(parse_json(event["Message"].encode()), dict):
        return f"Message of a {event['Type']} is not a JSON object"
    return None


def timestamp(event: Mapping[str, Any]) -> Any:
    # Some published samples spell the key "Timestamp " with a trailing space.
    return event.get("Timestamp", event.get("Timestamp "))


def _missing(event: Mapping[str, Any], *names: str) -> str | None:
    absent = [name for name in names if not _text(event.get(name))]
    return f"{', '.join(absent)} missing" if absent else None


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())
