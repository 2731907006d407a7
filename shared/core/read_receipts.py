"""The agent READ receipt's state machine (pure), kept on the user's message document.

PENDING with a live lease: an attempt is in flight, leave it alone.
PENDING with an expired or no lease: a crashed or failed attempt, claim it again.
SENT or FAILED: final, never repeated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    claim: Mapping[str, Any],
    now: datetime,
    attempts: int,
    error: str | None,
    permanent: bool,
    covered_by: str | None = None,
) -> dict[str, Any]:
    """The state after an attempt: SENT, FAILED (permanent error), or PENDING to retry.

    `covered_by` names the later message whose READ also marked this one read, where the
    platform marks a conversation's earlier messages read with a later one.
    """
    state = {
        **claim,
        "attempts": claim.get("attempts", 0) + attempts,
        "updateTime": now,
        "leaseExpireTime": None,
        "error": error,
    }
    if covered_by is not None:
        state["coveredBy"] = covered_by
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
    # The platform refuses to mark a message read after this time (WhatsApp: 30 days).
    not_after: datetime | None = None
    # Targets with the same burst key, in order, are covered by one READ of the last of them:
    # the platform marks a conversation's earlier messages read with a later one. None: alone.
    burst: str | None = None


TOO_OLD = "too old: the platform no longer marks it read"


def too_old(target: ReadTarget, now: datetime) -> bool:
    return target.not_after is not None and now > target.not_after


def bursts(targets: Sequence[ReadTarget]) -> list[list[ReadTarget]]:
    """The targets of one delivery in groups that one READ covers, each oldest first."""
    groups: dict[object, list[ReadTarget]] = {}
    seen: set[tuple[str, str]] = set()
    for position, target in enumerate(targets):
        if (target.conversation_id, target.message_id) in seen:
            continue  # the same message twice in one delivery: one claim, one READ
        seen.add((target.conversation_id, target.message_id))
        key = (target.conversation_id, target.burst) if target.burst is not None else position
        groups.setdefault(key, []).append(target)
    return list(groups.values())


@dataclass(frozen=True)
class Outcome:
    """One send, retries included: how many calls it made, and why it failed if it did."""

    attempts: int
    error: str | None = None
    permanent: bool = False
    # The API refused the credential itself: every READ of the provider fails until an
    # operator acts, so it is counted and alerted on (`credentialsRejected` in the log).
    credentials_rejected: bool = False


class ReceiptApi(Protocol):
    """A provider's API for the agent's READ receipt (an adapter)."""

    def send_read_receipt(self, target: ReadTarget) -> Outcome: ...
