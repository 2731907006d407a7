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

# Why an event, or part of one, was parked instead of persisted.
REJECTED_RECEIPT = "REJECTED_RECEIPT"
UNKNOWN_KIND = "UNKNOWN_KIND"
NOT_JSON = "NOT_JSON"
MALFORMED = "MALFORMED"


@dataclass(frozen=True)
class StatusReport:
    """A receipt about one of the business's own messages (DELIVERED, READ, ...)."""

    message_id: str
    status: str
    time: datetime | None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UserMessage:
    """Something the user sent or did: a message, a suggestion tap, a survey answer, ..."""

    message_id: str
    kind: str
    create_time: datetime | None
    content: Mapping[str, Any]
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Parked:
    """Part of a payload that cannot be persisted as-is, kept with the reason."""

    category: str
    reason: str
    index: int | None = None
    item: Any = None


@dataclass(frozen=True)
class StatusScale:
    """A provider's status order: a later status never gives way to an earlier one."""

    ranks: Mapping[str, int]

    def rank(self, status: object) -> int:
        return self.ranks.get(status, 0) if isinstance(status, str) else 0


@dataclass(frozen=True)
class Payload:
    """One authenticated webhook body, normalised."""

    provider: str
    kind: str
    key: str  # sha256 of the raw body: the identity of a payload across redeliveries
    scale: StatusScale
    conversation_id: str | None = None
    conversation: Mapping[str, Any] = field(default_factory=dict)
    request_id: str | None = None
    send_time: datetime | None = None
    receipts: tuple[StatusReport, ...] = ()
    user_message: UserMessage | None = None
    parked: tuple[Parked, ...] = ()
    raw: bytes = b""

    def chunks(self, max_receipts: int) -> list[Payload]:
        """Splits a huge receipts payload so each part fits in one Firestore commit."""
        if len(self.receipts) <= max_receipts:
            return [self]
        return [
            replace(self, receipts=self.receipts[start : start + max_receipts])
            for start in range(0, len(self.receipts), max_receipts)
        ]


def payload_key(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()
