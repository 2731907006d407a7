"""The agent READ receipt's state machine (pure), kept on the user's message document.

PENDING with a live lease: an attempt is in flight, leave it alone.
PENDING with an expired or no lease: a crashed or failed attempt, claim it again.
SENT or FAILED: final, never repeated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Protocol

FIELD = "agentReadReceipt"
PENDING = "PENDING"
SENT = "SENT"
FAILED = "FAILED"


class Step(Enum):
    SEND = "send"
    DONE = "done"
    WAIT = "wait"


def next_step(state: Mapping[str, Any] | None, now: datetime) -> Step:
    if not state:
        return Step.SEND
    if state.get("state") in (SENT, FAILED):
        return Step.DONE
    lease = state.get("leaseExpireTime")
    if lease is not None and lease > now:
        return Step.WAIT
    return Step.SEND


def claimed(state: Mapping[str, Any] | None, now: datetime, lease: timedelta) -> dict[str, Any]:
    return {
        **(state or {"attempts": 0}),
        "state": PENDING,
        "updateTime": now,
        "leaseExpireTime": now + lease,
    }


def finished(
    claim: Mapping[str, Any], now: datetime, attempts: int, error: str | None, permanent: bool
) -> dict[str, Any]:
    """The state after an attempt: SENT, FAILED (permanent error), or PENDING to retry."""
    state = {
        **claim,
        "attempts": claim.get("attempts", 0) + attempts,
        "updateTime": now,
        "leaseExpireTime": None,
        "error": error,
    }
    if error is None:
        state.update(state=SENT, sentTime=now)
    elif permanent:
        state.update(state=FAILED, failedTime=now)
    return state


@dataclass(frozen=True)
class ReadTarget:
    """A user message the agent marks READ: where its claim lives, and whom the API addresses."""

    conversation_id: str
    message_id: str
    recipient: Mapping[str, str] = field(default_factory=dict)  # what the provider's API needs
    # When the user sent it: a provider may mark a message read only for so long (WhatsApp:
    # 30 days), and may mark the earlier messages of a conversation read with the latest.
    create_time: datetime | None = None


@dataclass(frozen=True)
class Outcome:
    """One send, retries included: how many calls it made, and why it failed if it did."""

    attempts: int
    error: str | None = None
    permanent: bool = False


class ReceiptApi(Protocol):
    """A provider's API for the agent's READ receipt (an adapter)."""

    def send_read_receipt(self, target: ReadTarget) -> Outcome: ...
