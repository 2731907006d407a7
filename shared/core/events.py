"""The product's own events: what every provider's payload is normalised into.

Everything after normalisation (persistence, status, metrics) works on these types only,
so a new provider adds a parser, not a new pipeline.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

USER = "USER"
AGENT = "AGENT"
# What a user said, as opposed to typing indicators, sign-ins or survey answers.
USER_MESSAGE_KINDS = frozenset({"message", "suggestionResponse"})

# Why an event, or part of one, was parked instead of persisted.
REJECTED_RECEIPT = "REJECTED_RECEIPT"
UNKNOWN_KIND = "UNKNOWN_KIND"
NOT_JSON = "NOT_JSON"
MALFORMED = "MALFORMED"
UNSTORABLE = "UNSTORABLE"  # Firestore refused it, or would (too deep, not Unicode, ...)
REDELIVERED = "REDELIVERED"  # received from a queue too often without being confirmed


@dataclass(frozen=True)
class StatusReport:
    """A receipt about one of the business's own messages (DELIVERED, READ, ...)."""

    message_id: str
    status: str
    time: datetime | None
    details: Mapping[str, Any] = field(default_factory=dict)  # kept on the receipt
    message_fields: Mapping[str, Any] = field(default_factory=dict)  # set on the message, once
    index: int | None = None  # its position in the provider's batch, where there is one


@dataclass(frozen=True)
class UserMessage:
    """Something the user sent or did: a message, a suggestion tap, a survey answer, ..."""

    message_id: str
    kind: str
    create_time: datetime | None
    content: Mapping[str, Any]
    context: Mapping[str, Any] = field(default_factory=dict)
    index: int | None = None  # its position in the provider's batch, where there is one


@dataclass(frozen=True)
class TemplateReview:
    """A message template's review result (Chat App audit), per template and language."""

    template: tuple[str, str, str]  # (account, template code, language)
    status: str
    time: datetime
    key: str  # identity of this review across duplicate pushes
    fields: Mapping[str, Any] = field(default_factory=dict)
    index: int | None = None  # its position in the provider's batch


@dataclass(frozen=True)
class Parked:
    """Part of a payload that cannot be persisted as-is, kept with the reason: an element
    (by its position in the body) or, with no index, the whole body."""

    category: str
    reason: str
    # The element's position in the published body, unique over the whole body: a normaliser
    # of a nested batch (entries x changes x items) numbers its elements with one counter.
    index: int | None = None


@dataclass(frozen=True)
class StatusScale:
    """A provider's status order: a later status never gives way to an earlier one."""

    ranks: Mapping[str, int]

    def rank(self, status: object) -> int:
        return self.ranks.get(status, 0) if isinstance(status, str) else 0


@dataclass(frozen=True)
class Payload:
    """One authenticated webhook body normalised, or the part of it for one conversation."""

    provider: str
    kind: str
    key: str  # sha256 of the raw body: the identity of a payload across redeliveries
    scale: StatusScale
    conversation_id: str | None = None
    agent: str | None = None  # whose conversation: the BM agent, the Chat App business number
    conversation: Mapping[str, Any] = field(default_factory=dict)
    # Conversation fields an event sets as of its send_time (RBM's subscription): each is
    # kept with the time of the event that set it, and a later event wins.
    conversation_state: Mapping[str, Any] = field(default_factory=dict)
    request_id: str | None = None
    send_time: datetime | None = None
    receipts: tuple[StatusReport, ...] = ()
    user_messages: tuple[UserMessage, ...] = ()
    reviews: tuple[TemplateReview, ...] = ()
    parked: tuple[Parked, ...] = ()  # all kept in one document, with the raw body
    raw: bytes = b""
    elements: int = 0  # how many elements the body holds, for the parked document's summary

    def chunks(self, max_writes: int) -> list[Payload]:
        """Splits a huge payload into parts that each fit in one Firestore commit."""
        if self.most_writes() <= max_writes:
            return [self]
        parts: list[Payload] = []
        taken: dict[str, list[Any]] = {name: [] for name in _WRITES_PER_ITEM}
        size = 1 + self._parked_writes()  # the conversation; the first part parks
        for name, cost in _WRITES_PER_ITEM.items():
            for item in getattr(self, name):
                if size + cost > max_writes:
                    parts.append(self._holding(taken, parks=not parts))
                    taken, size = {name: [] for name in _WRITES_PER_ITEM}, 1
                taken[name].append(item)
                size += cost
        return [*parts, self._holding(taken, parks=not parts)]

    def _holding(self, items: dict[str, list[Any]], parks: bool) -> Payload:
        return replace(
            self,
            receipts=tuple(items["receipts"]),
            user_messages=tuple(items["user_messages"]),
            reviews=tuple(items["reviews"]),
            parked=self.parked if parks else (),
        )

    def most_writes(self) -> int:
        """An upper bound on the documents this payload writes in one commit."""
        items = sum(cost * len(getattr(self, name)) for name, cost in _WRITES_PER_ITEM.items())
        return items + self._parked_writes() + 1  # the conversation

    def _parked_writes(self) -> int:
        """Whatever is parked goes in one document, its raw body in as many as it needs."""
        return len(raw_pieces(self.raw)) if self.parked else 0


# Documents one item may write: a receipt its message; a review its history and its template.
_WRITES_PER_ITEM = {"receipts": 1, "user_messages": 1, "reviews": 2}
# A Firestore document holds at most 1 MiB: a longer raw body is kept in pieces of this size.
RAW_PIECE_BYTES = 900 * 1024


def raw_pieces(raw: bytes) -> list[bytes]:
    """The raw body in pieces that each fit in a document (one, maybe empty, at least)."""
    return [
        raw[start : start + RAW_PIECE_BYTES] for start in range(0, len(raw), RAW_PIECE_BYTES)
    ] or [b""]


def payload_key(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def parked_whole(payload: Payload, category: str, reason: str) -> Payload:
    """The payload with nothing to persist but its raw body, parked with the reason."""
    return replace(
        payload, receipts=(), user_messages=(), reviews=(), parked=(Parked(category, reason),)
    )
