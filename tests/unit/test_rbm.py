"""RCS Business Messaging: the webhook part's decisions and the normaliser, without a stack."""

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.core import records
from shared.core.config import Env
from shared.core.ingress import Incoming, Publish, Reply, parse_json
from shared.core.read_receipts import ReadTarget
from shared.providers import normalise
from shared.providers.rbm import envelope, webhook
from shared.providers.rbm.normalise import conversation_id
from shared.providers.rbm.read_receipts import event_id, read_targets
from tools.payloads import rbm

TOKENS = "current-token,previous-token"
RECEIVE = webhook.receiver(Env({"RBM_CLIENT_TOKEN": TOKENS}))
NOW = datetime(2026, 1, 1, tzinfo=UTC)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def receive(body: bytes, headers: dict[str, str] | None = None) -> Reply | Publish:
    return RECEIVE(Incoming((), headers or {}, body, None))


def normalised(event: dict[str, Any], **envelope: Any) -> list[Any]:
    body = rbm.encode(rbm.envelope(event, **envelope))
    return normalise({"provider": "rbm"}, body, NOW)


def test_any_configured_token_signs_and_answers_the_handshake() -> None:
    body = rbm.encode(rbm.envelope(rbm.text_message("hi")))
    for token in ("current-token", "previous-token"):
        assert isinstance(receive(body, rbm.signed_headers(body, token)), Publish)
        shake = receive(rbm.handshake(token, "s"))
        assert isinstance(shake, Reply)
        assert (shake.status, shake.body) == (200, "s")


def test_wrong_or_misplaced_signatures_are_refused_before_anything_is_published() -> None:
    body = rbm.encode(rbm.envelope(rbm.text_message("hi")))
    wrong = {
        "other token": rbm.signed_headers(body, "other"),
        "over the raw body": {rbm.SIGNATURE_HEADER: rbm.signature(body, "current-token")},
        "hex, not base64": {
            rbm.SIGNATURE_HEADER: base64.b16encode(
                base64.b64decode(rbm.signature(rbm.data_of(body), "current-token"))
            ).decode()
        },
        "missing": {},
    }
    for case, headers in wrong.items():
        decision = receive(body, headers)
        assert isinstance(decision, Reply), case
        assert decision.status == 401, case


def test_a_malformed_envelope_is_a_clear_400() -> None:
    signed = {rbm.SIGNATURE_HEADER: rbm.signature(b"some other data", "current-token")}
    for body, error in [
        (b"[]", "body must be a JSON object with message.data"),
        (b'{"message": {"data": 3}}', "body must be a JSON object with message.data"),
        (b'{"message": {"data": "%%%"}}', "message.data is not base64"),
    ]:
        decision = receive(body, signed)
        assert isinstance(decision, Reply)
        assert (decision.status, decision.body) == (400, {"error": error})


def test_a_header_that_cannot_be_a_signature_is_refused_before_any_parsing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed: list[bytes] = []

    def spy(body: bytes) -> object:
        parsed.append(body)
        return parse_json(body)

    monkeypatch.setattr(envelope, "parse_json", spy)
    body = rbm.encode(rbm.envelope(rbm.text_message("x" * 40_000)))
    genuine = rbm.signature(rbm.data_of(body), "current-token")
    digest = base64.b64decode(genuine)
    for header in (
        "x",
        "",
        " ",
        genuine[:-4],  # 63 bytes
        base64.b64encode(digest + b"!").decode(),  # 65 bytes
        base64.b16encode(digest).decode(),
        genuine.replace("=", "") if "=" in genuine else genuine + "A",
        "\u00e9" * 88,
    ):
        decision = receive(body, {rbm.SIGNATURE_HEADER: header})
        assert isinstance(decision, Reply)
        assert decision.status == 401, header
    assert parsed == []
    assert isinstance(receive(body, {rbm.SIGNATURE_HEADER: genuine}), Publish)
    assert parsed == [body]


def test_only_the_signed_event_is_published_whatever_surrounds_it() -> None:
    event = rbm.text_message("hi", message_id="m1")
    copies = [
        rbm.encode(rbm.envelope(event)),
        rbm.encode(
            rbm.envelope(event, attributes={"type": "agent_launch_event", "pad": "x" * 900})
        ),
        json.dumps({**rbm.envelope(event), "padding": "y" * 9000}).encode(),
    ]
    published = set()
    for body in copies:
        decision = receive(body, rbm.signed_headers(body, "current-token"))
        assert isinstance(decision, Publish)
        assert decision.attributes == {"provider": "rbm", "kind": "text"}
        assert decision.body is not None
        published.add(decision.body)
    data = base64.b64encode(rbm.encode_data(event)).decode()
    assert published == {json.dumps({"message": {"data": data}}, separators=(",", ":")).encode()}
    [payload] = normalise({"provider": "rbm"}, published.pop(), NOW)
    assert [m.message_id for m in payload.user_messages] == ["m1"]


def test_a_launch_event_is_told_by_its_signed_data_never_by_the_attributes() -> None:
    launch = rbm.agent_launch_event("LAUNCHED")
    text = rbm.text_message("hi")
    for event, attributes, kind in [
        (launch, {}, "agent_launch_event"),  # unmarked, still a launch
        (text, rbm.launch_attributes(launch), "text"),  # re-typed, still a text
    ]:
        body = rbm.encode(rbm.envelope(event, attributes=attributes))
        decision = receive(body, rbm.signed_headers(body, "current-token"))
        assert isinstance(decision, Publish)
        assert decision.attributes["kind"] == kind
        [payload] = normalise({"provider": "rbm"}, body, NOW)  # an envelope of before
        assert payload.kind == kind


def test_user_messages_go_to_the_readable_topic_and_events_do_not() -> None:
    cases = {
        "text": (rbm.text_message("hi"), "readable"),
        "suggestionResponse": (rbm.suggestion_response("p", "t"), "readable"),
        "READ": (rbm.user_event("READ", "m1"), "events"),
        "TTL_EXPIRATION_REVOKED": (rbm.server_event("TTL_EXPIRATION_REVOKED", "m1"), "events"),
        "agent_launch_event": (rbm.agent_launch_event("LAUNCHED"), "events"),
    }
    for kind, (event, topic) in cases.items():
        body = rbm.encode(rbm.envelope(event))
        decision = receive(body, rbm.signed_headers(body, "current-token"))
        assert isinstance(decision, Publish)
        assert (decision.topic_key, decision.attributes) == (
            topic,
            {"provider": "rbm", "kind": kind},
        )


def test_a_typing_indicator_is_acknowledged_and_not_published() -> None:
    body = rbm.encode(rbm.envelope(rbm.user_event("IS_TYPING")))
    decision = receive(body, rbm.signed_headers(body, "current-token"))
    assert isinstance(decision, Reply)
    assert decision.status == 200


def test_a_conversation_is_the_bare_agent_and_the_phone_in_ascii_e164() -> None:
    arabic_phone = "+٤٤٧٧٠٠٩٠٠١٢٣"
    [payload] = normalised(rbm.text_message("hi", phone=arabic_phone, message_id="m1"))
    assert payload.conversation_id == conversation_id(rbm.AGENT_ID, "+447700900123")
    assert payload.conversation == {"agentId": rbm.AGENT_ID, "userNumber": "+447700900123"}
    assert read_targets([payload]) == [
        ReadTarget(
            payload.conversation_id, "m1", {"phone": "+447700900123", "agentId": rbm.AGENT_ID}
        )
    ]


def test_the_read_event_id_is_one_rfc_4122_uuid_per_agent_and_message() -> None:
    first = event_id("agent", "m1")
    assert first == event_id("agent", "m1") != event_id("agent", "m2") != event_id("other", "m1")
    assert rbm.client_id() != first
    assert first[14] == "5"  # a version-5 UUID


def test_a_suggestion_tap_without_a_message_id_is_kept_but_not_marked_read() -> None:
    tap = rbm.suggestion_response("p", "t", message_id="ignored")
    del tap["messageId"]
    tap["eventId"] = "e1"
    [payload] = normalised(tap)
    assert payload.user_messages[0].message_id == "event-e1"
    assert read_targets([payload]) == []


def test_receipts_subscriptions_and_server_events() -> None:
    [delivered] = normalised(rbm.user_event("DELIVERED", "agent-1"))
    assert [(r.message_id, r.status) for r in delivered.receipts] == [("agent-1", "DELIVERED")]
    [unsubscribed] = normalised(rbm.user_event("UNSUBSCRIBE", event_id="e9"))
    assert unsubscribed.conversation_state == {"subscribed": False}
    assert [m.message_id for m in unsubscribed.user_messages] == ["event-e9"]
    [revoked] = normalised(rbm.server_event("TTL_EXPIRATION_REVOKED", "agent-1"))
    assert [r.status for r in revoked.receipts] == ["TTL_EXPIRATION_REVOKED"]
    assert normalised(rbm.user_event("IS_TYPING")) == []


def test_what_cannot_be_recorded_is_parked_with_why() -> None:
    [launch] = normalised(rbm.agent_launch_event("SUSPENDED", "LAUNCHED"))
    assert launch.parked[0].category == "AGENT_LAUNCH"
    no_phone = rbm.text_message("hi")
    del no_phone["senderPhoneNumber"]
    [missing] = normalised(no_phone)
    assert missing.parked[0].reason == "agentId or the user's phone number is missing"
    [unknown] = normalised({**rbm.user_event("READ", "m"), "eventType": "NEW_THING"})
    assert unknown.parked[0].category == "UNKNOWN_KIND"
    [not_json] = normalise({"provider": "rbm"}, rbm.encode(rbm.envelope(b"\xff")), NOW)
    assert not_json.parked[0].category == "NOT_JSON"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
rbm_fields = st.sampled_from(
    [
        "senderPhoneNumber",
        "phoneNumber",
        "agentId",
        "messageId",
        "eventId",
        "eventType",
        "sendTime",
        "text",
        "userFile",
        "location",
        "suggestionResponse",
    ]
)
events = st.dictionaries(rbm_fields, json_values | st.sampled_from(["READ", "+447700900123"]))
bodies = st.one_of(
    st.binary(max_size=300),
    events.map(lambda e: rbm.encode(rbm.envelope(e))),
    st.builds(
        lambda data, attributes: rbm.encode(rbm.envelope(data, attributes=attributes)),
        st.binary(max_size=200),
        st.dictionaries(st.sampled_from(["type", "x"]), st.text(max_size=20), max_size=2),
    ),
)


@FUZZ
@given(body=bodies, signature=st.none() | st.text(max_size=90))
def test_no_request_breaks_the_webhook_and_none_unsigned_is_published(
    body: bytes, signature: str | None
) -> None:
    decision = receive(body, {} if signature is None else {rbm.SIGNATURE_HEADER: signature})
    assert isinstance(decision, Reply)
    assert decision.status in (200, 400, 401, 403)


@FUZZ
@given(body=bodies)
def test_every_body_normalises_and_plans_without_error(body: bytes) -> None:
    payloads = normalise({"provider": "rbm"}, body, NOW)
    for group in records.commit_groups(payloads):
        for payload in group:
            assert records.plan(payload, {}, NOW)
    read_targets(payloads)
    json.dumps([t.recipient for t in read_targets(payloads)])
