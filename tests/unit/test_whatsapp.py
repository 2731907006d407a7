"""WhatsApp (Cloud API): the webhook part (handshake, signature), and the normaliser on
Meta's batches: every entry, change, status and message, each with an index unique in its
body, the conversation key for users with and without a phone number, and what each field
becomes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.core import records
from shared.core.config import Env
from shared.core.credentials import hub_signature, hub_signature_valid
from shared.core.docids import compound_id
from shared.core.events import MALFORMED, NOT_JSON, Payload
from shared.core.ingress import Incoming, Publish, Reply
from shared.core.screening import screen
from shared.providers.whatsapp import PROVIDER, SCALE, USER_MESSAGES, webhook
from shared.providers.whatsapp.normalise import (
    OTHER_FIELD,
    PLATFORM_ERROR,
    USER_ID_UPDATE,
    conversation_id,
    normalise,
    unix_seconds,
)
from shared.providers.whatsapp.read_receipts import read_targets
from tools.payloads import whatsapp as wa

SECRETS = ("current-app-secret", "previous-app-secret")
TOKENS = ("verify-token", "old-verify-token")
SETTINGS = webhook.WhatsAppWebhookSettings(app_secrets=SECRETS, verify_tokens=TOKENS)
NOW = datetime(2026, 12, 1, tzinfo=UTC)
CONVERSATION = conversation_id(wa.PHONE_NUMBER_ID, wa.USER)


class Headers(dict[str, str]):
    def get(self, key: str, default: Any = None) -> Any:  # case-insensitive, as werkzeug's
        return next((v for k, v in self.items() if k.lower() == key.lower()), default)


def post(
    raw: bytes, headers: dict[str, str] | None = None, path: tuple[str, ...] = ()
) -> Reply | Publish:
    signed = wa.signed_headers(raw, SECRETS[0]) if headers is None else headers
    return webhook.receive(Incoming(path, Headers(signed), raw, "127.0.0.1"), SETTINGS)


def get(query: dict[str, str], method: str = "GET") -> Reply | Publish:
    return webhook.receive(Incoming((), Headers(), b"", "127.0.0.1", method, query), SETTINGS)


def normalised(*entries: dict[str, Any]) -> list[Payload]:
    return normalise(wa.encode(wa.body(*entries)), {}, NOW)


def by_conversation(payloads: list[Payload]) -> dict[str | None, Payload]:
    return {payload.conversation_id: payload for payload in payloads}


def indices(payloads: list[Payload]) -> list[int | None]:
    items = [
        item
        for p in payloads
        for group in (p.receipts, p.user_messages, p.reviews, p.parked)
        for item in group
    ]
    return sorted(item.index for item in items)  # type: ignore[type-var]


def recorded(payloads: list[Payload], existing: dict[str, Any] | None = None) -> dict[str, Any]:
    """The documents the payloads write onto `existing`: path -> fields."""
    documents = dict(existing or {})
    for payload in payloads:
        for write in records.plan(payload, documents, NOW):
            documents[write.path] = {**(documents.get(write.path) or {}), **write.data}
    return documents


def message_document(documents: dict[str, Any], message_id: str, cid: str = CONVERSATION) -> Any:
    return documents[records.message_path(cid, message_id)]


# --- the webhook: signature --------------------------------------------------------------


def test_a_body_signed_with_any_configured_secret_is_published_unchanged() -> None:
    raw = wa.encode(wa.body(wa.entry(wa.change(statuses=[wa.status("w1", "sent")]))))
    for secret in SECRETS:  # the current secret, and the one being rotated out
        decided = post(raw, wa.signed_headers(raw, secret))
        assert isinstance(decided, Publish)
        assert decided.attributes == {"provider": "whatsapp", "kind": "updates", "events": "1"}
        assert decided.topic_key == "events"


@pytest.mark.parametrize(
    "signature",
    [
        None,
        hub_signature(b"another body", SECRETS[0]),
        hub_signature(b"{}", "not-a-configured-secret"),
    ],
)
def test_a_wrong_or_missing_signature_is_refused(signature: str | None) -> None:
    raw = wa.encode(wa.body(wa.entry(wa.change(statuses=[wa.status("w1", "sent")]))))
    headers = {} if signature is None else {webhook.SIGNATURE_HEADER: signature}
    decided = post(raw, headers)
    assert isinstance(decided, Reply)
    assert decided.status == 401


@pytest.mark.parametrize(
    "header",
    [
        "sha1=" + "0" * 40,
        "sha256=" + "z" * 64,
        "sha256=" + "0" * 63,
        "0" * 64,
        "sha256 =" + "0" * 64,
        "",
    ],
)
def test_a_signature_header_of_the_wrong_shape_is_refused_before_the_body_is_parsed(
    header: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def parse_json(body: bytes) -> Any:
        raise AssertionError("parsed an unsigned body")

    monkeypatch.setattr(webhook, "parse_json", parse_json)
    decided = post(
        b'{"object": "whatsapp_business_account", "entry": []}', {webhook.SIGNATURE_HEADER: header}
    )
    assert isinstance(decided, Reply)
    assert decided.status == 401


def test_the_signature_is_over_the_raw_bytes_in_any_hex_case() -> None:
    raw = b'{"text":"caf\\u00e9"}'
    signature = hub_signature(raw, "secret")
    assert signature.startswith("sha256=")
    assert signature[7:] == signature[7:].lower()
    assert hub_signature_valid(raw, "sha256=" + signature[7:].upper(), ["secret"])
    reserialised = json.dumps(json.loads(raw), ensure_ascii=False).encode()
    assert not hub_signature_valid(reserialised, signature, ["secret"])


def test_a_signed_body_that_is_not_a_whatsapp_batch_is_a_clear_400() -> None:
    for raw in (
        b"not json",
        b"[]",
        b'{"object": "page", "entry": []}',
        b'{"object": "whatsapp_business_account"}',
    ):
        decided = post(raw)
        assert isinstance(decided, Reply)
        assert decided.status == 400


def test_an_empty_batch_is_acknowledged_without_publishing() -> None:
    decided = post(wa.encode(wa.body()))
    assert isinstance(decided, Reply)
    assert decided.status == 200


def test_a_batch_with_a_user_message_goes_to_the_readable_topic_with_every_update_counted() -> None:
    raw = wa.encode(
        wa.body(
            wa.entry(wa.change(statuses=[wa.status("w1", "sent"), wa.status("w2", "read")])),
            wa.entry(
                wa.change(messages=[wa.message("m1", "text")]),
                wa.template_update("t", "en", "APPROVED"),
            ),
        )
    )
    decided = post(raw)
    assert isinstance(decided, Publish)
    assert decided.topic_key == "readable"
    assert decided.attributes == {"provider": "whatsapp", "kind": USER_MESSAGES, "events": "4"}


def test_other_methods_and_paths_are_refused() -> None:
    decided = get({}, method="PUT")
    assert isinstance(decided, Reply)
    assert decided.status == 405
    assert decided.headers["Allow"] == "GET, POST"
    decided = post(b"{}", path=("extra",))
    assert isinstance(decided, Reply)
    assert decided.status == 404


# --- the webhook: Meta's verification handshake -------------------------------------------


@pytest.mark.parametrize("token", TOKENS)
def test_the_handshake_answers_exactly_the_challenge_for_any_configured_token(token: str) -> None:
    decided = get(
        {"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "1158201444"}
    )
    assert decided == Reply(200, "1158201444")  # a string body is sent as text/plain


@pytest.mark.parametrize(
    "query",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": TOKENS[0], "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.verify_token": TOKENS[0]},
        {"hub.mode": "subscribe", "hub.verify_token": "\ud800", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.verify_token": TOKENS[0], "hub.challenge": "\udfff"},
        {},
    ],
)
def test_any_other_handshake_is_403(query: dict[str, str]) -> None:
    decided = get(query)
    assert isinstance(decided, Reply)
    assert decided.status == 403


def test_the_receiver_reads_comma_separated_secrets_and_tokens() -> None:
    env = Env({"WHATSAPP_APP_SECRET": "a, b", "WHATSAPP_VERIFY_TOKEN": "t1,t2"})
    receive = PROVIDER.receiver(env)
    env.check("test")
    raw = wa.encode(wa.body(wa.entry(wa.change(statuses=[wa.status("w1", "sent")]))))
    assert isinstance(
        receive(Incoming((), Headers(wa.signed_headers(raw, "b")), raw, None)), Publish
    )
    shake = receive(
        Incoming(
            (),
            Headers(),
            b"",
            None,
            "GET",
            {"hub.mode": "subscribe", "hub.verify_token": "t2", "hub.challenge": "c"},
        )
    )
    assert shake == Reply(200, "c")


# --- user messages ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message_type", "content", "expected"),
    [
        ("text", None, {"text": "Does it come in another color?"}),
        (
            "image",
            None,
            {
                "mediaId": "1479537139650973",
                "mimeType": "image/jpeg",
                "caption": "Here",
                "text": "Here",
            },
        ),
        (
            "audio",
            None,
            {"mediaId": "1003383421387256", "mimeType": "audio/ogg; codecs=opus", "voice": True},
        ),
        ("video", None, {"mediaId": "1200728654811372", "caption": "Unboxing", "text": "Unboxing"}),
        ("document", None, {"mediaId": "1003383421387257", "fileName": "r.pdf"}),
        (
            "sticker",
            None,
            {"mediaId": "1003383421387258", "mimeType": "image/webp", "animated": False},
        ),
        ("location", None, {"location": wa.MESSAGE_OBJECTS["location"]}),
        ("contacts", None, {"contacts": wa.MESSAGE_OBJECTS["contacts"]}),
        (
            "interactive",
            None,
            {"interactiveType": "button_reply", "replyId": "yes-1", "text": "Yes"},
        ),
        (
            "interactive",
            wa.LIST_REPLY,
            {
                "interactiveType": "list_reply",
                "replyId": "r1",
                "text": "Red",
                "replyDescription": "A",
            },
        ),
        (
            "interactive",
            wa.FLOW_REPLY,
            {"interactiveType": "nfm_reply", "flowName": "flow", "flowResponse": '{"a": 1}'},
        ),
        ("button", None, {"postbackData": "STOP", "text": "Stop promotions"}),
        (
            "reaction",
            None,
            {"reactionTo": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI=", "emoji": "\U0001f600"},
        ),
        ("order", None, {"order": wa.MESSAGE_OBJECTS["order"]}),
        ("system", None, {"systemType": "user_changed_number", "newWaId": "16505559999"}),
        ("unsupported", None, {"unsupported": {"type": "edit"}}),
        (
            "a_type_meta_adds_later",
            {"any": ["thing"]},
            {"a_type_meta_adds_later": {"any": ["thing"]}},
        ),
    ],
)
def test_every_message_type_is_recorded_with_what_a_business_needs(
    message_type: str, content: Any, expected: dict[str, Any]
) -> None:
    sent = wa.message("m1", message_type, content=content, at="1765000000")
    (payload,) = normalised(wa.entry(wa.change(messages=[sent], contacts=[wa.contact()])))
    (message,) = payload.user_messages
    assert message.content["messageType"] == message_type
    assert expected.items() <= message.content.items()
    assert message.create_time == datetime(2025, 12, 6, 5, 46, 40, tzinfo=UTC)
    assert message.kind == ("system" if message_type == "system" else "message")
    assert message.context["profileName"] == "Sheena Nelson"
    assert payload.agent == wa.PHONE_NUMBER_ID
    assert payload.conversation_id == CONVERSATION


def test_a_reply_keeps_what_it_replies_to_and_an_unsupported_message_its_errors() -> None:
    reply = wa.message(
        "m2",
        "text",
        context={"from": wa.DISPLAY_PHONE_NUMBER, "id": "wamid.original", "forwarded": True},
    )
    unsupported = wa.message(
        "m3", "unsupported", errors=[{"code": 131051, "title": "Message type unknown"}]
    )
    (payload,) = normalised(wa.entry(wa.change(messages=[reply, unsupported])))
    first, second = payload.user_messages
    assert first.context == {
        "replyTo": "wamid.original",
        "replyToFrom": wa.DISPLAY_PHONE_NUMBER,
        "forwarded": True,
    }
    assert second.content["errors"] == [{"code": 131051, "title": "Message type unknown"}]
    documents = recorded([payload])
    assert message_document(documents, "m2")["context"]["replyTo"] == "wamid.original"


def test_only_what_users_said_is_marked_read_each_by_its_business_number() -> None:
    payloads = normalised(
        wa.entry(
            wa.change(
                messages=[wa.message("m1", "text", at="1765000000"), wa.message("s1", "system")],
                statuses=[wa.status("w1", "read")],
            )
        )
    )
    (target,) = read_targets(payloads)
    assert (target.conversation_id, target.message_id) == (CONVERSATION, "m1")
    assert target.recipient == {"phoneNumberId": wa.PHONE_NUMBER_ID}
    sent = datetime(2025, 12, 6, 5, 46, 40, tzinfo=UTC)
    assert target.not_after == sent + timedelta(days=30)  # Meta marks read only so long
    assert target.burst is not None  # one READ for the newest covers the earlier ones


def test_the_targets_of_a_delivery_are_oldest_first_whatever_the_body_order() -> None:
    payloads = normalised(
        wa.entry(
            wa.change(messages=[wa.message("late", "text", at="1765000100")]),
            wa.change(messages=[wa.message("early", "text", at="1765000000")]),
        )
    )
    assert [t.message_id for t in read_targets(payloads)] == ["early", "late"]


# --- users with and without a phone number -------------------------------------------------


def test_a_username_user_without_a_phone_number_is_keyed_by_their_bsuid_with_both_ids_kept() -> (
    None
):
    bsuid_only = wa.message("m1", "text", user=None, user_id=wa.BSUID)
    contact = wa.contact(None, "Pablo", wa.BSUID, username="pablo.m")
    payloads = normalised(wa.entry(wa.change(messages=[bsuid_only], contacts=[contact])))
    (payload,) = payloads
    assert payload.conversation_id == compound_id("whatsapp", wa.PHONE_NUMBER_ID, wa.BSUID)
    assert payload.conversation["userId"] == wa.BSUID
    assert "waId" not in payload.conversation
    assert payload.conversation["username"] == "pablo.m"
    (target,) = read_targets(payloads)
    assert target.message_id == "m1"
    # The business's reply to the BSUID: its statuses name only the BSUID too.
    (statuses,) = normalised(
        wa.entry(wa.change(statuses=[wa.status("w1", "read", None, user_id=wa.BSUID)]))
    )
    assert statuses.conversation_id == payload.conversation_id


def test_every_status_of_a_message_sent_to_a_phone_lands_on_one_document() -> None:
    # Meta sends the BSUID with sent/delivered/read but omits it from `failed` when the
    # message went to a phone number: the phone number is the key they all share.
    payloads = normalised(
        wa.entry(
            wa.change(
                statuses=[
                    wa.status("w1", "sent", user_id=wa.BSUID),
                    wa.failed("w1", wa.USER, 131026, "Message undeliverable"),
                ]
            )
        )
    )
    assert [p.conversation_id for p in payloads] == [CONVERSATION]
    document = message_document(recorded(payloads), "w1")
    assert document["status"] == "failed"
    assert document["sentTime"]
    assert document["failedTime"]
    assert document["receipts"]["sent"]["recipientUserId"] == wa.BSUID


def test_a_user_id_update_is_kept_on_the_users_conversation() -> None:
    update = wa.entry(wa.user_id_update(wa.USER, "US.111", "US.222"))
    payloads = normalised(update)
    (payload,) = payloads
    assert payload.conversation_id == CONVERSATION
    assert payload.conversation_state == {"userId": "US.222"}
    (event,) = payload.user_messages
    assert event.kind == USER_ID_UPDATE
    assert event.message_id.startswith("event-")
    assert read_targets(payloads) == []
    conversation = recorded(payloads)[records.conversation_path(CONVERSATION)]
    assert conversation["userId"] == "US.222"
    # Redelivered, the same update is the same event, already recorded: nothing to write.
    (again,) = normalised(update)
    assert again.user_messages == payload.user_messages


def test_a_user_id_update_naming_no_user_is_parked_not_lost() -> None:
    (payload,) = normalised(wa.entry(wa.field_change("user_id_update", {"something": "new"})))
    (parked,) = payload.parked
    assert parked.category == OTHER_FIELD
    assert "user_id_update" in parked.reason  # the body itself is kept whole with it


# --- statuses --------------------------------------------------------------------------------


def test_sent_then_read_without_delivered_is_read_and_a_late_delivered_keeps_read() -> None:
    first = normalised(
        wa.entry(
            wa.change(
                statuses=[
                    wa.status("w1", "sent", at="1765000000"),
                    wa.status("w1", "read", at="1765000060"),
                ]
            )
        )
    )
    documents = recorded(first)
    assert message_document(documents, "w1")["status"] == "read"
    late = normalised(wa.entry(wa.change(statuses=[wa.status("w1", "delivered", at="1765000030")])))
    documents = recorded(late, documents)
    document = message_document(documents, "w1")
    assert document["status"] == "read"
    assert document["deliveredTime"] == datetime(2025, 12, 6, 5, 47, 10, tzinfo=UTC)


def test_a_failed_status_keeps_its_errors_and_a_later_delivery_outranks_it() -> None:
    failure = wa.failed(
        "w1", wa.USER, 131047, "Re-engagement message", "More than 24 hours have passed"
    )
    documents = recorded(normalised(wa.entry(wa.change(statuses=[failure]))))
    document = message_document(documents, "w1")
    assert document["status"] == "failed"
    assert document["errorCode"] == "131047"
    assert document["errorDescription"] == "Re-engagement message"
    assert document["errors"] == [
        {
            "code": "131047",
            "title": "Re-engagement message",
            "message": "Re-engagement message",
            "details": "More than 24 hours have passed",
        }
    ]
    # Another of the user's devices got it (Meta: a delivered after a failed happens).
    documents = recorded(
        normalised(wa.entry(wa.change(statuses=[wa.status("w1", "delivered")]))), documents
    )
    document = message_document(documents, "w1")
    assert document["status"] == "delivered"
    assert document["failedTime"]
    assert SCALE.rank("sent") < SCALE.rank("failed") < SCALE.rank("delivered") < SCALE.rank("read")


def test_a_receipt_keeps_what_a_business_joins_on() -> None:
    sent = wa.status(
        "w1",
        "sent",
        biz_opaque_callback_data="order-42",
        conversation={
            "id": "c1",
            "expiration_timestamp": "1765086400",
            "origin": {"type": "utility"},
        },
    )
    (payload,) = normalised(wa.entry(wa.change(statuses=[sent])))
    (receipt,) = payload.receipts
    assert receipt.details["pricing"] == {
        "billable": True,
        "pricingModel": "PMP",
        "category": "utility",
    }
    assert receipt.details["conversation"] == {
        "id": "c1",
        "expirationTimestamp": "1765086400",
        "originType": "utility",
    }
    assert receipt.details["wabaId"] == wa.WABA_ID
    assert receipt.details["phoneNumberId"] == wa.PHONE_NUMBER_ID
    document = message_document(recorded([payload]), "w1")
    assert document["bizOpaqueCallbackData"] == "order-42"
    assert document["wabaId"] == wa.WABA_ID


def test_duplicates_in_one_body_collapse_into_one_record() -> None:
    twice = [wa.status("w1", "delivered", at="1765000000")] * 2
    payloads = normalised(
        wa.entry(wa.change(statuses=twice, messages=[wa.message("m1", "text")] * 2))
    )
    writes = [w for p in payloads for w in records.plan(p, {}, NOW)]
    paths = [w.path for w in writes]
    assert paths.count(records.message_path(CONVERSATION, "w1")) == 1
    assert paths.count(records.message_path(CONVERSATION, "m1")) == 1


# --- batches ---------------------------------------------------------------------------------


def test_every_update_of_every_entry_and_change_is_recorded_with_a_body_wide_index() -> None:
    other_user = "447700900123"
    payloads = normalised(
        wa.entry(
            wa.change(statuses=[wa.status("w1", "sent"), wa.status("w2", "sent", other_user)]),
            wa.change(messages=[wa.message("m1", "text")], phone_number_id="999"),
        ),
        wa.entry(
            wa.change(
                statuses=[wa.status("w3", "read")],
                errors=[{"code": 131000, "title": "Something went wrong"}],
            ),
            wa.field_change("account_update", {"event": "VERIFIED_ACCOUNT"}),
            wa.template_update("order_update", "en_US", "REJECTED", "INCORRECT_CATEGORY"),
            waba_id="waba-2",
        ),
    )
    assert indices(payloads) == list(range(7))
    conversations = by_conversation(payloads)
    assert {r.message_id for r in conversations[CONVERSATION].receipts} == {"w1", "w3"}
    assert [
        r.message_id
        for r in conversations[conversation_id(wa.PHONE_NUMBER_ID, other_user)].receipts
    ] == ["w2"]
    assert [m.message_id for m in conversations[conversation_id("999", wa.USER)].user_messages] == [
        "m1"
    ]
    rest = conversations[None]
    assert [(p.category, p.index) for p in rest.parked] == [(PLATFORM_ERROR, 4), (OTHER_FIELD, 5)]
    assert "account_update" in rest.parked[1].reason
    (review,) = rest.reviews
    assert review.template == ("waba-2", "order_update", "en_US")
    assert review.status == "REJECTED"
    assert review.fields["reason"] == "INCORRECT_CATEGORY"
    documents = recorded(payloads)
    [parked_document] = [d for path, d in documents.items() if path.startswith("parked/")]
    assert parked_document["setAside"] == 2  # both in the body's one parked document
    assert documents[records.template_review_path(review.template)]["status"] == "REJECTED"


def test_a_batch_of_1000_updates_or_more_is_recorded_whole() -> None:
    for updates in (1000, 1500):  # Meta's "about 1,000" is no bound the pipeline relies on
        raw = wa.encode(wa.status_batch(updates))
        payloads = screen(normalise(raw, {}, NOW))
        assert sum(len(p.receipts) for p in payloads) == updates
        assert indices(payloads) == list(range(updates))
        assert not any(p.parked for p in payloads)


def test_elements_that_cannot_be_used_are_parked_with_why_beside_the_rest() -> None:
    raw = wa.encode(
        {
            "object": "whatsapp_business_account",
            "entry": [
                "not an entry",
                {
                    "id": "w",
                    "changes": [
                        {"no": "field"},
                        wa.change(statuses=[{"id": "w1"}, wa.status("w2", "sent")]),
                    ],
                },
                {
                    "id": "w",
                    "changes": [
                        {"field": "messages", "value": {"messages": [wa.message("m1", "text")]}}
                    ],
                },
            ],
        }
    )
    payloads = normalise(raw, {}, NOW)
    assert indices(payloads) == list(range(5))
    rest = by_conversation(payloads)[None]
    assert [p.category for p in rest.parked] == [
        MALFORMED,
        MALFORMED,
        "REJECTED_RECEIPT",
        MALFORMED,
    ]
    assert [r.message_id for r in by_conversation(payloads)[CONVERSATION].receipts] == ["w2"]


@pytest.mark.parametrize(
    ("raw", "category"), [(b"\xff", NOT_JSON), (b'{"object": "page"}', MALFORMED)]
)
def test_a_body_unusable_as_a_whole_is_parked_whole(raw: bytes, category: str) -> None:
    (payload,) = normalise(raw, {}, NOW)
    assert payload.parked[0].category == category
    assert payload.parked[0].index is None


def test_times_are_unix_seconds_as_strings() -> None:
    assert unix_seconds("1765000000") == datetime(2025, 12, 6, 5, 46, 40, tzinfo=UTC)
    assert unix_seconds(1765000000) == unix_seconds("1765000000")
    for unusable in ("", "12.5", "-1", "9" * 20, "1e9", True, None, "٣"):
        assert unix_seconds(unusable) is None
    assert unix_seconds("0") is None
    assert unix_seconds("01") == unix_seconds("1") == datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)


def test_compound_ids_escape_their_separator() -> None:
    assert compound_id("a:b", "c") != compound_id("a", "b:c")
    assert compound_id("a%3Ab") != compound_id("a:b")
    assert compound_id("whatsapp", "1", "US.2") == "whatsapp:1:US.2"


# --- the provider as the registry will see it ------------------------------------------------


def test_its_parts_load_and_its_contract_requests_sample_what_they_say() -> None:
    """What the contract suite checks once the coordinator registers the provider."""
    env = Env(dict.fromkeys(("WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN"), "value"))
    receive = PROVIDER.receiver(env)
    assert PROVIDER.normaliser.normalise is normalise
    read_receipts = PROVIDER.read_receipts
    assert read_receipts is not None
    assert callable(read_receipts.api_settings(Env({})).connect)
    assert PROVIDER.topic_key(USER_MESSAGES) == "readable"
    assert PROVIDER.topic_key("updates") == "events"
    platform_env = {"WHATSAPP_APP_SECRET": "value"}
    sample = wa.CONTRACT_REQUESTS.receipt(platform_env, "tag")
    request = sample.request
    assert isinstance(receive(Incoming((), Headers(request.headers), request.body, None)), Publish)
    for refused in (
        wa.CONTRACT_REQUESTS.forged(platform_env, request),
        wa.CONTRACT_REQUESTS.unauthenticated(platform_env, request),
    ):
        decided = receive(Incoming((), Headers(refused.headers), refused.body, None))
        assert isinstance(decided, Reply)
        assert decided.status == 401
    malformed = wa.CONTRACT_REQUESTS.malformed(platform_env)
    assert malformed is not None
    decided = receive(Incoming((), Headers(malformed.headers), malformed.body, None))
    assert isinstance(decided, Reply)
    assert decided.status == 400
    (payload,) = normalise(request.body, {}, NOW)
    assert (payload.conversation_id, payload.receipts[0].message_id) == (
        sample.conversation_id,
        sample.message_id,
    )
