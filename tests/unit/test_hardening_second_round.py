"""Issue 21's smaller items, pure: the order of template reviews by first arrival, compound ids
that no two part tuples share, the drainer's pages, and line-wrapped base64 queue bodies."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared import providers
from shared.core import arrival, records
from shared.core.docids import compound_id, doc_id
from shared.core.events import Payload, StatusScale, TemplateReview
from shared.core.spool import MAX_DOCUMENT_BYTES, page_sizes
from shared.providers.chatapp import AUDIT
from shared.providers.chatapp.normalise import _party
from shared.providers.chatapp.normalise import conversation_id as chatapp_conversation
from shared.providers.chatapp.queue_plan import QueueMessage, decode, plan
from shared.providers.rbm.normalise import conversation_id as rbm_conversation
from shared.providers.rbm.read_receipts import event_id
from tools.payloads import chatapp as ca

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
PUBLISHED = datetime(2026, 1, 1, 11, tzinfo=UTC)
TEMPLATE = ("waba", "welcome", "en")

# --- 5: the order of template reviews -----------------------------------------------------


def test_received_time_round_trips_and_falls_back_to_the_publish_time() -> None:
    first = datetime(2026, 1, 1, 10, 0, 0, 123456, tzinfo=UTC)
    stamped = arrival.stamp(first)
    assert stamped == "2026-01-01T10:00:00.123456Z"
    assert arrival.received({arrival.RECEIVED_TIME: stamped}, PUBLISHED) == first
    for unusable in ("", "yesterday", "2026-01-01T10:00:00"):  # not UTC RFC 3339: ignored
        assert arrival.received({arrival.RECEIVED_TIME: unusable}, PUBLISHED) == PUBLISHED
    assert arrival.received({}, PUBLISHED) == PUBLISHED


def test_every_provider_dates_a_review_by_its_first_arrival_not_its_last_publish() -> None:
    first = datetime(2026, 1, 1, 9, tzinfo=UTC)
    attributes = {
        "provider": "chatapp",
        "kind": AUDIT,
        arrival.RECEIVED_TIME: arrival.stamp(first),
    }
    body = ca.encode([ca.audit("welcome", "en", "pass")])
    [payload] = providers.normalise(attributes, body, PUBLISHED)
    assert [review.time for review in payload.reviews] == [first]


def plan_reviews(state: dict[str, dict[str, Any]], *reviews: TemplateReview) -> None:
    payload = Payload(
        provider="chatapp", kind=AUDIT, key="k", scale=StatusScale({}), reviews=reviews
    )
    existing: Mapping[str, Mapping[str, Any] | None] = {
        path: state.get(path) for path in records.paths_to_read(payload)
    }
    for write in records.plan(payload, existing, NOW):
        state[write.path] = {**state.get(write.path, {}), **write.data}


def review(status: str, at: datetime, index: int | None = None) -> TemplateReview:
    return TemplateReview(TEMPLATE, status, at, key=f"{status}-{at}-{index}", index=index)


def status_of(state: dict[str, dict[str, Any]]) -> str:
    return str(state[records.template_review_path(TEMPLATE)]["status"])


def test_of_two_reviews_in_one_batch_the_last_element_wins() -> None:
    state: dict[str, dict[str, Any]] = {}
    plan_reviews(state, review("fail", PUBLISHED, 0), review("pass", PUBLISHED, 1))
    assert status_of(state) == "pass"
    other: dict[str, dict[str, Any]] = {}
    plan_reviews(other, review("pass", PUBLISHED, 1), review("fail", PUBLISHED, 0))  # any order
    assert status_of(other) == "pass"


def test_across_deliveries_only_a_strictly_later_arrival_replaces_the_status() -> None:
    state: dict[str, dict[str, Any]] = {}
    plan_reviews(state, review("pass", PUBLISHED, 0))
    plan_reviews(state, review("fail", PUBLISHED - timedelta(minutes=1), 3))  # spooled, older
    assert status_of(state) == "pass"
    plan_reviews(state, review("auditing", PUBLISHED, 5))  # the same instant: the first stays
    assert status_of(state) == "pass"
    plan_reviews(state, review("fail", PUBLISHED + timedelta(microseconds=1), 0))
    assert status_of(state) == "fail"
    assert len([path for path in state if "/history/" in path]) == 4


def queue_message(number: int, enqueued: datetime | None, dequeue_count: int = 1) -> QueueMessage:
    body = base64.b64encode(ca.encode([ca.audit(f"t{number}", "en", "pass")])).decode()
    return QueueMessage(f"id-{number}", f"handle-{number}", body, dequeue_count, enqueued)


def test_a_queue_batch_is_dated_by_when_its_last_message_entered_the_queue() -> None:
    early, late = PUBLISHED - timedelta(seconds=5), PUBLISHED
    [outgoing] = plan(AUDIT, [queue_message(1, late), queue_message(2, early)], 10)
    assert outgoing.attributes[arrival.RECEIVED_TIME] == arrival.stamp(late)
    # Received again after a crash, later: the same attributes, so the same Pub/Sub message.
    [again] = plan(AUDIT, [queue_message(1, late, 2), queue_message(2, early, 2)], 10)
    assert again.attributes == outgoing.attributes
    [parked] = plan(AUDIT, [queue_message(1, early, 10)], 10)  # received too often
    assert parked.attributes[arrival.RECEIVED_TIME] == arrival.stamp(early)
    [unknown] = plan(AUDIT, [queue_message(1, late), queue_message(2, None)], 10)
    assert arrival.RECEIVED_TIME not in unknown.attributes  # the recorder uses the publish time


# --- 7: compound ids are injective ----------------------------------------------------------

parts = st.text(max_size=12, alphabet=st.sampled_from("ab:%~\n/.+1 _"))


def as_given(a: str, b: str) -> tuple[Any, ...]:
    return (a, b)


# Every compound id the product builds: (what it must tell apart, the id of two parts).
BUILDERS: dict[str, tuple[Any, Any]] = {
    "compound_id": (as_given, compound_id),
    "compound_id by line": (as_given, lambda a, b: compound_id(a, b, separator="\n")),
    "doc_id": (as_given, doc_id),
    # A number however written is one party of a Chat App conversation.
    "chatapp conversation": (lambda a, b: (_party(a), _party(b)), chatapp_conversation),
    "chatapp conversation document": (
        lambda a, b: (_party(a), _party(b)),
        lambda a, b: records.conversation_path(chatapp_conversation(a, b)),
    ),
    "rbm conversation": (as_given, rbm_conversation),
    "rbm conversation document": (
        as_given,
        lambda a, b: records.conversation_path(rbm_conversation(a, b)),
    ),
    "message document": (as_given, records.message_path),
    "parked document": (lambda a, b: a, lambda a, b: records.parked_path(a)),
    "template review": (as_given, lambda a, b: records.template_review_path((a, b, "en"))),
    "rbm READ eventId": (as_given, event_id),
}


@given(st.tuples(parts, parts), st.tuples(parts, parts))
def test_distinct_parts_give_distinct_ids_in_every_provider(
    first: tuple[str, str], second: tuple[str, str]
) -> None:
    for name, (identity, build) in BUILDERS.items():
        if identity(*first) != identity(*second):
            assert build(*first) != build(*second), name


def test_the_issues_example_and_plain_ids_that_stay_as_they_were() -> None:
    assert chatapp_conversation("page:1", "2") != chatapp_conversation("page", "1:2")
    assert compound_id("page:1", "2") == "page%3A1:2"
    # Ids of plain parts are unchanged: documents stored so far keep their ids.
    assert chatapp_conversation("+86 138-0000", "861390") == "chatapp:861380000:861390"
    assert rbm_conversation("agent@rbm.goog", "+447700900123") == "rbm:agent@rbm.goog:+447700900123"


# --- 9a: the drainer's pages ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "budget", "pages"),
    [
        (500, 64 * MAX_DOCUMENT_BYTES, [64] * 7 + [52]),
        (5, 2 * MAX_DOCUMENT_BYTES, [2, 2, 1]),
        (3, 2 * MAX_DOCUMENT_BYTES + 1, [2, 1]),  # never more than the budget of full documents
        (3, 1, [1, 1, 1]),  # at least one event per page
        (1, 64 * MAX_DOCUMENT_BYTES, [1]),
    ],
)
def test_a_drain_reads_pages_that_fit_the_budget_at_the_largest_document_size(
    limit: int, budget: int, pages: list[int]
) -> None:
    assert page_sizes(limit, budget) == pages
    assert sum(pages) == limit


# --- 9b: line-wrapped base64 queue bodies ---------------------------------------------------


def test_line_wrapped_base64_is_decoded_as_alibabas_sdks_decode_it() -> None:
    elements = [ca.status(f"m{n}", "Delivered", "8613900000001") for n in range(3)]
    wrapped = base64.encodebytes(json.dumps(elements).encode()).decode()  # 76 columns, \n
    assert "\n" in wrapped.strip()
    assert decode(wrapped) == elements
    assert decode(wrapped.replace("\n", "\r\n")) == elements
    assert decode(" \t" + wrapped.replace("\n", " ")) == elements


def test_base64_with_anything_else_than_ascii_white_space_is_still_refused() -> None:
    body = base64.b64encode(json.dumps([{"MessageId": "m1"}]).encode()).decode()
    for noisy in (body[:8] + "!" + body[8:], body[:8] + "\u00a0" + body[8:]):
        reason = decode(noisy)
        assert isinstance(reason, str)
        assert "neither base64 of JSON nor JSON" in reason
