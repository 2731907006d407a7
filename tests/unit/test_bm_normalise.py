"""Normalising Business Messages payloads into the product's own events."""

import json
from datetime import UTC, datetime
from typing import Any

from shared.core.events import MALFORMED, NOT_JSON, REJECTED_RECEIPT, UNKNOWN_KIND, payload_key
from shared.core.read_receipts import ReadTarget
from shared.providers.bm.normalise import normalise_one
from shared.providers.bm.read_receipts import read_targets

CID = "conv-1"


def body(**fields: Any) -> bytes:
    return json.dumps({"conversationId": CID, "agent": "brands/b/agents/a", **fields}).encode()


def name(message_id: str, conversation_id: str = CID) -> str:
    return f"conversations/{conversation_id}/messages/{message_id}"


def test_every_receipt_of_a_payload_is_kept_with_its_time() -> None:
    payload = normalise_one(
        body(
            sendTime="2024-05-01T10:00:01Z",
            receipts={
                "createTime": "2024-05-01T10:00:00.123456789Z",
                "receipts": [
                    {"message": name("m1"), "receiptType": "DELIVERED"},
                    {"message": name("m2"), "receiptType": "DELIVERED"},
                    {"message": name("m3"), "receiptType": "READ"},
                ],
            },
        )
    )
    assert [(r.message_id, r.status) for r in payload.receipts] == [
        ("m1", "DELIVERED"),
        ("m2", "DELIVERED"),
        ("m3", "READ"),
    ]
    assert payload.receipts[0].time == datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert payload.parked == ()
    assert payload.conversation == {"agent": "brands/b/agents/a"}


def test_bad_receipts_are_parked_with_a_reason_beside_the_good_ones() -> None:
    payload = normalise_one(
        body(
            receipts={
                "receipts": [
                    {"message": name("ok"), "receiptType": "READ"},
                    {"message": name("m2"), "receiptType": "RECEIPT_TYPE_UNSPECIFIED"},
                    {"message": name("m3")},
                    {"message": "garbage", "receiptType": "READ"},
                    {"message": name("m5", "another-conversation"), "receiptType": "READ"},
                    "not an object",
                ]
            }
        )
    )
    assert [r.message_id for r in payload.receipts] == ["ok"]
    assert [(p.category, p.index) for p in payload.parked] == [
        (REJECTED_RECEIPT, i) for i in range(1, 6)
    ]
    assert "RECEIPT_TYPE_UNSPECIFIED" in payload.parked[0].reason


def test_payloads_that_cannot_be_used_are_parked_whole() -> None:
    assert normalise_one(b"not json").parked[0].category == NOT_JSON
    assert normalise_one(body(newKind={})).parked[0].category == UNKNOWN_KIND
    assert normalise_one(json.dumps({"message": {}}).encode()).parked[0].category == MALFORMED
    assert normalise_one(body(receipts={"receipts": []})).parked[0].category == MALFORMED
    assert normalise_one(body(message={"text": "no name"})).parked[0].category == MALFORMED
    unknown = normalise_one(body(newKind={}))
    assert unknown.raw == body(newKind={})
    assert unknown.key


def test_a_text_message_keeps_its_text_and_context() -> None:
    payload = normalise_one(
        body(
            requestId="r1",
            message={
                "messageId": "m1",
                "name": name("m1"),
                "text": "Hello",
                "createTime": "2024-05-01T10:00:00Z",
            },
            context={
                "entryPoint": "PLACESHEET",
                "placeId": "p1",
                "nearPlaceId": "p2",
                "resolvedLocale": "en",
                "userInfo": {"displayName": "Ann", "userDeviceLocale": "en-GB"},
                "widget": {"url": "https://example.com", "widgetContext": "w"},
                "customContext": "cc",
                "undocumented": "dropped",
            },
        )
    )
    message = payload.user_messages[0]
    assert message is not None
    assert (message.message_id, message.kind, dict(message.content)) == (
        "m1",
        "message",
        {"text": "Hello"},
    )
    assert message.create_time == datetime(2024, 5, 1, 10, tzinfo=UTC)
    kept = {"entryPoint", "placeId", "nearPlaceId", "resolvedLocale", "userInfo", "widget"}
    assert set(message.context) == kept | {"customContext"}
    assert payload.request_id == "r1"
    assert read_targets([normalise_one(body(message={"name": name("m1"), "text": "x"}))]) == [
        ReadTarget(CID, "m1")
    ]


def test_an_image_arrives_as_a_signed_url_in_text() -> None:
    url = "https://storage.googleapis.com/business-messages-us/936640919331/abc?x-goog-signature=f"
    message = normalise_one(body(message={"name": name("m1"), "text": url})).user_messages[0]
    assert message is not None
    assert message.content == {"text": url, "imageUrl": url}


def test_suggestion_response_is_readable_and_keeps_its_postback() -> None:
    raw = body(
        suggestionResponse={
            "message": name("s1"),
            "postbackData": "hours",
            "text": "Hours",
            "type": "REPLY",
        }
    )
    message = normalise_one(raw).user_messages[0]
    assert message is not None
    assert message.content == {"text": "Hours", "postbackData": "hours", "suggestionType": "REPLY"}
    assert read_targets([normalise_one(raw)]) == [ReadTarget(CID, "s1")]


def test_events_without_a_message_name_are_keyed_by_request_id_and_get_no_read_receipt() -> None:
    raw = body(
        requestId="r9", userStatus={"isTyping": "true", "createTime": "2024-05-01T10:00:00Z"}
    )
    message = normalise_one(raw).user_messages[0]
    assert message is not None
    assert (message.message_id, message.content) == ("request-r9", {"isTyping": True})
    assert read_targets([normalise_one(raw)]) == []
    survey = normalise_one(
        body(surveyResponse={"rating": "VERY_SATISFIED", "survey": "s"})
    ).user_messages[0]
    assert survey is not None
    assert survey.content == {"rating": "VERY_SATISFIED", "survey": "s"}
    assert survey.message_id.startswith("payload-")  # no requestId: the body's hash


def test_the_oauth_code_of_an_authentication_response_is_never_kept() -> None:
    raw = body(
        requestId="r", authenticationResponse={"code": "SECRET-CODE", "redirectUri": "https://r"}
    )
    message = normalise_one(raw).user_messages[0]
    assert message is not None
    assert message.content == {"codeReceived": True, "redirectUri": "https://r"}
    assert "SECRET-CODE" not in repr(message)


def test_a_sign_in_of_before_the_redaction_is_parked_without_its_code() -> None:
    """Dead letters and spool documents published before the webhook redacted sign-ins."""
    for sign_in in ({"code": "SECRET-CODE"}, "code=SECRET-CODE"):
        raw = json.dumps({"authenticationResponse": sign_in}).encode()  # no conversationId
        payload = normalise_one(raw)
        assert payload.parked[0].category == MALFORMED
        assert b"SECRET-CODE" not in payload.raw
        assert payload.key == payload_key(raw)  # a redelivery keeps its identity


def test_odd_receipt_types_are_rejected_never_an_error() -> None:
    odd_types: list[object] = [[], {}, 3, None, ["READ"]]
    entries = [{"message": name("m1"), "receiptType": odd} for odd in odd_types]
    payload = normalise_one(body(receipts={"receipts": entries}))
    assert payload.receipts == ()
    assert [p.reason for p in payload.parked] == ["receiptType is missing or unknown"] * 5
