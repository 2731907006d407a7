"""The body Meta posts: a batch of entries, each of changes (pure; any JSON is read safely).

`{"object": "whatsapp_business_account", "entry": [{"id": WABA id, "time"?, "changes":
[{"field": "messages", "value": {"metadata": {...}, "statuses": [...], "messages": [...],
"contacts": [...], "errors": [...]}}, ...]}, ...]}`. Every entry and every change counts:
a reader of only the first loses the rest of the batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from shared.providers.whatsapp import OBJECT

MESSAGES_FIELD = "messages"
# The lists of a `messages` change whose every element is one update.
UPDATE_LISTS = ("statuses", "messages", "errors")


@dataclass(frozen=True)
class Change:
    """One change of one entry, or the entry or change that is not of the documented shape."""

    waba_id: str | None  # the entry's id: the WhatsApp Business Account
    entry_time: Any  # the entry's `time`, where Meta sends one (template reviews)
    field: str | None
    value: Any
    problem: str | None = None  # why it cannot be read; then `value` is the element as sent


def is_envelope(document: Any) -> bool:
    return (
        isinstance(document, dict)
        and document.get("object") == OBJECT
        and isinstance(document.get("entry"), list)
    )


def changes(document: dict[str, Any]) -> Iterator[Change]:
    """Every change of every entry, in order, and every element that is neither."""
    for entry in document["entry"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("changes"), list):
            yield Change(None, None, None, entry, "an entry without a list of changes")
            continue
        waba_id = _text(entry.get("id"))
        for change in entry["changes"]:
            if not isinstance(change, dict) or not isinstance(change.get("field"), str):
                yield Change(waba_id, None, None, change, "a change without a field name")
            else:
                yield Change(waba_id, entry.get("time"), change["field"], change.get("value"))


def updates(change: Change) -> int:
    """How many updates a change holds: each status, message and error of a `messages`
    change, or the change itself."""
    value = change.value
    if change.problem is None and change.field == MESSAGES_FIELD and isinstance(value, dict):
        lists = [value.get(name) for name in UPDATE_LISTS]
        return sum(len(items) for items in lists if isinstance(items, list)) or 1
    return 1


def holds_user_messages(change: Change) -> bool:
    value = change.value
    return (
        change.problem is None
        and change.field == MESSAGES_FIELD
        and isinstance(value, dict)
        and isinstance(value.get("messages"), list)
        and bool(value["messages"])
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None
