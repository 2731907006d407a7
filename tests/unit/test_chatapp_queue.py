"""Chat App's queue mode, its pure decisions: decoding, what goes out together, what is
parked, the configuration, and the run's timing (shared.core.polling)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.core.config import ConfigError, Env
from shared.core.events import MALFORMED, REDELIVERED
from shared.core.polling import (
    LONGEST_BACKOFF_SECONDS,
    PullReport,
    Schedule,
    backoff,
    poll_wait,
    pollers_change,
    renew_at,
    rest_after_empty,
)
from shared.providers import queue_pullers
from shared.providers.chatapp import AUDIT, INBOUND, PARKED_ATTRIBUTE, STATUS, queue_plan
from shared.providers.chatapp.normalise import normalise
from shared.providers.chatapp.queue import QueueConfig
from shared.providers.chatapp.queue_plan import MAX_EVENTS, QueueMessage, decode, plan
from tools.local.stack import StackSettings
from tools.payloads import chatapp as ca

NOW = datetime(2026, 1, 1, tzinfo=UTC)
USER = "8613900000001"


def wire(document: Any) -> str:
    """A queue message body as Alibaba enqueues it: base64 of the JSON."""
    return base64.b64encode(json.dumps(document).encode()).decode()


def message(body: str, number: int = 1, dequeue_count: int = 1) -> QueueMessage:
    return QueueMessage(f"id-{number}", f"handle-{number}", body, dequeue_count)


# --- decoding each body on its own --------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "decoded"),
    [
        (wire({"MessageId": "m1"}), [{"MessageId": "m1"}]),
        (
            wire([{"MessageId": "m1"}, {"MessageId": "m2"}]),
            [{"MessageId": "m1"}, {"MessageId": "m2"}],
        ),
        ('{"MessageId": "raw"}', [{"MessageId": "raw"}]),  # raw JSON, not base64
        (wire([]), []),
    ],
    ids=["base64 object", "base64 array", "raw JSON", "empty array"],
)
def test_a_body_is_base64_then_json_or_json_as_it_is(body: str, decoded: list[Any]) -> None:
    assert decode(body) == decoded


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("not base64, not JSON!", "neither base64 of JSON nor JSON"),
        (base64.b64encode(b"\x00\xffnoise").decode(), "neither base64 of JSON nor JSON"),
        ("true", "a JSON bool, not an object or array"),  # valid base64 too: 3 bytes of noise
        (wire("a string"), "a JSON str, not an object or array"),
        ("", "neither base64 of JSON nor JSON"),
    ],
)
def test_a_body_that_holds_no_events_says_why(body: str, why: str) -> None:
    reason = decode(body)
    assert isinstance(reason, str)
    assert why in reason


# --- what one receive becomes ------------------------------------------------------------


def test_the_messages_of_one_receive_go_out_as_one_batch_like_an_http_push() -> None:
    statuses = [ca.status(f"wa-{n}", "Delivered", USER) for n in range(16)]
    [outgoing] = plan(STATUS, [message(wire(s), n) for n, s in enumerate(statuses)], 10)

    assert json.loads(outgoing.body) == statuses  # what Alibaba would push as one batch
    assert outgoing.attributes == {"provider": "chatapp", "kind": STATUS, "events": "16"}
    assert outgoing.handles == [f"handle-{n}" for n in range(16)]


def test_a_message_with_an_element_the_recorder_parks_goes_alone_with_stable_bytes() -> None:
    good = message(wire(ca.status("wa-1", "Sent", USER)), 1)
    malformed = message(wire({"MessageId": "wa-2", "Status": "Sent"}), 2)  # no From/To/Timestamp
    other = message(wire(ca.status("wa-3", "Read", USER)), 3)

    first = plan(STATUS, [good, malformed, other], 10)
    # Redelivered later, beside other messages: the malformed one goes out byte for byte alike,
    # so the recorder parks it under the same id (its body's hash and its position).
    again = plan(STATUS, [malformed], 10)

    assert [o.handles for o in first] == [["handle-2"], ["handle-1", "handle-3"]]
    assert first[0].body == again[0].body
    assert PARKED_ATTRIBUTE not in first[0].attributes  # the normaliser parks the element


def test_a_body_that_cannot_be_decoded_is_published_to_be_parked_with_the_reason() -> None:
    poison = message("%%% not base64 %%%", 1)
    good = message(wire(ca.inbound_text("mo-1", USER, "hi")), 2)

    parked, batch = plan(INBOUND, [poison, good], 10)

    assert parked.body == b"%%% not base64 %%%"  # nothing lost: the bytes as received
    assert parked.handles == ["handle-1"]
    assert "neither base64 of JSON nor JSON" in parked.attributes[PARKED_ATTRIBUTE]
    assert batch.handles == ["handle-2"]
    [payload] = normalise(parked.body, parked.attributes, NOW)
    assert [(p.category, p.reason) for p in payload.parked] == [
        (MALFORMED, parked.attributes[PARKED_ATTRIBUTE])
    ]
    assert payload.raw == parked.body


def test_a_message_received_too_often_is_parked_with_its_elements_ready_to_redrive() -> None:
    read = ca.status("wa-1", "Read", USER)
    looping = message(wire(read), 1, dequeue_count=10)
    fresh = message(wire(ca.status("wa-2", "Read", USER)), 2, dequeue_count=9)

    parked, batch = plan(STATUS, [looping, fresh], 10)

    assert "received 10 times" in parked.attributes[PARKED_ATTRIBUTE]
    assert json.loads(parked.body) == [read]
    assert batch.handles == ["handle-2"]
    [payload] = normalise(parked.body, parked.attributes, NOW)
    assert [p.category for p in payload.parked] == [REDELIVERED]
    # A redrive publishes the raw body with provider and kind only: then it is recorded.
    [recorded] = normalise(payload.raw, {"provider": "chatapp", "kind": STATUS}, NOW)
    assert [r.message_id for r in recorded.receipts] == ["wa-1"]


def test_no_batch_exceeds_the_recorders_bound_of_events() -> None:
    big = [ca.audit(f"t{n}", "en_US", "pass") for n in range(MAX_EVENTS - 5)]
    small = [ca.audit(f"s{n}", "en_US", "pass") for n in range(10)]

    outgoing = plan(AUDIT, [message(wire(big), 1), message(wire(small), 2)], 10)

    assert [int(o.attributes["events"]) for o in outgoing] == [MAX_EVENTS - 5, 10]
    assert all(len(json.loads(o.body)) <= MAX_EVENTS for o in outgoing)


def test_an_empty_array_is_carried_by_a_batch_so_it_is_deleted_only_after_a_publish() -> None:
    [outgoing] = plan(STATUS, [message(wire([]), 1)], 10)

    assert (outgoing.body, outgoing.handles) == (b"[]", ["handle-1"])
    assert normalise(outgoing.body, outgoing.attributes, NOW) == []


def test_a_lone_surrogate_in_a_body_is_carried_as_json_can_say_it() -> None:
    body = wire_text('{"MessageId": "m\\ud800", "Status": "Sent"}')
    [outgoing] = plan(STATUS, [message(body)], 10)
    assert json.loads(outgoing.body) == [{"MessageId": "m\ud800", "Status": "Sent"}]


def wire_text(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


BODIES = st.one_of(
    st.text(max_size=200),
    st.sampled_from(
        [  # what a receive once raised on, beside what it must still carry
            '{"MessageId": "m1", "Status": "Sent", "From": "a\\ud800", "To": "b"}',
            '[{"x":' + '{"a":' * 960 + "1" + "}" * 960 + "}]",
            '[{"Timestamp": ' + "9" * 5000 + "}]",
        ]
    ).map(wire_text),
    st.binary(max_size=200).map(lambda raw: base64.b64encode(raw).decode()),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=12,
    ).map(wire),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(BODIES, min_size=1, max_size=16), st.sampled_from([STATUS, INBOUND, AUDIT]))
def test_any_bodies_plan_without_error_and_each_message_goes_out_exactly_once(
    bodies: list[str], kind: str
) -> None:
    messages = [message(body, number) for number, body in enumerate(bodies)]
    outgoing = plan(kind, messages, 10)
    carried = sorted(handle for each in outgoing for handle in each.handles)
    assert carried == sorted(m.receipt_handle for m in messages)
    for each in outgoing:
        assert int(each.attributes["events"]) <= MAX_EVENTS
        normalise(each.body, each.attributes, NOW)  # the recorder's side never raises either


# --- configuration ------------------------------------------------------------------------

QUEUES = "ChatAppStatus=Alicom-Queue-1-ChatAppStatus,ChatAppInbound=Alicom-Queue-1-ChatAppInbound"
KEYS = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI-id", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "secret"}


def test_a_good_configuration_with_the_defaults() -> None:
    env = Env({"CHATAPP_SMQ_QUEUES": QUEUES, **KEYS})
    config = QueueConfig.from_env(env)
    env.check("pull-queues")

    assert config.queues == (
        (STATUS, "Alicom-Queue-1-ChatAppStatus"),
        (INBOUND, "Alicom-Queue-1-ChatAppInbound"),
    )
    assert config.token_endpoint == "https://dybaseapi.aliyuncs.com"
    assert config.queue_endpoint == "https://1943695596114318.mns.cn-hangzhou.aliyuncs.com"
    assert "secret" not in repr(config)


def test_endpoints_may_be_a_loopback_host_and_port() -> None:
    env = Env(
        {
            "CHATAPP_SMQ_QUEUES": QUEUES,
            "CHATAPP_SMQ_ENDPOINT": "http://127.0.0.1:8100",
            "CHATAPP_SMQ_TOKEN_ENDPOINT": "http://127.0.0.1:8100/",
            **KEYS,
        }
    )
    config = QueueConfig.from_env(env)
    env.check("pull-queues")
    assert (config.queue_endpoint, config.token_endpoint) == (
        "http://127.0.0.1:8100",
        "http://127.0.0.1:8100/",
    )


def test_bad_values_stop_the_puller_naming_every_problem() -> None:
    env = Env(
        {
            "CHATAPP_SMQ_QUEUES": "ChatAppBilling=Alicom-Queue-1-X,ChatAppStatus=,"
            "ChatAppAudit=q-1,ChatAppInbound=q-1",
            "CHATAPP_SMQ_ENDPOINT": "ftp://mns.example",
            "CHATAPP_SMQ_TOKEN_ENDPOINT": "https://dybaseapi.aliyuncs.com/some/path",
            "CHATAPP_SMQ_MAX_POLLERS": "0",
        }
    )
    QueueConfig.from_env(env)
    with pytest.raises(ConfigError) as refused:
        env.check("pull-queues")

    message = str(refused.value)
    assert message.startswith("pull-queues cannot start: ")
    for problem in (
        "'ChatAppBilling' is not a MessageType",
        "'ChatAppStatus=' does not name a queue",
        "queue q-1 is named twice",
        "CHATAPP_SMQ_ENDPOINT must be an http:// or https:// URL",
        "CHATAPP_SMQ_TOKEN_ENDPOINT must name a host only",
        "ALIBABA_CLOUD_ACCESS_KEY_ID is required",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET is required",
        "CHATAPP_SMQ_MAX_POLLERS must be at least 1",
    ):
        assert problem in message


def test_the_puller_without_any_queue_configured_cannot_start() -> None:
    env = Env({"CHATAPP_CALLBACK_TOKENS": "t"})  # HTTP push alone: the puller has nothing to do
    assert queue_pullers(env, lambda *_: "1") == []
    with pytest.raises(ConfigError, match="no queue is configured: set CHATAPP_SMQ_QUEUES"):
        env.check("pull-queues")


def test_queue_mode_alone_without_an_http_push_token_is_a_configuration() -> None:
    env = Env({"CHATAPP_SMQ_QUEUES": QUEUES, "GOOGLE_CLOUD_PROJECT": "p", **KEYS})
    [puller] = queue_pullers(env, lambda *_: "1")
    env.check("pull-queues")
    assert callable(puller.run)


# --- the run's timing ---------------------------------------------------------------------


def test_a_run_polls_until_just_before_the_next_is_due() -> None:
    schedule = Schedule(60)
    start = datetime(2026, 1, 1, 12, 0, tzinfo=UTC).timestamp()

    # Started 3 s late (a cold start): still stops in time for the next run.
    assert schedule.stop_polling_at("2026-01-01T12:00:00Z", start + 3) == start + 58
    assert schedule.stop_polling_at("2026-01-01T12:00:00.000Z", start + 3) == start + 58
    # No header (a call by hand), garbage, or a time this run can no longer use: a whole period.
    for header in (None, "", "yesterday", "2026-01-01T11:00:00Z", "2026-01-01T12:05:00Z"):
        assert schedule.stop_polling_at(header, start + 3) == start + 3 + 58


def test_the_handover_is_short_for_short_local_periods() -> None:
    assert Schedule(60).handover == 2
    assert Schedule(1).handover == pytest.approx(0.2)


def test_waits_are_whole_seconds_up_to_the_queues_limit_and_end_with_the_run() -> None:
    assert poll_wait(58.0, 30) == 30
    assert poll_wait(12.7, 30) == 12
    assert poll_wait(0.4, 30) == 0  # one last look, without waiting
    assert poll_wait(0.0, 30) is None
    assert poll_wait(-1.0, 30) is None


def test_an_empty_answer_that_came_early_is_never_followed_by_a_tight_loop() -> None:
    assert rest_after_empty(asked_at=100.0, wait=20, now=100.01) == pytest.approx(19.99)
    assert rest_after_empty(asked_at=100.0, wait=20, now=120.0) == 0  # it did wait
    assert rest_after_empty(asked_at=100.0, wait=0, now=100.0) == 1  # a second at least


def test_backoff_doubles_up_to_its_ceiling() -> None:
    assert [backoff(n) for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert backoff(40) == LONGEST_BACKOFF_SECONDS


def test_pollers_grow_with_full_batches_and_shrink_to_one_when_idle() -> None:
    assert pollers_change(received=16, batch_size=16, active=1, most=4) == 1
    assert pollers_change(received=16, batch_size=16, active=4, most=4) == 0
    assert pollers_change(received=7, batch_size=16, active=3, most=4) == 0
    assert pollers_change(received=0, batch_size=16, active=3, most=4) == -1
    assert pollers_change(received=0, batch_size=16, active=1, most=4) == 0  # one keeps waiting


def test_credentials_are_renewed_two_minutes_early_or_halfway_when_short_lived() -> None:
    assert renew_at(issued_at=0, expires_at=3600) == 3480
    assert renew_at(issued_at=0, expires_at=10) == 5


def test_reports_of_several_pullers_combine() -> None:
    combined = PullReport.combined(
        [PullReport({"received": 3, "deleted": 3}), PullReport({"received": 1}, ("late",))]
    )
    assert combined == PullReport({"received": 4, "deleted": 3}, ("late",))


# --- make local -----------------------------------------------------------------------------


def test_make_local_pulls_the_configured_queues_or_else_its_stand_ins(tmp_path: Path) -> None:
    configured = {
        "CHATAPP_SMQ_QUEUES": QUEUES,
        "CHATAPP_SMQ_ENDPOINT": "http://127.0.0.1:9100",
        "CHATAPP_SMQ_TOKEN_ENDPOINT": "http://127.0.0.1:9101",
        **KEYS,
    }
    assert StackSettings.from_env(configured, tmp_path).smq == configured
    other = {"CHATAPP_SMQ_ENDPOINT": "http://127.0.0.1:9100"}  # queues still to be named
    assert StackSettings.from_env(other, tmp_path).smq == other
    assert StackSettings.from_env({}, tmp_path).smq == {}  # the stand-in's queues


def test_a_poisonous_message_goes_alone_and_the_valid_ones_of_its_receive_go_together() -> None:
    deep = '{"MessageId": "deep", "Extra": ' + '{"a":' * 500 + "1" + "}" * 500 + "}"
    poison = [
        wire_text('{"MessageId": "m\\ud800", "Status": "Sent"}'),
        wire_text(deep),
        wire_text('{"MessageId": "big", "Timestamp": ' + "9" * 5000 + "}"),
    ]
    valid = [wire(ca.status(f"wa-{n}", "Read", USER)) for n in range(3)]
    messages = [message(body, n) for n, body in enumerate([valid[0], *poison, *valid[1:]])]
    outgoing = plan(STATUS, messages, 10)  # it raised for the whole receive before
    assert not [o for o in outgoing if "parkedBecause" in o.attributes]
    assert sorted(len(o.messages) for o in outgoing) == [1, 1, 1, 3]
    [together] = [o for o in outgoing if len(o.messages) == 3]
    payloads = normalise(together.body, together.attributes, NOW)
    assert sum(len(p.receipts) for p in payloads) == 3
    for alone in (o for o in outgoing if len(o.messages) == 1):
        [payload] = normalise(alone.body, alone.attributes, NOW)
        assert [p.category for p in payload.parked] == ["UNSTORABLE"]


def test_a_message_too_deep_to_encode_again_is_published_as_its_own_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def too_deep(elements: list[Any]) -> bytes:
        raise RecursionError

    monkeypatch.setattr(queue_plan, "_encode", too_deep)
    text = '{"MessageId": "deep", "Extra": {"a": 1}}'  # set aside: it goes alone
    [outgoing] = plan(STATUS, [message(wire_text(text))], 10)
    assert outgoing.body == f"[{text}]".encode()
    assert "parkedBecause" not in outgoing.attributes
