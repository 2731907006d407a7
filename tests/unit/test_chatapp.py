"""Chat App: callback authentication, batch validation and normalisation."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.adapters.webhook import WebhookConfig
from shared.core import routing
from shared.core.config import ConfigError, Env
from shared.core.events import MALFORMED, REJECTED_RECEIPT
from shared.core.ingress import Incoming, Publish, Reply
from shared.core.provider import Receiver
from shared.providers import REGISTRY, chatapp
from shared.providers.chatapp import element_screen as chatapp_screen
from shared.providers.chatapp import webhook as chatapp_webhook
from shared.providers.chatapp.normalise import conversation_id as chatapp_conversation
from shared.providers.chatapp.normalise import normalise_batch
from tools.payloads import chatapp as ca

RECEIVE = chatapp_webhook.receiver(Env({"CHATAPP_CALLBACK_TOKENS": "current-token,previous-token"}))
RECEIVED = datetime(2024, 5, 1, 12, tzinfo=UTC)
USER = "8613900000001"


class Headers(dict[str, str]):
    pass


def push(
    path: tuple[str, ...], events: Any, receive: Receiver = RECEIVE, ip: str = "203.0.113.9"
) -> Reply | Publish:
    body = events if isinstance(events, bytes) else json.dumps(events).encode()
    return receive(Incoming(path, Headers(), body, ip))


def test_each_callback_type_has_its_own_path_and_kind() -> None:
    for path, kind in [
        ("status", "ChatAppStatus"),
        ("inbound", "ChatAppInbound"),
        ("audit", "ChatAppAudit"),
    ]:
        decision = push((path, "current-token"), [{}])
        assert isinstance(decision, Publish)
        assert decision.attributes == {"provider": "chatapp", "kind": kind, "events": "1"}
        assert decision.topic_key == routing.EVENTS  # never the READ-receipt topic


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (("status", "wrong-token"), 401),
        (("status", ""), 401),
        (("status",), 401),
        (("unknown", "current-token"), 404),
        (("status", "current-token", "extra"), 404),
    ],
)
def test_a_wrong_or_missing_token_or_path_is_refused(path: tuple[str, ...], status: int) -> None:
    decision = push(path, [ca.status("m1", "Sent", USER)])
    assert isinstance(decision, Reply)
    assert decision.status == status


def test_a_previous_token_still_works_while_tokens_rotate() -> None:
    assert isinstance(push(("status", "previous-token"), [ca.status("m1", "Sent", USER)]), Publish)


def test_the_ip_allow_list_when_configured() -> None:
    config = chatapp_webhook.receiver(
        Env({"CHATAPP_CALLBACK_TOKENS": "t", "CHATAPP_ALLOWED_IPS": "203.0.113.0/24, 2001:db8::1"})
    )
    event = [ca.status("m1", "Sent", USER)]
    assert isinstance(push(("status", "t"), event, config, ip="203.0.113.77"), Publish)
    assert isinstance(push(("status", "t"), event, config, ip="2001:db8::1"), Publish)
    # From outside the list, the right token and a wrong one get the same answer: an
    # outsider cannot learn whether a token they hold is valid.
    outside = push(("status", "t"), event, config, ip="198.51.100.1")
    guessed = push(("status", "guess"), event, config, ip="198.51.100.1")
    assert isinstance(outside, Reply)
    assert isinstance(guessed, Reply)
    assert (outside.status, outside.body) == (guessed.status, guessed.body)
    assert (outside.status, outside.body) == (401, {"code": 401, "msg": "unknown callback token"})
    assert outside.reason == guessed.reason == "source address outside the allow-list"
    wrong = {
        "GOOGLE_CLOUD_PROJECT": "p",
        "CHATAPP_CALLBACK_TOKENS": "t",
        "CHATAPP_ALLOWED_IPS": "x",
    }
    with pytest.raises(ConfigError, match="CHATAPP_ALLOWED_IPS holds 'x', not an address"):
        WebhookConfig.from_env(REGISTRY, Env(wrong))


def test_a_body_that_is_not_an_array_is_a_clear_400() -> None:
    for body in ({"MessageId": "m1"}, b"not json", "a string"):
        decision = push(("status", "current-token"), body)
        assert isinstance(decision, Reply)
        assert decision.status == 400
        assert decision.body == {"code": 400, "msg": "body must be a JSON array of events"}


def test_the_answer_names_malformed_elements_and_still_hands_the_batch_off() -> None:
    decision = push(
        ("status", "current-token"), [ca.status("m1", "Sent", USER), {"MessageId": "m2"}]
    )
    assert isinstance(decision, Publish)
    assert decision.accepted["code"] == 0
    assert decision.accepted["msg"] == (
        "accepted 2 events; 1 set aside with the reason (element 1: From, To missing)"
    )
    assert (decision.accepted["accepted"], decision.accepted["setAside"]) == (1, 1)
    assert decision.refused.status == 503
    assert isinstance(decision.refused.body, dict)
    assert decision.refused.body["code"] != 0  # Alibaba pushes again


@pytest.mark.parametrize(
    ("kind", "event", "problem"),
    [
        (chatapp.STATUS, ca.status("m1", "Sent", USER), None),
        (
            chatapp.STATUS,
            {k: v for k, v in ca.status("m1", "Sent", USER).items() if k != "Timestamp"},
            "Timestamp",
        ),
        (chatapp.STATUS, {**ca.status("m1", "Sent", USER), "Timestamp": "yesterday"}, "Timestamp"),
        (chatapp.STATUS, ca.status("m1", "Exploded", USER), "not a known status"),
        (chatapp.STATUS, ca.status("m1", "subscribe", USER), None),
        (chatapp.STATUS, {**ca.status("m1", "Sent", USER), "MessageId": ""}, "MessageId missing"),
        (chatapp.INBOUND, ca.inbound_text("u1", USER, "hi"), None),
        (
            chatapp.INBOUND,
            {**ca.inbound_text("u1", USER, "hi"), "Type": "IMAGE"},
            "not a JSON object",
        ),
        (chatapp.INBOUND, {**ca.inbound_text("u1", USER, "hi"), "From": None}, "From missing"),
        (chatapp.AUDIT, ca.audit("tpl", "en", "pass"), None),
        (chatapp.AUDIT, {"TemplateCode": "tpl"}, "Language, AuditStatus missing"),
        (chatapp.AUDIT, "not an object", "not an object"),
        # Screened before anything reads the element: no .encode() trips on a surrogate.
        (
            chatapp.INBOUND,
            ca.inbound_image("u1", USER, "https://x/1.jpg", "\ud800"),
            "Message: text that is not valid Unicode",
        ),
        (
            chatapp.INBOUND,
            {**ca.inbound_text("u1", USER, "hi"), "Type": "IMAGE", "Message": "\ud800"},
            "lone surrogate",
        ),
        (chatapp.STATUS, {**ca.status("m1", "Sent", USER), "To": "\udfff"}, "lone surrogate"),
        (chatapp.STATUS, {**ca.status("m1", "Sent", USER), "x": 2**64}, "beyond 64 bits"),
        (chatapp.AUDIT, {**ca.audit("t", "en", "pass"), "x": [[1]]}, "array directly inside"),
    ],
)
def test_element_shapes(kind: str, event: Any, problem: str | None) -> None:
    found = chatapp_screen.event_problem(kind, event)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_the_timestamp_key_with_a_trailing_space_is_understood() -> None:
    event = ca.status("m1", "Read", USER, at=1714557600000)
    event["Timestamp "] = event.pop("Timestamp")
    assert chatapp_screen.event_problem(chatapp.STATUS, event) is None
    [payload] = normalise_batch(ca.encode([event]), chatapp.STATUS, RECEIVED)
    assert payload.receipts[0].time == datetime(2024, 5, 1, 10, tzinfo=UTC)


def test_a_status_batch_becomes_one_payload_per_conversation() -> None:
    other = "8613900000002"
    batch = [
        ca.status("m1", "Sent", USER),
        ca.status("m1", "Delivered", USER),
        ca.status("m2", "Read", other),
        ca.failed("m3", USER, "131026", "Receiver is incapable of receiving this message"),
        {"MessageId": "broken"},
    ]
    payloads = normalise_batch(ca.encode(batch), chatapp.STATUS, RECEIVED)
    by_conversation = {p.conversation_id: p for p in payloads}
    mine = by_conversation[f"chatapp:{ca.BUSINESS}:{USER}"]
    assert [(r.message_id, r.status) for r in mine.receipts] == [
        ("m1", "Sent"),
        ("m1", "Delivered"),
        ("m3", "Failed"),
    ]
    assert mine.conversation == {"businessNumber": ca.BUSINESS, "userNumber": USER}
    failure = mine.receipts[2]
    assert failure.message_fields == {
        "errorCode": "131026",
        "errorDescription": "Receiver is incapable of receiving this message",
    }
    assert failure.details["errorCode"] == "131026"
    assert len(by_conversation[f"chatapp:{ca.BUSINESS}:{other}"].receipts) == 1
    [rest] = [p for p in payloads if p.conversation_id is None]
    assert [(p.category, p.index) for p in rest.parked] == [(REJECTED_RECEIPT, 4)]


def test_one_user_and_business_number_is_one_conversation_however_written() -> None:
    assert chatapp_conversation("+86 138-0000-0000", "8613900000001") == chatapp_conversation(
        "8613800000000", "+8613900000001"
    )
    inbound = normalise_batch(
        ca.encode([ca.inbound_text("u1", USER, "hi")]), chatapp.INBOUND, RECEIVED
    )
    status = normalise_batch(ca.encode([ca.status("m1", "Sent", USER)]), chatapp.STATUS, RECEIVED)
    assert inbound[0].conversation_id == status[0].conversation_id


def test_inbound_messages_decode_text_and_media() -> None:
    url = "https://chatapp.example/media/abc.jpg"
    batch = [
        ca.inbound_text("u1", USER, "Is my order shipped?"),
        ca.inbound_image("u2", USER, url, "my receipt"),
    ]
    [payload] = normalise_batch(ca.encode(batch), chatapp.INBOUND, RECEIVED)
    text, image = payload.user_messages
    assert (text.message_id, text.kind, dict(text.content)) == (
        "u1",
        "message",
        {"messageType": "TEXT", "text": "Is my order shipped?"},
    )
    assert image.content["imageUrl"] == url
    assert image.content["text"] == "my receipt"
    assert image.content["media"]["mimeType"] == "image/jpeg"
    assert text.context == {"displayName": "Demo Customer", "wabaId": "waba-1"}


def test_template_reviews_are_keyed_per_template_and_language() -> None:
    batch = [
        ca.audit("welcome", "en", "fail", "Wrong variable format"),
        ca.audit("welcome", "en", "pass"),
    ]
    [payload] = normalise_batch(ca.encode(batch), chatapp.AUDIT, RECEIVED)
    first, second = payload.reviews
    assert first.template == second.template == ("waba-1", "welcome", "en")
    assert (first.status, first.fields, first.time) == (
        "fail",
        {"reason": "Wrong variable format"},
        RECEIVED,
    )
    assert first.key != second.key
    [again] = normalise_batch(ca.encode(batch[:1]), chatapp.AUDIT, RECEIVED)
    assert again.reviews[0].key == first.key  # a re-pushed review is the same review


def test_a_tampered_batch_is_parked_whole() -> None:
    [payload] = normalise_batch(b'{"not": "an array"}', chatapp.STATUS, RECEIVED)
    assert payload.parked[0].category == MALFORMED
    assert payload.raw == b'{"not": "an array"}'


@pytest.mark.parametrize("odd", [[], {}, 3, None, True, ["Sent"], {"a": 1}])
def test_unhashable_or_odd_values_are_malformed_never_an_error(odd: Any) -> None:
    for field in ("Status", "MessageId", "From", "Timestamp", "Type", "Message"):
        event = {**ca.status("m1", "Sent", USER), **ca.inbound_text("u1", USER, "x"), field: odd}
        for kind in (chatapp.STATUS, chatapp.INBOUND, chatapp.AUDIT):
            problem = chatapp_screen.event_problem(kind, event)
            assert problem is None or isinstance(problem, str)
        payloads = normalise_batch(ca.encode([event]), chatapp.STATUS, RECEIVED)
        assert sum(len(p.receipts) + len(p.parked) for p in payloads) == 1
