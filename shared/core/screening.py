"""Every provider's events pass here before anything is written (pure): what Firestore would
refuse is set aside, element by element, and the valid elements are always recorded.

- An element whose ids, values or times Firestore would refuse (`storable`) is parked with
  the reason and its position; the valid elements beside it are recorded on the first
  delivery.
- Everything set aside from one body, whatever the reasons, goes in one parked document
  with the raw body: the unusable part of a request costs one document, never one per
  element. The webhook's body-size limit bounds how many elements one request holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from shared.core.events import (
    UNSTORABLE,
    Parked,
    Payload,
    StatusReport,
    TemplateReview,
    UserMessage,
    parked_whole,
)
from shared.core.storable import identifier_problem, readable, value_problem

Item = StatusReport | UserMessage | TemplateReview
ItemT = TypeVar("ItemT", StatusReport, UserMessage, TemplateReview)


def screen(payloads: Sequence[Payload]) -> list[Payload]:
    """The payloads of one published body with what Firestore would refuse moved aside, and
    all that is set aside gathered in one payload of its own (see the module's description)."""
    if not payloads:
        return []
    screened = [_screen(payload) for payload in payloads]
    parked = [item for payload in screened for item in payload.parked]
    if not parked:
        return screened
    recorded = [replace(p, parked=()) for p in screened if _items(p)]
    whole = [item for item in parked if item.index is None]
    holder = replace(
        _shared(screened),
        parked=tuple(whole[:1] or parked),
        elements=sum(_items(p) + len(p.parked) for p in screened),
    )
    return [*recorded, holder]


def _screen(payload: Payload) -> Payload:
    shared_problem = _conversation_problem(payload)
    parked = list(payload.parked)

    def usable(items: tuple[ItemT, ...]) -> tuple[ItemT, ...]:
        kept = []
        for item in items:
            problem = shared_problem or _item_problem(item)
            if problem is None:
                kept.append(item)
            elif item.index is None:  # nothing to park it by but the whole body
                raise _WholeBodyUnstorable(problem)
            else:
                parked.append(Parked(UNSTORABLE, problem, item.index))
        return tuple(kept)

    try:
        screened = replace(
            _safe(payload) if shared_problem else payload,
            receipts=usable(payload.receipts),
            user_messages=usable(payload.user_messages),
            reviews=usable(payload.reviews),
        )
    except _WholeBodyUnstorable as unstorable:
        return park_whole([payload], UNSTORABLE, str(unstorable))
    return replace(screened, parked=tuple(parked))


class _WholeBodyUnstorable(Exception):
    """An element that Firestore would refuse and that has no position of its own."""


def _conversation_problem(payload: Payload) -> str | None:
    """What Firestore would refuse among the fields every document of the payload carries."""
    if payload.conversation_id is not None:
        problem = identifier_problem(payload.conversation_id)
        if problem:
            return f"conversation: {problem}"
    shared = (
        payload.kind,
        payload.agent,
        payload.request_id,
        dict(payload.conversation),
        dict(payload.conversation_state),
        payload.send_time,
    )
    return next(filter(None, map(value_problem, shared)), None)


def _item_problem(item: Item) -> str | None:
    times: list[datetime | None]
    if isinstance(item, TemplateReview):
        ids = [part for part in item.template if part]
        values: tuple[Any, ...] = (item.status, item.fields)
        times = [item.time]
    elif isinstance(item, StatusReport):
        ids, values = [item.message_id, item.status], (item.details, item.message_fields)
        times = [item.time]
    else:
        ids, values = [item.message_id], (item.content, item.context)
        times = [item.create_time]
    problems = [*map(identifier_problem, ids), *map(value_problem, (*values, *times))]
    return next(filter(None, problems), None)


def _items(payload: Payload) -> int:
    return len(payload.receipts) + len(payload.user_messages) + len(payload.reviews)


def _shared(payloads: Sequence[Payload]) -> Payload:
    """What the payloads of one body share, with no items: the conversation only if it is the
    same for all of them."""
    first = _safe(payloads[0])
    empty = replace(first, receipts=(), user_messages=(), reviews=(), conversation_state={})
    if all(p.conversation_id == first.conversation_id for p in payloads):
        return empty
    return replace(empty, conversation_id=None, agent=None, conversation={})


def park_whole(payloads: Sequence[Payload], category: str, reason: str) -> Payload:
    """The request parked as one document: its raw body is kept, so it can be replayed."""
    return parked_whole(_safe(payloads[0]), category, reason)


def _safe(payload: Payload) -> Payload:
    """The payload with only the shared fields Firestore would store."""
    conversation_id = payload.conversation_id
    if conversation_id is not None and identifier_problem(conversation_id):
        conversation_id = None
    conversation = dict(payload.conversation)
    return replace(
        payload,
        kind=readable(payload.kind),
        conversation_id=conversation_id,
        agent=payload.agent if value_problem(payload.agent) is None else None,
        request_id=payload.request_id if value_problem(payload.request_id) is None else None,
        conversation=conversation if value_problem(conversation) is None else {},
        conversation_state={},
        send_time=payload.send_time if value_problem(payload.send_time) is None else None,
    )
