"""The change stream's events, from the recorder's plan (pure): one per committed change,
valid against the schema, the same id (and event) again only when a redelivery of the same
payload finds its own change recorded."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from shared import providers
from shared.core import changes, records
from shared.core.events import Payload
from shared.core.read_receipts import FIELD
from tests.change_consumer import validate
from tests.unit.test_records import apply
from tools.payloads import chatapp as ca
from tools.payloads import whatsapp as wa

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
AT = "1764590400"  # 2025-12-01T12:00:00Z
MESSAGE = wa.wamid("m1")


def whatsapp(*statuses: dict[str, Any], messages: tuple[dict[str, Any], ...] = ()) -> Payload:
    change = wa.change(statuses=statuses, messages=messages, contacts=[wa.contact()])
    body = wa.encode(wa.body(wa.entry(change)))
    [payload] = providers.normalise({"provider": "whatsapp"}, body, NOW)
    return payload


def chatapp(kind: str, *events: dict[str, Any]) -> list[Payload]:
    return providers.normalise({"provider": "chatapp", "kind": kind}, ca.encode(list(events)), NOW)


def record(
    state: dict[str, dict[str, Any]], *payloads: Payload
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Records the payloads one after another; returns the documents and the events."""
    events: list[dict[str, Any]] = []
    for payload in payloads:
        existing: Mapping[str, Any] = {p: state.get(p) for p in records.paths_to_read(payload)}
        recording = records.record(payload, existing, NOW)
        apply(state, recording.writes)
        events += [change.cloud_event() for change in recording.changes]
    for event in events:
        validate(event)
    return state, events


def test_each_first_status_is_one_event_with_the_business_correlation_data() -> None:
    delivered = wa.status(MESSAGE, "delivered", at=AT, biz_opaque_callback_data="order-7")
    _, events = record({}, whatsapp(wa.status(MESSAGE, "sent", at=AT), delivered))
    assert [(e["type"], e["data"]["status"]) for e in events] == [
        (changes.MESSAGE_STATUS, "sent"),
        (changes.MESSAGE_STATUS, "delivered"),
    ]
    data = events[1]["data"]
    assert data["receipt"]["bizOpaqueCallbackData"] == "order-7"
    assert data["message"]["bizOpaqueCallbackData"] == "order-7"
    assert data["time"] == events[1]["time"] == "2025-12-01T12:00:00Z"
    assert events[1]["source"] == f"/whatsapp/{wa.PHONE_NUMBER_ID}"
    assert data["statusRank"] > events[0]["data"]["statusRank"]


def test_a_duplicate_or_late_receipt_that_changes_nothing_emits_nothing() -> None:
    read = whatsapp(wa.status(MESSAGE, "read", at=AT))
    state, first = record({}, read)
    # The platform sends it again in another body (another payload key): nothing new.
    again = whatsapp(wa.status(MESSAGE, "read", at=AT), wa.status(wa.wamid("x"), "sent", at=AT))
    state, second = record(state, again)
    assert [e["data"]["messageId"] for e in second] == [wa.wamid("x")]
    # A late `delivered` is a first time for its status: one event, with the lower rank.
    state, late = record(state, whatsapp(wa.status(MESSAGE, "delivered", at=AT)))
    assert [e["data"]["status"] for e in late] == ["delivered"]
    assert late[0]["data"]["statusRank"] < first[0]["data"]["statusRank"]
    assert state[_message_path()]["status"] == "read"


def test_a_redelivery_of_the_same_payload_publishes_the_same_events_again() -> None:
    payload = whatsapp(
        wa.status(MESSAGE, "delivered"),  # no time of its own in a moment: dated when recorded
        messages=(wa.message(wa.wamid("u1"), "text", at=AT),),
    )
    payload = _without_status_time(payload)
    state, first = record({}, payload)
    # Meanwhile the READ sender settled the user message's READ on its document.
    [user_message] = [path for path, doc in state.items() if doc.get("direction") == "USER"]
    state[user_message][FIELD] = {"state": "SENT", "attempts": 1, "sentTime": NOW}
    # The delivery that committed it died before publishing: the next one finds it recorded.
    later = records.record(
        payload, {p: state.get(p) for p in records.paths_to_read(payload)}, NOW.replace(hour=13)
    )
    assert later.writes == []
    assert [c.cloud_event() for c in later.changes] == first
    assert {e["type"] for e in first} == {changes.MESSAGE_STATUS, changes.MESSAGE_RECEIVED}


def test_user_messages_reviews_and_what_is_set_aside_are_events_too() -> None:
    inbound = chatapp("ChatAppInbound", ca.inbound_text("in-1", "8613900000001", "Hi"))
    audit = chatapp("ChatAppAudit", ca.audit("tpl_1", "en_US", "pass"))
    status = chatapp(
        "ChatAppStatus", ca.status("out-1", "Delivered", "8613900000001"), {"Status": "?"}
    )
    _, events = record({}, *inbound, *audit, *status)
    by_type = {e["type"]: e for e in events}
    received = by_type[changes.MESSAGE_RECEIVED]["data"]
    assert (received["kind"], received["content"]["messageType"]) == ("message", "TEXT")
    assert "text" in received["content"]
    review = by_type[changes.TEMPLATE_REVIEWED]
    assert (review["data"]["templateCode"], review["data"]["status"]) == ("tpl_1", "pass")
    parked = by_type[changes.EVENT_PARKED]["data"]
    assert (parked["category"], parked["setAside"]) == ("REJECTED_RECEIPT", 1)
    assert "rawBody" not in parked  # the body stays in Firestore


def test_an_event_is_json_whatever_its_receipt_holds() -> None:
    change = changes.message_status(
        "p", None, "c", "m", "READ", 2, NOW, {"when": NOW, "raw": b"\x00", "n": [1, {"x": NOW}]}, {}
    )
    data, attributes = change.message()
    event = json.loads(data)
    validate(event)
    assert event["data"]["receipt"] == {
        "when": "2026-12-01T12:00:00Z",
        "raw": "AA==",
        "n": [1, {"x": "2026-12-01T12:00:00Z"}],
    }
    assert attributes == {
        "content-type": changes.CONTENT_TYPE,
        "type": changes.MESSAGE_STATUS,
        "provider": "p",
    }


def test_a_number_json_does_not_have_is_set_aside_and_its_neighbours_stream() -> None:
    nan = wa.status("m2", "read", pricing={"billable": float("nan")})  # Python writes NaN
    change = wa.change(statuses=[wa.status(MESSAGE, "read", at=AT), nan])
    raw = wa.encode(wa.body(wa.entry(change)))
    assert b"NaN" in raw
    _, events = record({}, *providers.normalise({"provider": "whatsapp"}, raw, NOW))
    assert sorted(e["data"].get("messageId") or "(parked)" for e in events) == sorted(
        [MESSAGE, "(parked)"]
    )
    [parked] = [e for e in events if e["type"] == changes.EVENT_PARKED]
    assert "NaN" in parked["data"]["reason"]


parts = st.lists(st.text(max_size=4), min_size=1, max_size=3)


@given(parts, parts)
def test_distinct_changes_never_share_an_id(one: list[str], other: list[str]) -> None:
    same = one == other
    assert (changes.change_id("t", "p", *one) == changes.change_id("t", "p", *other)) == same


def test_a_delivery_publishes_in_one_request_within_pubsubs_limits() -> None:
    small = [(b"x" * 500, {"type": "t"})] * 1001
    assert [len(r) for r in changes.requests(small)] == [1000, 1]
    big = [(b"x" * (4 * 1024 * 1024), {"type": "t"})] * 3
    assert [len(r) for r in changes.requests(big)] == [2, 1]
    assert list(changes.requests([])) == []


def _message_path() -> str:
    return records.message_path(f"whatsapp:{wa.PHONE_NUMBER_ID}:{wa.USER}", MESSAGE)


def _without_status_time(payload: Payload) -> Payload:
    return replace(payload, receipts=tuple(replace(r, time=None) for r in payload.receipts))
