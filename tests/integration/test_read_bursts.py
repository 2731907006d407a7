"""The READ sender's bursts and time limit, on the Firestore emulator: one READ covers a
conversation's earlier messages where the platform says so, and none is marked twice."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from google.cloud import firestore

from shared.adapters.read_receipt_sender import ReadReceiptSender, ReceiptNotSentYet, not_final
from shared.core import read_receipts, records
from shared.core.read_receipts import Outcome, ReadTarget

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@dataclass
class ScriptedApi:
    """The provider's API as the sender sees it: answers in order, then success; calls kept."""

    answers: list[Outcome] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    def send_read_receipt(self, target: ReadTarget) -> Outcome:
        self.calls.append(target.message_id)
        return self.answers.pop(0) if self.answers else Outcome(1)


def burst(size: int, key: str | None = "b") -> list[ReadTarget]:
    cid = f"burst-{uuid.uuid4().hex}"
    return [ReadTarget(cid, f"m{i}", burst=key) for i in range(1, size + 1)]


def state(db: firestore.Client, target: ReadTarget) -> dict[str, object]:
    path = records.message_path(target.conversation_id, target.message_id)
    return dict((db.document(path).get().to_dict() or {})[read_receipts.FIELD])


def sender(db: firestore.Client, now: datetime = NOW) -> ReadReceiptSender:
    return ReadReceiptSender(db, lease=timedelta(seconds=30), clock=lambda: now)


def test_one_read_for_the_newest_covers_the_burst_and_a_redelivery_sends_none(
    db: firestore.Client,
) -> None:
    targets, api = burst(3), ScriptedApi()
    settled = sender(db).settle(targets, api)
    assert api.calls == ["m3"]
    assert [(s.target.message_id, s.state) for s in settled] == [
        ("m3", "SENT"),
        ("m1", "SENT"),
        ("m2", "SENT"),
    ]
    assert [state(db, t).get("coveredBy") for t in targets] == ["m3", "m3", None]
    assert [state(db, t)["attempts"] for t in targets] == [0, 0, 1]
    again = sender(db).settle(targets, api)
    assert api.calls == ["m3"]
    assert {s.state for s in again} == {"SENT"}


def test_targets_without_a_burst_are_each_sent_once(db: firestore.Client) -> None:
    targets, api = burst(2, key=None), ScriptedApi()
    sender(db).settle(targets, api)
    assert api.calls == ["m1", "m2"]


def test_a_final_refusal_of_the_newest_lets_the_earlier_go_on(db: firestore.Client) -> None:
    targets = burst(3)
    api = ScriptedApi([Outcome(1, "HTTP 400 131009", permanent=True)])
    settled = {s.target.message_id: s.state for s in sender(db).settle(targets, api)}
    assert api.calls == ["m3", "m2"]
    assert settled == {"m3": "FAILED", "m2": "SENT", "m1": "SENT"}
    assert state(db, targets[0])["coveredBy"] == "m2"


def test_a_message_past_the_platforms_limit_is_failed_without_a_call(
    db: firestore.Client,
) -> None:
    cid = f"old-{uuid.uuid4().hex}"
    old = ReadTarget(cid, "old", not_after=NOW - timedelta(seconds=1))
    fresh = ReadTarget(cid, "fresh", not_after=NOW + timedelta(days=1))
    api = ScriptedApi()
    settled = {s.target.message_id: s for s in sender(db).settle([old, fresh], api)}
    assert api.calls == ["fresh"]
    assert settled["old"].state == "FAILED"
    assert state(db, old)["error"] == read_receipts.TOO_OLD


def test_a_transient_failure_leaves_the_burst_pending_and_a_redelivery_sends_it_once(
    db: firestore.Client,
) -> None:
    targets = burst(2)
    api = ScriptedApi([Outcome(3, "HTTP 503", permanent=False)])
    first = sender(db).settle(targets, api)
    assert {s.state for s in first} == {read_receipts.PENDING}
    with pytest.raises(ReceiptNotSentYet):
        not_final(*first)
    again = sender(db, NOW + timedelta(minutes=5)).settle(targets, api)  # after the lease
    assert api.calls == ["m2", "m2"]
    assert {s.state for s in again} == {"SENT"}
    assert state(db, targets[0])["coveredBy"] == "m2"


def test_a_claim_held_elsewhere_stops_the_burst_so_nothing_is_marked_twice(
    db: firestore.Client,
) -> None:
    targets, api = burst(3), ScriptedApi()
    held = targets[1]
    path = records.message_path(held.conversation_id, held.message_id)
    claim = read_receipts.claimed(None, NOW, timedelta(seconds=30))
    db.document(path).create({read_receipts.FIELD: claim})
    settled = {s.target.message_id: s.state for s in sender(db).settle(targets, api)}
    assert api.calls == []
    assert settled == {"m1": "WAITING", "m2": "WAITING", "m3": "WAITING"}
    released = state(db, targets[0])  # its claim is let go: the other attempt may take it
    assert (released["state"], released["leaseExpireTime"]) == (read_receipts.PENDING, None)
