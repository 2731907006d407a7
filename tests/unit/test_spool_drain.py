"""The drainer's decisions (shared.core.spool): poison or outage, and what replay refuses."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from google.api_core import exceptions

from shared.adapters.publisher import PublishFailed
from shared.adapters.spool import failure_of
from shared.core.events import RAW_PIECE_BYTES, payload_key
from shared.core.replay import reassembled, redrive_refusal
from shared.core.spool import (
    UNPUBLISHABLE,
    DrainRun,
    Failure,
    Fault,
    SpooledEvent,
    Verdict,
    fault_of,
    parked_unpublishable,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
GOOD = {"data": b"[{}]", "topicKey": "events", "attributes": {"provider": "chatapp"}}


def event(spool_id: str = "e1", attempts: int = 0, **fields: Any) -> SpooledEvent:
    return SpooledEvent(spool_id, {**GOOD, "publishAttempts": attempts, **fields})


def outage(spool_id: str = "e1", attempts: int = 0) -> Failure:
    return Failure(event(spool_id, attempts), Fault.OUTAGE, "RetryError: Timeout of 10.0s")


def poison(spool_id: str = "e1", attempts: int = 0) -> Failure:
    return Failure(event(spool_id, attempts), Fault.EVENT, "unknown topic key 'x'")


def refused(spool_id: str = "e1", attempts: int = 0) -> Failure:
    return Failure(event(spool_id, attempts), Fault.UNCLEAR, "NotFound: 404 Topic not found")


# --- whose fault ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "transient", "fault"),
    [
        ("UNAVAILABLE", True, Fault.OUTAGE),
        ("DEADLINE_EXCEEDED", True, Fault.OUTAGE),
        (None, True, Fault.OUTAGE),  # a timeout: no answer at all
        ("INVALID_ARGUMENT", False, Fault.EVENT),  # Pub/Sub refused the message itself
        ("PERMISSION_DENIED", False, Fault.UNCLEAR),  # a lost grant fails every event alike
        ("NOT_FOUND", False, Fault.UNCLEAR),
        (None, False, Fault.UNCLEAR),
    ],
)
def test_whose_fault_a_failed_publish_is(status: str | None, transient: bool, fault: Fault) -> None:
    assert fault_of(status, transient) is fault


@pytest.mark.parametrize(
    ("fields", "defect"),
    [
        ({}, None),
        ({"data": None}, "no body to publish"),
        ({"data": b""}, "no body to publish"),
        ({"data": "text, not bytes"}, "no body to publish"),
        ({"topicKey": "no-such-topic"}, "unknown topic key 'no-such-topic'"),
        ({"topicKey": None}, "unknown topic key None"),
        ({"topicKey": ["events"]}, "unknown topic key ['events']"),
        ({"attributes": {"provider": 1}}, "attributes must map strings to strings"),
        ({"attributes": "provider=chatapp"}, "attributes must map strings to strings"),
        ({"attributes": None}, "attributes must map strings to strings"),
        ({"attributes": {}}, None),
    ],
)
def test_an_event_that_can_never_be_published_says_why(
    fields: dict[str, Any], defect: str | None
) -> None:
    assert event(**fields).defect() == defect


def test_attempts_read_from_whatever_is_stored() -> None:
    assert event(attempts=2).attempts == 2
    assert SpooledEvent("e1", GOOD).attempts == 0
    assert event(publishAttempts="2").attempts == 0
    assert event(publishAttempts=True).attempts == 0


# --- a run ----------------------------------------------------------------------------


def test_an_outage_never_counts_however_long_it_lasts() -> None:
    run = DrainRun(max_attempts=1)
    run.failed(outage("e1", attempts=99))
    assert not run.pubsub_down
    run.failed(outage("e2"))
    assert run.pubsub_down  # two in a row: stop, every later publish would wait as long
    assert [run.verdict(f) for f in run.failures] == [Verdict.WAIT, Verdict.WAIT]
    assert run.outage_error == "RetryError: Timeout of 10.0s"


def test_an_event_that_fails_alone_among_others_is_passed_over_not_stopped_at() -> None:
    run = DrainRun(max_attempts=5)
    run.failed(outage("e1"))
    run.took()  # Pub/Sub answered the next one: not down
    run.failed(outage("e3"))
    assert not run.pubsub_down
    assert run.verdict(run.failures[0]) is Verdict.WAIT  # still never counted


def test_a_poison_event_is_counted_then_parked_at_the_limit() -> None:
    run = DrainRun(max_attempts=3)
    run.failed(poison("e1", attempts=0))
    run.failed(poison("e2", attempts=1))
    run.failed(poison("e3", attempts=2))
    assert not run.pubsub_down  # its own failures never stop the run
    assert [run.verdict(f) for f in run.failures] == [Verdict.RETRY, Verdict.RETRY, Verdict.PARK]
    assert run.outage_error is None


def test_a_poison_event_counts_even_while_pubsub_is_down() -> None:
    run = DrainRun(max_attempts=5)
    run.failed(poison())  # found wrong before any publish: Pub/Sub's state is beside the point
    run.failed(outage("e2"))
    run.failed(outage("e3"))
    assert run.pubsub_down
    assert [run.verdict(f) for f in run.failures] == [Verdict.RETRY, Verdict.WAIT, Verdict.WAIT]


def test_a_refusal_counts_only_when_pubsub_took_other_events() -> None:
    everything_refused = DrainRun(max_attempts=1)  # a lost grant: no event is to blame
    for spool_id in ("e1", "e2", "e3"):
        everything_refused.failed(refused(spool_id))
    assert not everything_refused.pubsub_down  # refusals come at once: no timeout to wait out
    assert {everything_refused.verdict(f) for f in everything_refused.failures} == {Verdict.WAIT}

    one_refused = DrainRun(max_attempts=1)  # the others went through: this one's own
    one_refused.failed(refused("e1"))
    one_refused.took()
    assert one_refused.verdict(one_refused.failures[0]) is Verdict.PARK


# --- what is parked, and what replay refuses -----------------------------------------


def test_a_parked_event_keeps_all_a_replay_needs_and_why() -> None:
    body = b'[{"Status": "Sent"}]'
    failure = Failure(
        event(
            "20260101T000000000000-abc",
            attempts=4,
            data=body,
            topicKey="no-such-topic",
            attributes={"provider": "chatapp", "kind": "ChatAppStatus", "conversationId": "c"},
            receivedTime=NOW,
        ),
        Fault.EVENT,
        "unknown topic key 'no-such-topic'",
    )
    assert parked_unpublishable(failure, NOW) == (
        {
            "category": UNPUBLISHABLE,
            "reason": "not published after 5 attempts: unknown topic key 'no-such-topic'",
            "error": "unknown topic key 'no-such-topic'",
            "attempts": 5,
            "provider": "chatapp",
            "kind": "ChatAppStatus",
            "conversationId": "c",
            "requestId": None,
            "payloadKey": payload_key(body),
            "rawBody": body,
            "rawBodyBytes": len(body),
            "topicKey": "no-such-topic",
            "attributes": {"provider": "chatapp", "kind": "ChatAppStatus", "conversationId": "c"},
            "spoolId": "20260101T000000000000-abc",
            "receivedTime": NOW,
            "recordTime": NOW,
        },
        [],
    )


def test_a_parked_body_too_large_for_a_document_is_kept_whole_in_pieces() -> None:
    body = b"x" * (2 * RAW_PIECE_BYTES) + b"yz"
    document, pieces = parked_unpublishable(Failure(event(data=body), Fault.EVENT, "e"), NOW)
    assert len(document["rawBody"]) == RAW_PIECE_BYTES
    assert (document["rawBodyBytes"], document["rawBodyPieces"]) == (len(body), 3)
    assert pieces == [b"x" * RAW_PIECE_BYTES, b"yz"]
    assert redrive_refusal(document, pieces) is None
    assert reassembled(document, pieces) == body
    assert "2 of the 3 pieces" in (redrive_refusal(document, pieces[:1]) or "")
    assert "sha256" in (redrive_refusal(document, [pieces[0], b"yZ"]) or "")


@pytest.mark.parametrize(
    ("parked", "refusal"),
    [
        ({"rawBody": b"0123456789", "rawBodyBytes": 10}, None),
        ({"rawBody": b"0123456789"}, None),  # written before rawBodyBytes existed
        (
            {"rawBody": b"01234", "rawBodyBytes": 1_000_000},
            "its body was stored truncated (5 of 1,000,000 bytes kept): "
            "republishing it would hand the pipeline a different event",
        ),
        (
            {"item": "{}", "index": 2},
            "it is part of a payload, not a whole one: it holds no raw body to publish",
        ),
        ({"rawBody": b"", "rawBodyBytes": 0}, "its body is empty"),
    ],
)
def test_replay_refuses_what_it_could_not_send_as_it_arrived(
    parked: dict[str, Any], refusal: str | None
) -> None:
    assert redrive_refusal(parked) == refusal


# --- the adapter's reading of Pub/Sub's answers ---------------------------------------


def api_error(kind: Callable[..., Exception], *arguments: object) -> Exception:
    """One of google.api_core's exceptions (their constructors are not typed)."""
    return kind(*arguments)


def publish_failed(cause: Exception) -> PublishFailed:
    """What the publisher raises: PublishFailed from the client's own error."""
    try:
        raise PublishFailed("publish to events not confirmed") from cause
    except PublishFailed as failed:
        return failed


@pytest.mark.parametrize(
    ("error", "fault"),
    [
        (
            publish_failed(api_error(exceptions.RetryError, "Timeout of 10.0s exceeded", None)),
            Fault.OUTAGE,
        ),
        (publish_failed(api_error(exceptions.ServiceUnavailable, "unavailable")), Fault.OUTAGE),
        (publish_failed(api_error(exceptions.DeadlineExceeded, "slow")), Fault.OUTAGE),
        (publish_failed(TimeoutError()), Fault.OUTAGE),
        (publish_failed(api_error(exceptions.InvalidArgument, "attribute too long")), Fault.EVENT),
        (publish_failed(api_error(exceptions.NotFound, "Topic not found")), Fault.UNCLEAR),
        (publish_failed(api_error(exceptions.PermissionDenied, "denied")), Fault.UNCLEAR),
        (TypeError("bad argument type"), Fault.UNCLEAR),
    ],
    ids=lambda value: type(getattr(value, "__cause__", None) or value).__name__,
)
def test_the_drainer_reads_whose_fault_from_pubsubs_answer(error: Exception, fault: Fault) -> None:
    failure = failure_of(event(), error)
    assert failure.fault is fault
    cause = error.__cause__ or error
    assert failure.error == f"{type(cause).__name__}: {cause}"
