"""The writes a payload makes: idempotent, monotonic, minimal."""

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.core import records
from shared.core.events import Payload
from shared.core.records import Write
from shared.ops import sends
from shared.ops.sends import SentMessage
from shared.providers.bm.normalise import normalise_one

CID = "c1"
NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)
T0 = datetime(2024, 5, 1, 10, tzinfo=UTC)


def receipts(*entries: tuple[str, str], at: datetime = T0) -> Payload:
    return normalise_one(
        json.dumps(
            {
                "conversationId": CID,
                "agent": "brands/b/agents/a",
                "receipts": {
                    "createTime": at.isoformat(),
                    "receipts": [
                        {"message": f"conversations/{CID}/messages/{m}", "receiptType": t}
                        for m, t in entries
                    ],
                },
            }
        ).encode()
    )


def apply(state: dict[str, dict[str, Any]], writes: list[Write]) -> dict[str, dict[str, Any]]:
    """What Firestore does with the writes: create a document, or update the fields named
    (a dotted name is a field inside a map)."""
    for write in writes:
        assert write.exists == (write.path in state), write.path
        document = state.setdefault(write.path, {})
        for name, value in write.data.items():
            *maps, field = name.split(".") if write.exists else [name]
            inner = document
            for key in maps:
                inner = inner.setdefault(key, {})
            inner[field] = value
    return state


def recorded_receipts(state: dict[str, dict[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The receipts recorded on the messages of the conversation, by `{message}~{status}`."""
    prefix = f"{records.conversation_path(CID)}/{records.MESSAGES}/"
    return records.receipts_of(
        {path.removeprefix(prefix): doc for path, doc in state.items() if path.startswith(prefix)}
    )


def run(state: dict[str, dict[str, Any]], payload: Payload) -> list[Write]:
    existing: Mapping[str, Mapping[str, Any] | None] = {
        path: state.get(path) for path in records.paths_to_read(payload)
    }
    writes = records.plan(payload, existing, NOW)
    apply(state, writes)
    return writes


def test_three_receipts_are_three_writes_onto_their_messages_and_nothing_else() -> None:
    state: dict[str, dict[str, Any]] = {}
    payload = receipts(("m1", "DELIVERED"), ("m2", "DELIVERED"), ("m3", "READ"))
    assert records.paths_to_read(payload) == [
        records.message_path(CID, m) for m in ("m1", "m2", "m3")
    ]
    writes = run(state, payload)
    assert len(writes) == 3  # one per message: no receipt document, no conversation
    receipt = recorded_receipts(state)["m1~DELIVERED"]
    assert (receipt["messageId"], receipt["receiptType"], receipt["time"]) == (
        "m1",
        "DELIVERED",
        T0,
    )
    assert state[records.message_path(CID, "m3")]["status"] == "READ"
    assert state[records.message_path(CID, "m3")]["direction"] == "AGENT"
    assert records.conversation_path(CID) not in state  # no document all receipts share


def test_a_duplicate_payload_writes_nothing() -> None:
    state: dict[str, dict[str, Any]] = {}
    payload = receipts(("m1", "DELIVERED"), ("m2", "READ"))
    run(state, payload)
    assert run(state, payload) == []


def test_a_receipt_repeated_inside_one_payload_is_one_record() -> None:
    state: dict[str, dict[str, Any]] = {}
    writes = run(state, receipts(("m1", "READ"), ("m1", "READ")))
    assert [w.path for w in writes] == [records.message_path(CID, "m1")]
    assert list(recorded_receipts(state)) == ["m1~READ"]


def test_a_late_delivered_never_downgrades_read_but_keeps_its_time() -> None:
    state: dict[str, dict[str, Any]] = {}
    run(state, receipts(("m1", "READ"), at=T0 + timedelta(minutes=5)))
    run(state, receipts(("m1", "DELIVERED"), at=T0))
    message = state[records.message_path(CID, "m1")]
    assert message["status"] == "READ"
    assert message["readTime"] == T0 + timedelta(minutes=5)
    assert message["deliveredTime"] == T0
    assert set(recorded_receipts(state)) == {"m1~READ", "m1~DELIVERED"}


def test_a_message_is_placed_in_time_by_its_earliest_status_whatever_the_arrival_order() -> None:
    state: dict[str, dict[str, Any]] = {}
    run(state, receipts(("m1", "READ"), at=T0 + timedelta(minutes=5)))
    message = state[records.message_path(CID, "m1")]
    assert message[records.FIRST_TIME] == T0 + timedelta(minutes=5)
    assert message["agent"] == "brands/b/agents/a"
    run(state, receipts(("m1", "DELIVERED"), at=T0))  # late, but earlier
    assert state[records.message_path(CID, "m1")][records.FIRST_TIME] == T0
    run(state, receipts(("m2", "DELIVERED"), at=T0))
    writes = run(state, receipts(("m2", "READ"), at=T0 + timedelta(minutes=1)))
    assert all(records.FIRST_TIME not in w.data for w in writes)  # a later status leaves it


def test_a_receipt_without_a_time_is_dated_when_recorded() -> None:
    payload = receipts(("m1", "DELIVERED"))
    timeless = replace(payload, receipts=tuple(replace(r, time=None) for r in payload.receipts))
    state: dict[str, dict[str, Any]] = {}
    run(state, timeless)
    message = state[records.message_path(CID, "m1")]
    assert (message["deliveredTime"], message[records.FIRST_TIME]) == (NOW, NOW)


def test_the_business_records_its_sends_once_without_changing_a_status() -> None:
    state: dict[str, dict[str, Any]] = {}
    run(state, receipts(("m1", "DELIVERED")))
    sent = [
        SentMessage("bm", "brands/b/agents/a", CID, m, T0 - timedelta(seconds=s))
        for m, s in (("m1", 3), ("m2", 1))
    ]
    [payload] = sends.sent_payloads(sent)  # one conversation: one payload
    run(state, payload)
    m1, m2 = (state[records.message_path(CID, m)] for m in ("m1", "m2"))
    assert (m1["status"], m1["sentTime"], m1[records.FIRST_TIME]) == (
        "DELIVERED",
        T0 - timedelta(seconds=3),
        T0 - timedelta(seconds=3),
    )
    assert "status" not in m2  # Business Messages has no SENT status
    assert m2["sentTime"] == T0 - timedelta(seconds=1)
    assert run(state, sends.sent_payloads(sent)[0]) == []


def test_delivered_then_read_moves_up() -> None:
    state: dict[str, dict[str, Any]] = {}
    run(state, receipts(("m1", "DELIVERED")))
    run(state, receipts(("m1", "READ"), at=T0 + timedelta(seconds=30)))
    message = state[records.message_path(CID, "m1")]
    assert (message["status"], message["deliveredTime"], message["readTime"]) == (
        "READ",
        T0,
        T0 + timedelta(seconds=30),
    )


def user_message(message_id: str, at: datetime, place: str) -> Payload:
    return normalise_one(
        json.dumps(
            {
                "conversationId": CID,
                "requestId": f"req-{message_id}",
                "message": {
                    "name": f"conversations/{CID}/messages/{message_id}",
                    "text": "hi",
                    "createTime": at.isoformat(),
                },
                "context": {"placeId": place},
            }
        ).encode()
    )


def test_user_message_is_recorded_once_and_keeps_the_read_receipt_state() -> None:
    path = records.message_path(CID, "u1")
    state: dict[str, dict[str, Any]] = {path: {"agentReadReceipt": {"state": "SENT"}}}
    writes = run(state, user_message("u1", T0, "p1"))
    assert any(w.path == path and w.exists for w in writes)
    assert state[path][records.FIRST_TIME] == T0
    assert state[path]["agentReadReceipt"] == {"state": "SENT"}
    assert state[path]["text"] == "hi"
    assert state[path]["direction"] == "USER"
    assert run(state, user_message("u1", T0, "p1")) == []


def test_the_conversation_keeps_the_latest_context() -> None:
    state: dict[str, dict[str, Any]] = {}
    run(state, user_message("u2", T0 + timedelta(minutes=1), "newer"))
    run(state, user_message("u1", T0, "older"))  # arrives late
    assert state[records.conversation_path(CID)]["context"] == {"placeId": "newer"}


def test_parked_parts_are_created_once() -> None:
    state: dict[str, dict[str, Any]] = {}
    payload = receipts(("m1", "READ"), ("m2", "RECEIPT_TYPE_UNSPECIFIED"))
    run(state, payload)
    parked = state[records.parked_path(payload.key)]
    assert parked["category"] == "REJECTED_RECEIPT"
    assert parked["setAside"] == 1
    [element] = parked["elements"]
    assert element["index"] == 1
    assert "RECEIPT_TYPE_UNSPECIFIED" in element["reason"]
    assert parked["rawBody"] == payload.raw  # the whole body, so it can be replayed
    assert run(state, payload) == []


def test_a_whole_unusable_payload_is_parked_with_its_bytes() -> None:
    state: dict[str, dict[str, Any]] = {}
    payload = normalise_one(b"\x00 not json")
    run(state, payload)
    assert state[records.parked_path(payload.key)]["rawBody"] == b"\x00 not json"


def test_huge_receipt_payloads_split_into_commits_that_fit() -> None:
    payload = receipts(*[(f"m{i}", "DELIVERED") for i in range(450)])
    groups = records.commit_groups([payload])
    parts = [part for group in groups for part in group]
    assert [len(p.receipts) for p in parts] == [450]  # one write each: one commit
    payload = receipts(*[(f"m{i}", "DELIVERED") for i in range(1000)])
    parts = [part for group in records.commit_groups([payload]) for part in group]
    assert [len(p.receipts) for p in parts] == [499, 499, 2]  # and the conversation, at most
    state: dict[str, dict[str, Any]] = {}
    assert all(len(run(state, part)) <= 500 for part in parts)
    assert len(recorded_receipts(state)) == 1000


def test_the_newest_template_review_replaces_the_last_one() -> None:
    from shared.core.events import StatusScale, TemplateReview

    def review(status: str, minute: int, **fields: Any) -> Payload:
        template = ("waba", "welcome", "en")
        at = T0 + timedelta(minutes=minute)
        item = TemplateReview(template, status, at, key=f"{status}-{minute}", fields=fields)
        return Payload(
            provider="chatapp", kind="ChatAppAudit", key="k", scale=StatusScale({}), reviews=(item,)
        )

    state: dict[str, dict[str, Any]] = {}
    run(state, review("fail", 0, reason="bad variable"))
    run(state, review("pass", 2))
    run(state, review("auditing", 1))  # older, processed late: history only
    latest = state[records.template_review_path(("waba", "welcome", "en"))]
    assert (latest["status"], latest["reason"]) == ("pass", None)
    assert len([p for p in state if "/history/" in p]) == 3


def test_receipts_carry_an_expiry_only_when_retention_is_set() -> None:
    payload = receipts(("m1", "READ"))
    path = records.message_path(CID, "m1")
    kept = {w.path: w.data for w in records.plan(payload, {}, NOW)}
    assert "expireTime" not in kept[path]
    expiring = {w.path: w.data for w in records.plan(payload, {}, NOW, timedelta(days=30))}
    assert expiring[path]["expireTime"] == NOW + timedelta(days=30)  # the message, with them
    user = user_message("u1", T0, "p1")
    written = records.plan(user, {}, NOW, timedelta(days=30))
    assert all("expireTime" not in w.data for w in written)  # what users said is kept
