"""What Firestore would refuse is found while normalising, and what one request may write is
bounded: the shared screening every provider's events pass through."""

import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.adapters.logs import RateLimit
from shared.core import records, routing
from shared.core.docids import doc_id
from shared.core.events import REJECTED_RECEIPT, UNSTORABLE, Payload
from shared.core.ingress import parse_json
from shared.core.storable import (
    MAX_INPUT_DEPTH,
    ascii_digits,
    identifier_problem,
    time_problem,
    value_problem,
)
from shared.core.times import parse_rfc3339
from shared.providers import normalise
from shared.providers.bm.read_receipts import read_targets
from tools.payloads import bm as bm_payloads
from tools.payloads import chatapp as ca
from tools.payloads import rbm as rbm_payloads

NOW = datetime(2026, 1, 1, tzinfo=UTC)
USER = "8613900000001"


def chatapp(kind: str, events: Any) -> list[Payload]:
    raw = events if isinstance(events, bytes) else json.dumps(events).encode()
    return normalise({"provider": "chatapp", "kind": kind}, raw, NOW)


def planned(payloads: list[Payload]) -> list[records.Write]:
    return [
        w
        for group in records.commit_groups(payloads)
        for p in group
        for w in records.plan(p, {}, NOW)
    ]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("\ud800", "lone surrogate"),
        ({"": 1}, "empty or non-text map key"),
        ({"a": {"\udfff": 1}}, "lone surrogate"),
        (2**63, "beyond 64 bits"),
        (-(2**63) - 1, "beyond 64 bits"),
        ([[1]], "array directly inside an array"),
        ({"a": [{"b": [[]]}]}, "array directly inside an array"),
        (json.loads("{" * 0 + '{"a":' * 21 + "1" + "}" * 21), "nested deeper"),
    ],
)
def test_values_firestore_would_refuse_are_named(value: Any, problem: str) -> None:
    found = value_problem(value)
    assert found is not None
    assert problem in found


@pytest.mark.parametrize(
    "value", ["text", 2**63 - 1, -(2**63), 1.5, None, True, b"\xff", [1, {"a": [2]}], {"a.b": "ok"}]
)
def test_values_firestore_stores_pass(value: Any) -> None:
    assert value_problem(value) is None


@pytest.mark.parametrize("identifier", ["", ".", "..", " ", "a\ud800", "a\nb", "x" * 501])
def test_identifiers_that_name_no_document_or_api_path_are_refused(identifier: str) -> None:
    assert identifier_problem(identifier) is not None


def test_phone_numbers_in_any_digits_are_one_number() -> None:
    assert ascii_digits("+86 138-0000-0000") == "8613800000000"
    assert ascii_digits("٨٦١٣٨٠٠٠٠٠٠٠٠") == "8613800000000"  # Arabic-Indic
    fullwidth = "".join(chr(0xFF10 + int(digit)) for digit in "8613800000000")
    assert ascii_digits(fullwidth) == "8613800000000"
    assert ascii_digits("page-123") is None
    arabic = ca.status("m1", "Sent", "٨٦١٣٩٠٠٠٠٠٠٠١")
    [payload] = chatapp("ChatAppStatus", [arabic, ca.status("m2", "Sent", USER)])
    assert payload.conversation["userNumber"] == USER  # one conversation, not two


def test_document_ids_are_injective_even_with_the_separator_in_a_part() -> None:
    assert doc_id("waba~X", "T", "en") != doc_id("waba", "X~T", "en")
    assert doc_id("m1", "READ") == "m1~READ"


def test_one_element_firestore_would_refuse_is_parked_and_the_rest_kept() -> None:
    batch = [
        ca.inbound_text("ok-1", USER, "hello"),
        ca.inbound_text("bad-text", USER, "\ud800"),
        {**ca.inbound_image("bad-key", USER, "https://x/1.jpg"), "Message": '{"": 1}'},
        {**ca.inbound_image("bad-int", USER, "https://x/2.jpg"), "Message": '{"size": 1e400}'},
        {
            **ca.inbound_image("big-int", USER, "https://x/3.jpg"),
            "Message": '{"n": 99999999999999999999}',
        },
        ca.inbound_text("ok-2", USER, "bye"),
    ]
    payloads = chatapp("ChatAppInbound", batch)
    kept = [m.message_id for p in payloads for m in p.user_messages]
    parked = {p.index: p for payload in payloads for p in payload.parked}
    # 1e400 is infinity to Python's JSON: Firestore would keep it, but the change stream's
    # JSON could not carry it, so it is set aside too.
    assert kept == ["ok-1", "ok-2"]
    assert set(parked) == {1, 2, 3, 4}
    assert {p.category for p in parked.values()} == {UNSTORABLE}
    assert "surrogate" in parked[1].reason
    assert "map key" in parked[2].reason
    assert "NaN, Infinity" in parked[3].reason
    assert "64 bits" in parked[4].reason
    assert all(value_problem(w.data) is None for w in planned(payloads))  # all storable


def test_a_bad_conversation_id_parks_the_whole_body_without_raising() -> None:
    body = bm_payloads.encode(bm_payloads.user_text("conv-\ud800", "m1", "hi"))
    [payload] = normalise({"provider": "bm", "kind": "message"}, body, NOW)
    assert [p.category for p in payload.parked] == [UNSTORABLE]
    assert payload.conversation_id is None
    [write] = planned([payload])
    assert write.data["rawBody"] == body
    assert value_problem(write.data) is None


def test_a_message_name_ending_in_dot_dot_is_no_read_target() -> None:
    document = bm_payloads.user_text("conv-1", "m1", "hi")
    document["message"]["name"] = "conversations/conv-1/messages/.."
    payloads = normalise({"provider": "bm", "kind": "message"}, bm_payloads.encode(document), NOW)
    assert read_targets(payloads) == []
    assert payloads[0].parked


def test_a_long_batch_is_recorded_whole_in_commits_that_fit() -> None:
    batch = [ca.status(f"m{i}", "Sent", USER) for i in range(1001)]
    [payload] = chatapp("ChatAppStatus", batch)
    assert (len(payload.receipts), payload.parked) == (1001, ())
    groups = records.commit_groups([payload])
    assert len(groups) == 3
    assert all(sum(p.most_writes() for p in group) <= 500 for group in groups)
    assert len(planned([payload])) == 1001


def test_a_megabyte_of_zeros_is_one_parked_document_in_pieces() -> None:
    zeros = b"[" + b"0," * 500_000 + b"0]"
    payloads = chatapp("ChatAppStatus", zeros)
    writes = planned(payloads)
    assert [w.path.count("/pieces/") for w in writes] == [0, 1]  # the document and a piece
    document = writes[0].data
    assert (document["setAside"], len(document["elements"])) == (500_001, 100)
    assert document["reason"].startswith("500001 of 500001 elements set aside: 500001x not an")
    assert document["rawBody"] + writes[1].data["rawBody"] == zeros


def test_unusable_elements_of_a_body_are_one_parked_document_beside_the_valid_ones() -> None:
    batch: list[Any] = [0] * 30 + [ca.status("m1", "Sent", USER)]
    batch += [{**ca.status(f"n{i}", "Sent", USER), "Status": "Brand-new"} for i in range(21)]
    payloads = chatapp("ChatAppStatus", batch)
    assert [r.message_id for p in payloads for r in p.receipts] == ["m1"]
    [parked] = [w.data for w in planned(payloads) if w.path.startswith("parked/")]
    assert (parked["category"], parked["setAside"]) == (REJECTED_RECEIPT, 51)
    assert parked["reason"] == (
        "51 of 52 elements set aside: 30x not an object; 21x Status is not a known status"
    )
    assert [e["index"] for e in parked["elements"]] == [*range(30), *range(31, 52)]


def test_a_few_malformed_elements_are_parked_one_by_one() -> None:
    batch: list[Any] = [0, 0, *(ca.status(f"m{i}", "Sent", USER) for i in range(5))]
    payloads = chatapp("ChatAppStatus", batch)
    assert [p.index for payload in payloads for p in payload.parked] == [0, 1]
    assert sum(len(payload.receipts) for payload in payloads) == 5


def test_the_same_message_twice_in_one_batch_is_planned_once() -> None:
    message = ca.inbound_text("mo-1", USER, "hi")
    payloads = chatapp("ChatAppInbound", [message, message])
    paths = [w.path for w in planned(payloads)]
    assert len(paths) == len(set(paths))  # Firestore refuses two creates of one document
    assert sum("/messages/" in path for path in paths) == 1


def test_at_most_two_writes_per_event_whatever_the_request() -> None:
    many = 1000
    users = [f"86139{i:08d}" for i in range(many)]  # each in a conversation of its own
    statuses = [ca.status("m", "Sent", user) for user in users]
    assert len(planned(chatapp("ChatAppStatus", statuses))) == many  # the messages only
    inbound = [ca.inbound_text("u", user, "hi") for user in users]
    assert len(planned(chatapp("ChatAppInbound", inbound))) == 2 * many  # and each's
    reviews = [ca.audit(f"t{i}", "en", "pass") for i in range(many)]  # conversation
    assert len(planned(chatapp("ChatAppAudit", reviews))) == 2 * many


def test_refusal_lines_are_rate_limited_and_the_suppressed_counted() -> None:
    now = [0.0]
    limit = RateLimit(per_second=1, burst=3, clock=lambda: now[0])
    record = logging.makeLogRecord({"msg": "refused"})
    assert [limit.filter(record) for _ in range(10)] == [True] * 3 + [False] * 7
    now[0] = 2.5
    passed = logging.makeLogRecord({"msg": "refused"})
    assert limit.filter(passed)
    assert passed.__dict__["suppressed"] == 7


# --- the boundary screen: hostile values found without recursion -----------------------

hostile_leaves = st.one_of(
    st.sampled_from(["\ud800", "a\udfffb", 2**64, -(2**63) - 1, 10**20, 1e308, -0.0, float("inf")]),
    st.integers(),
    st.text(max_size=5),
)


def nest(depth: int, leaf: Any, in_lists: bool = False) -> Any:
    value = leaf
    for level in range(depth):
        value = [{"k": value}] if in_lists and level % 2 else {"k": value}
    return value


@settings(max_examples=200, deadline=None)
@given(depth=st.integers(0, 1000), leaf=hostile_leaves, in_lists=st.booleans())
def test_the_screen_walks_any_depth_without_recursing(
    depth: int, leaf: Any, in_lists: bool
) -> None:
    found = value_problem(nest(depth, leaf, in_lists), MAX_INPUT_DEPTH)
    leaf_problem = value_problem(leaf)
    if depth > MAX_INPUT_DEPTH:
        assert found is not None
    elif leaf_problem is not None:
        assert found == leaf_problem
    elif not in_lists or depth < 2 * MAX_INPUT_DEPTH:
        assert found is None or "nested deeper" in found


def test_integers_too_long_for_python_are_beyond_64_bits_not_a_broken_body() -> None:
    body = b'[{"n": ' + b"9" * 5000 + b'}, {"n": 12345678901234567890}, {"n": 1}]'
    parsed = parse_json(body)
    assert [value_problem(element) for element in parsed] == [
        "an integer beyond 64 bits",
        "an integer beyond 64 bits",
        None,
    ]
    assert parse_json(b"[" * 100_000 + b"]" * 100_000) is None  # absurd nesting: not JSON


@pytest.mark.parametrize(
    ("time", "storable"),
    [
        ("0001-01-01T00:00:00+01:00", False),
        ("9999-12-31T23:30:00-01:00", False),
        ("0001-01-01T00:00:00Z", True),
        ("9999-12-31T23:59:59.999999Z", True),
    ],
)
def test_times_outside_firestores_range_are_found(time: str, storable: bool) -> None:
    parsed = parse_rfc3339(time)
    assert parsed is not None
    assert (time_problem(parsed) is None) is storable
    assert (value_problem({"t": parsed}) is None) is storable


def test_a_send_time_outside_firestores_range_parks_the_body_unstorable() -> None:
    event = rbm_payloads.text_message("hi", phone="+447700900001")
    event["sendTime"] = "0001-01-01T00:00:00+01:00"
    [payload] = normalise({"provider": "rbm", "kind": "text"}, rbm_payloads.push(event), NOW)
    assert [(p.category, p.reason) for p in payload.parked] == [
        (UNSTORABLE, "a time outside years 1 to 9999 (UTC)")
    ]
    [write] = planned([payload])
    assert value_problem(write.data) is None


def test_a_kind_with_a_lone_surrogate_is_stored_escaped() -> None:
    event = rbm_payloads.user_event("DELIVERED", "m1", phone="+447700900001")
    event["eventType"] = "DELIVERED\ud800"
    [payload] = normalise({"provider": "rbm"}, rbm_payloads.push(event), NOW)
    [write] = planned([payload])
    assert write.data["kind"] == "DELIVERED\\ud800"
    assert value_problem(write.data) is None


def test_attribute_values_that_cannot_be_encoded_are_dropped() -> None:
    assert routing.attributes(provider="bm", conversationId="c\ud800", kind="") == {
        "provider": "bm"
    }
