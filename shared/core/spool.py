"""What the spool's drainer does with an event Pub/Sub does not take (pure).

A spooled event was acknowledged to its provider, so a Pub/Sub outage must never cost it;
and an event that can never be published (a poison event) must not hold up the events
behind it. The drainer goes on past every failed publish, and tells the two apart by whose
fault the failure is:

- the event's own (`Fault.EVENT`): it has no body, a topic key that names no topic,
  attributes that are not strings, or Pub/Sub refused its content (INVALID_ARGUMENT). It
  would fail however healthy Pub/Sub is.
- an outage (`Fault.OUTAGE`): Pub/Sub unavailable, overloaded or too slow to confirm. Never
  the event's fault, so never counted against it, however long the outage lasts. Two in a
  row without a publish between them end the run: every later publish would wait out its
  timeout too.
- unclear (`Fault.UNCLEAR`): any other refusal (PERMISSION_DENIED, NOT_FOUND, ...). It is
  the event's own only if Pub/Sub took other events in the same run; if it took none, the
  pipeline itself is broken (a lost grant, a deleted topic) and no event is to blame.

An event whose own failures reach the limit is set aside in `parked/` as UNPUBLISHABLE.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from shared.core import routing
from shared.core.events import payload_key
from shared.core.records import raw_body

UNPUBLISHABLE = "UNPUBLISHABLE"  # the parked category of a spooled event set aside
DEFAULT_MAX_ATTEMPTS = 5
MAX_DOCUMENT_BYTES = 1024 * 1024  # Firestore's limit: no spooled event is larger
# What one drain holds of spooled events at a time: a 512 MiB drainer also holds the Python
# runtime and both clients (~150 MiB), and decoding a page briefly needs it twice.
DEFAULT_DRAIN_BUDGET_BYTES = 64 * 1024 * 1024
OUTAGE_AFTER_FAILURES = 2
TOPIC_KEYS = frozenset({routing.EVENTS, routing.READABLE})

# Pub/Sub's answer when the request itself is wrong: sending it again cannot succeed.
_CONTENT_REFUSED = frozenset({"INVALID_ARGUMENT"})


class Fault(Enum):
    EVENT = "the event's own"
    OUTAGE = "Pub/Sub unavailable"
    UNCLEAR = "refused by Pub/Sub"


def page_sizes(limit: int, budget_bytes: int) -> list[int]:
    """How many events each page of a drain reads: `limit` in all, and each page within the
    budget however large its events are (a size is known only once it is read)."""
    per_page = max(1, budget_bytes // MAX_DOCUMENT_BYTES)
    return [min(per_page, limit - start) for start in range(0, limit, per_page)]


def fault_of(status: str | None, transient: bool) -> Fault:
    """Whose fault a failed publish is, from Pub/Sub's status name (None: no answer)."""
    if transient:
        return Fault.OUTAGE
    if status in _CONTENT_REFUSED:
        return Fault.EVENT
    return Fault.UNCLEAR


@dataclass(frozen=True)
class SpooledEvent:
    """One spool document as stored, whatever its fields hold."""

    spool_id: str
    fields: Mapping[str, Any]

    @property
    def data(self) -> bytes:
        data = self.fields.get("data")
        return data if isinstance(data, bytes) else b""

    @property
    def topic_key(self) -> str:
        return str(self.fields.get("topicKey"))

    @property
    def attributes(self) -> dict[str, str]:
        attributes = self.fields.get("attributes")
        if not isinstance(attributes, Mapping):
            return {}
        return {k: v for k, v in attributes.items() if isinstance(k, str) and isinstance(v, str)}

    def without_body(self) -> SpooledEvent:
        """What a drain keeps of an event that failed until the run is over: all but its data."""
        return SpooledEvent(self.spool_id, {k: v for k, v in self.fields.items() if k != "data"})

    @property
    def attempts(self) -> int:
        """Failed publishes of its own so far."""
        attempts = self.fields.get("publishAttempts")
        return attempts if isinstance(attempts, int) and not isinstance(attempts, bool) else 0

    def defect(self, topic_keys: Collection[str] = TOPIC_KEYS) -> str | None:
        """Why this event can never be published as stored; None when it can be tried."""
        if not self.data:
            return "no body to publish"  # a push with empty data is refused downstream too
        topic_key = self.fields.get("topicKey")
        if not isinstance(topic_key, str) or topic_key not in topic_keys:
            return f"unknown topic key {topic_key!r}"
        attributes = self.fields.get("attributes")
        if not isinstance(attributes, Mapping) or len(self.attributes) != len(attributes):
            return "attributes must map strings to strings"
        return None


@dataclass(frozen=True)
class Failure:
    event: SpooledEvent
    fault: Fault
    error: str


class Verdict(Enum):
    WAIT = "wait"  # not the event's fault: tried again next run, not counted
    RETRY = "retry"  # its own failure, counted: tried again next run
    PARK = "park"  # its own failures reached the limit: set aside with the last error


@dataclass
class DrainRun:
    """One run over the spool, oldest first: when to stop, and what each failure means."""

    max_attempts: int
    republished: int = 0
    failures: list[Failure] = field(default_factory=list)
    outages_in_a_row: int = 0

    def took(self) -> None:
        self.republished += 1
        self.outages_in_a_row = 0

    def failed(self, failure: Failure) -> None:
        self.failures.append(failure)
        if failure.fault is Fault.OUTAGE:
            self.outages_in_a_row += 1

    @property
    def pubsub_down(self) -> bool:
        """Stop here: the run's last publishes all waited for a Pub/Sub that did not answer."""
        return self.outages_in_a_row >= OUTAGE_AFTER_FAILURES

    @property
    def outage_error(self) -> str | None:
        """The last failure that was Pub/Sub not answering, if any: why events still wait."""
        return next((f.error for f in reversed(self.failures) if f.fault is Fault.OUTAGE), None)

    def verdict(self, failure: Failure) -> Verdict:
        """Once the run is over: whether the failure counts against its event, and its fate."""
        own = failure.fault is Fault.EVENT or (
            failure.fault is Fault.UNCLEAR and self.republished > 0
        )
        if not own:
            return Verdict.WAIT
        return Verdict.PARK if failure.event.attempts + 1 >= self.max_attempts else Verdict.RETRY


def parked_unpublishable(failure: Failure, now: datetime) -> tuple[dict[str, Any], list[bytes]]:
    """The parked/ document of an event set aside: everything a replay needs, and why; and
    the pieces of a body too long for one document (see `records.raw_body`)."""
    event = failure.event
    raw = event.data
    attributes = event.fields.get("attributes")
    attempts = event.attempts + 1
    kept, pieces = raw_body(raw)
    document = {
        "category": UNPUBLISHABLE,
        "reason": f"not published after {attempts} attempts: {failure.error}",
        "error": failure.error,
        "attempts": attempts,
        "provider": event.attributes.get("provider"),
        "kind": event.attributes.get("kind"),
        "conversationId": event.attributes.get("conversationId"),
        "requestId": event.attributes.get("requestId"),
        "payloadKey": payload_key(raw),
        **kept,
        "topicKey": event.fields.get("topicKey"),
        "attributes": dict(attributes) if isinstance(attributes, Mapping) else attributes,
        "spoolId": event.spool_id,
        "receivedTime": event.fields.get("receivedTime"),
        "recordTime": now,
    }
    return document, pieces
