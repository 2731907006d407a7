"""Every provider's events pass here before anything is written (pure): what one request may
cost is bounded, and what Firestore would refuse is set aside, element by element.

- An element whose ids or values Firestore would refuse (`storable`) is parked with the
  reason and its position; the valid elements beside it are recorded on the first delivery.
- A request of more than MAX_EVENTS events, or one whose elements are mostly unusable, is
  parked whole, as one document listing the reasons, instead of one document per element.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, TypeVar

from shared.core.events import (
    MALFORMED,
    TOO_MANY,
    UNSTORABLE,
    Parked,
    Payload,
    StatusReport,
    TemplateReview,
    UserMessage,
    parked_whole,
)
from shared.core.storable import identifier_problem, value_problem

# Events one request may carry. Alibaba documents no size for a Chat App batch push and
# Google sends a few receipts at a time: this is a bound far above both.
MAX_EVENTS = 1000
# Unusable elements parked one by one; past this many (and half the request), the request
# is parked whole.
MAX_PARKED_ELEMENTS = 20
Item = StatusReport | UserMessage | TemplateReview
ItemT = TypeVar("ItemT", StatusReport, UserMessage, TemplateReview)


def screen(payloads: Sequence[Payload]) -> list[Payload]:
    """The payloads of one published body, bounded and with what Firestore would refuse
    moved aside (see the module's description)."""
    if not payloads:
        return []
    screened = [_screen(payload) for payload in payloads]
    events = sum(_events(payload) for payload in screened)
    reason = too_many(events)
    if reason:
        return [park_whole(screened, TOO_MANY, reason)]
    parked = [item for payload in screened for item in payload.parked]
    if len(parked) > MAX_PARKED_ELEMENTS and 2 * len(parked) > events:
        reasons = Counter(item.reason for item in parked).most_common(5)
        listed = "; ".join(f"{count}x {reason}" for reason, count in reasons)
        return [park_whole(screened, MALFORMED, f"{len(parked)} of {events} unusable: {listed}")]
    return screened


def too_many(events: int) -> str | None:
    """Why a request of this many events is parked whole, or None. A normaliser asks before
    it reads the elements of a long list one by one, so a huge batch costs little CPU."""
    if events <= MAX_EVENTS:
        return None
    return f"{events} events in one request; at most {MAX_EVENTS} are recorded from one"


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
                parked.append(Parked(UNSTORABLE, problem, item.index, dataclasses.asdict(item)))
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
    shared = (payload.agent, payload.request_id, dict(payload.conversation))
    return next(filter(None, map(value_problem, shared)), None)


def _item_problem(item: Item) -> str | None:
    if isinstance(item, TemplateReview):
        ids = [part for part in item.template if part]
        values: tuple[Any, ...] = (item.status, item.fields)
    elif isinstance(item, StatusReport):
        ids, values = [item.message_id, item.status], (item.details, item.message_fields)
    else:
        ids, values = [item.message_id], (item.content, item.context)
    problems = [*map(identifier_problem, ids), *map(value_problem, values)]
    return next(filter(None, problems), None)


def _events(payload: Payload) -> int:
    return sum(
        len(items)
        for items in (payload.receipts, payload.user_messages, payload.reviews, payload.parked)
    )


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
        conversation_id=conversation_id,
        agent=payload.agent if value_problem(payload.agent) is None else None,
        request_id=payload.request_id if value_problem(payload.request_id) is None else None,
        conversation=conversation if value_problem(conversation) is None else {},
    )
