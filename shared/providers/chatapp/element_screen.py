"""Which elements of a Chat App batch are usable (pure): the webhook counts the ones set
aside in its answer, the normaliser parks them with the reason. Both ask `set_aside`, so
the answer to Alibaba and what is recorded always agree."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.core.events import MALFORMED, REJECTED_RECEIPT, UNSTORABLE
from shared.core.ingress import parse_json
from shared.core.storable import MAX_INPUT_DEPTH, identifier_problem, value_problem
from shared.core.times import from_unix_millis
from shared.providers.chatapp import AUDIT, SCALE, STATUS, UNRANKED_STATUSES

# A phone number or page id: two of them name a conversation, within an id's 500 characters.
MAX_PARTY_CHARS = 200


def set_aside(kind: str, event: Any) -> tuple[str, str] | None:
    """The category and reason an element of a batch is set aside for; None when it is used.

    What no code could safely read (a lone surrogate, nesting past MAX_INPUT_DEPTH, an
    integer beyond 64 bits) is screened first, before anything else touches the element;
    what passes is what the recorder can store (its ids, and a media message's JSON, too).
    """
    problem = value_problem(event, MAX_INPUT_DEPTH)
    if problem is not None:
        return UNSTORABLE, problem
    problem = _shape_problem(kind, event)
    if problem is not None:
        return (REJECTED_RECEIPT if kind == STATUS else MALFORMED), problem
    problem = _storable_problem(kind, event)
    return None if problem is None else (UNSTORABLE, problem)


def event_problem(kind: str, event: Any) -> str | None:
    """Why one element of a batch cannot be used, or None when it can."""
    found = set_aside(kind, event)
    return None if found is None else found[1]


def _shape_problem(kind: str, event: Any) -> str | None:
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
        return "Message of a media message (Type other than TEXT) is not a JSON object"
    return None


def _storable_problem(kind: str, event: dict[str, Any]) -> str | None:
    """What the recorder could not store of a well-shaped element: its ids, its media."""
    if kind == AUDIT:
        return _id_problem(event, "TemplateCode", "Language", "WabaId")
    if max(len(event["From"]), len(event["To"])) > MAX_PARTY_CHARS:
        return f"From or To longer than {MAX_PARTY_CHARS} characters"
    problem = _id_problem(event, "MessageId", "From", "To")
    if problem or kind == STATUS or event["Type"] == "TEXT":
        return problem
    problem = value_problem(parse_json(event["Message"].encode()), MAX_INPUT_DEPTH)
    return None if problem is None else f"Message: {problem}"


def timestamp(event: Mapping[str, Any]) -> Any:
    # Some published samples spell the key "Timestamp " with a trailing space.
    return event.get("Timestamp", event.get("Timestamp "))


def _missing(event: Mapping[str, Any], *names: str) -> str | None:
    absent = [name for name in names if not _text(event.get(name))]
    return f"{', '.join(absent)} missing" if absent else None


def _id_problem(event: Mapping[str, Any], *names: str) -> str | None:
    ids = [event[name] for name in names if isinstance(event.get(name), str) and event[name]]
    return next(filter(None, map(identifier_problem, ids)), None)


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())
