"""What Firestore would refuse is found while normalising, and what one request may write is
bounded: the shared screening every provider's events pass through."""

import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.adapters.logs import RateLimit
from shared.core import records
from shared.core.docids import doc_id
from shared.core.events import MALFORMED, TOO_MANY, UNSTORABLE, Payload
from shared.core.screening import MAX_EVENTS, MAX_PARKED_ELEMENTS
from shared.core.storable import ascii_digits, identifier_problem, value_problem
from shared.providers import normalise
from shared.providers.bm.read_receipts import read_targets
from tools.payloads import bm as bm_payloads
from tools.payloads import chatapp as ca

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
    assert kept == ["ok-1", "bad-int", "ok-2"]  # 1e400 is infinity: a float Firestore keeps
    assert set(parked) == {1, 2, 4}
    assert {p.category for p in parked.values()} == {UNSTORABLE}
    assert "surrogate" in parked[1].reason
    assert "map key" in parked[2].reason
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


def test_more_events_than_the_bound_are_one_parked_document() -> None:
    batch = [ca.status(f"m{i}", "Sent", USER) for i in range(MAX_EVENTS + 1)]
    [payload] = chatapp("ChatAppStatus", batch)
    assert [p.category for p in payload.parked] == [TOO_MANY]
    assert len(planned([payload])) == 1


def test_a_megabyte_of_zeros_is_one_write() -> None:
    zeros = b"[" + b"0," * 500_000 + b"0]"
    payloads = chatapp("ChatAppStatus", zeros)
    assert len(planned(payloads)) == 1
    assert payloads[0].parked[0].category == TOO_MANY


def test_a_mostly_malformed_batch_is_one_parked_document_listing_the_reasons() -> None:
    batch: list[Any] = [0] * (MAX_PARKED_ELEMENTS + 10) + [ca.status("m1", "Sent", USER)]
    [payload] = chatapp("ChatAppStatus", batch)
    [parked] = payload.parked
    assert parked.category == MALFORMED
    assert f"{MAX_PARKED_ELEMENTS + 10} of {MAX_PARKED_ELEMENTS + 11} unusable" in parked.reason
    assert "not an object" in parked.reason
    assert len(planned([payload])) == 1


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
    users = [f"86139{i:08d}" for i in range(MAX_EVENTS)]  # each in a conversation of its own
    statuses = [ca.status("m", "Sent", user) for user in users]
    assert len(planned(chatapp("ChatAppStatus", statuses))) == MAX_EVENTS  # the messages only
    inbound = [ca.inbound_text("u", user, "hi") for user in users]
    assert len(planned(chatapp("ChatAppInbound", inbound))) == 2 * MAX_EVENTS  # and each's
    reviews = [ca.audit(f"t{i}", "en", "pass") for i in range(MAX_EVENTS)]  # conversation
    assert len(planned(chatapp("ChatAppAudit", reviews))) == 2 * MAX_EVENTS


def test_refusal_lines_are_rate_limited_and_the_suppressed_counted() -> None:
    now = [0.0]
    limit = RateLimit(per_second=1, burst=3, clock=lambda: now[0])
    record = logging.makeLogRecord({"msg": "refused"})
    assert [limit.filter(record) for _ in range(10)] == [True] * 3 + [False] * 7
    now[0] = 2.5
    passed = logging.makeLogRecord({"msg": "refused"})
    assert limit.filter(passed)
    assert passed.__dict__["suppressed"] == 7
