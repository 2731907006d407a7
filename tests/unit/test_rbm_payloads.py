"""The RBM webhook request builders: envelope shape, payload fields, and the signature rule
(HMAC-SHA512 keyed with the clientToken over the base64-decoded message.data)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tools.payloads import rbm

TOKEN = "SJENCPGJESMGUFPY"
AT = datetime(2026, 3, 5, 18, 50, 19, 386436, tzinfo=UTC)
E164 = re.compile(r"\+[1-9][0-9]{1,14}")
NANOS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z")

EVENTS: dict[str, Callable[[], dict[str, Any]]] = {
    "text": lambda: rbm.text_message("Hello, receipt 42"),
    "suggestion": lambda: rbm.suggestion_response("receipt:42:ok", "Looks right"),
    "location": lambda: rbm.location_message(37.422, -122.084056),
    "file": lambda: rbm.file_message(),
    "delivered": lambda: rbm.user_event("DELIVERED", "agent-msg-1"),
    "read": lambda: rbm.user_event("READ", "agent-msg-1"),
    "typing": lambda: rbm.user_event("IS_TYPING"),
    "subscribe": lambda: rbm.user_event("SUBSCRIBE"),
    "unsubscribe": lambda: rbm.user_event("UNSUBSCRIBE"),
    "ttl-revoked": lambda: rbm.server_event("TTL_EXPIRATION_REVOKED", "agent-msg-1"),
    "ttl-failed": lambda: rbm.server_event("TTL_EXPIRATION_REVOKE_FAILED", "agent-msg-1"),
    "launch": lambda: rbm.agent_launch_event("LAUNCHED"),
}


def documented_signature(body: bytes, token: str) -> str:
    """The rule as Google's webhook guide states it, written out independently."""
    data = base64.b64decode(json.loads(body)["message"]["data"])
    return base64.b64encode(hmac.new(token.encode(), data, hashlib.sha512).digest()).decode()


def test_signature_matches_a_vector_computed_with_openssl() -> None:
    # printf '%s' DATA | openssl dgst -sha512 -hmac TOKEN -binary | base64
    data = b'{"senderPhoneNumber": "+447700900123", "text": "Hello"}'
    assert rbm.signature(data, TOKEN) == (
        "Mks0IU3yMLoopJlpXwKtHRoCzUpNCLb5TdNq8A3X75dCFwfC1VDbWXndo/xEZsLQ+TeoxvWQRZCchRKonG+8lQ=="
    )
    body = rbm.push(data)
    assert json.loads(body)["message"]["data"] == (
        "eyJzZW5kZXJQaG9uZU51bWJlciI6ICIrNDQ3NzAwOTAwMTIzIiwgInRleHQiOiAiSGVsbG8ifQ=="
    )
    assert rbm.signed_headers(body, TOKEN)["X-Goog-Signature"] == rbm.signature(data, TOKEN)


@pytest.mark.parametrize("kind", sorted(EVENTS))
def test_every_kind_is_signed_over_the_decoded_data_and_not_the_raw_body(kind: str) -> None:
    body = rbm.push(EVENTS[kind]())
    sent = rbm.signed_headers(body, TOKEN)[rbm.SIGNATURE_HEADER]

    assert hmac.compare_digest(sent, documented_signature(body, TOKEN))
    raw_body_signature = rbm.signature(body, TOKEN)
    assert not hmac.compare_digest(sent, raw_body_signature)
    hex_digest = hmac.new(TOKEN.encode(), rbm.data_of(body), hashlib.sha512).hexdigest()
    assert sent != hex_digest
    assert sent != rbm.signature(rbm.data_of(body), "another-client-token")


@pytest.mark.parametrize("kind", sorted(EVENTS))
def test_every_kind_travels_in_a_pubsub_push_envelope(kind: str) -> None:
    event = EVENTS[kind]()
    document = json.loads(rbm.push(event))

    assert set(document) == {"message", "subscription"}
    assert document["subscription"].startswith("projects/")
    message = document["message"]
    assert message["messageId"] == message["message_id"]
    assert message["messageId"].isdigit()
    assert message["publishTime"] == message["publish_time"]
    assert json.loads(base64.b64decode(message["data"], validate=True)) == event
    if kind == "launch":
        assert message["attributes"] == {
            "business_id": rbm.AGENT,
            "event_type": "LAUNCHED",
            "product": "RBM",
            "project_number": rbm.PROJECT_NUMBER,
            "type": "agent_launch_event",
        }
    else:
        assert "attributes" not in message


def test_data_is_standard_padded_base64() -> None:
    # '???' encodes to 'Pz8/': the standard alphabet keeps '/', url-safe would write '_'.
    message = rbm.envelope(b"???>")["message"]
    assert message["data"] == "Pz8/Pg=="


def test_envelope_fields_are_parameters_for_deterministic_tests() -> None:
    document = rbm.envelope(
        rbm.text_message("hi", message_id="m-1", at=AT),
        attributes={"k": "v"},
        message_id="14150481888479752",
        published=AT,
        subscription="projects/p/subscriptions/s",
    )
    assert document == {
        "message": {
            "attributes": {"k": "v"},
            "data": document["message"]["data"],
            "messageId": "14150481888479752",
            "message_id": "14150481888479752",
            "publishTime": "2026-03-05T18:50:19.386436Z",
            "publish_time": "2026-03-05T18:50:19.386436Z",
        },
        "subscription": "projects/p/subscriptions/s",
    }
    assert rbm.decode(rbm.encode(document))["sendTime"] == "2026-03-05T18:50:19.386436000Z"


def test_times_are_written_as_google_writes_them() -> None:
    assert rbm.rfc3339_nanos(AT) == "2026-03-05T18:50:19.386436000Z"
    assert NANOS.fullmatch(rbm.rfc3339_nanos())
    assert rbm.publish_time(datetime(2025, 3, 5, 18, 50, 21, 880000, tzinfo=UTC)) == (
        "2025-03-05T18:50:21.88Z"
    )
    assert rbm.publish_time(datetime(2025, 3, 5, 18, 50, 21, tzinfo=UTC)) == (
        "2025-03-05T18:50:21Z"
    )


def test_user_messages_have_the_common_fields_and_exactly_one_content() -> None:
    contents = {"text", "userFile", "location", "suggestionResponse"}
    for kind in ("text", "suggestion", "location", "file"):
        event = EVENTS[kind]()
        assert E164.fullmatch(event["senderPhoneNumber"])
        assert event["agentId"].endswith("@rbm.goog")
        assert event["messageId"]
        assert NANOS.fullmatch(event["sendTime"])
        assert "eventType" not in event
        assert len(contents & set(event)) == 1, kind


def test_user_message_contents() -> None:
    reply = rbm.suggestion_response("receipt:42:ok", "Looks right", message_id="m-7", at=AT)
    assert reply == {
        "senderPhoneNumber": rbm.USER_PHONE,
        "messageId": "m-7",
        "sendTime": "2026-03-05T18:50:19.386436000Z",
        "agentId": rbm.AGENT,
        "suggestionResponse": {
            "postbackData": "receipt:42:ok",
            "text": "Looks right",
            "type": "REPLY",
        },
    }
    assert rbm.location_message(37.422, -122.084056)["location"] == {
        "latitude": 37.422,
        "longitude": -122.084056,
    }
    user_file = rbm.file_message()["userFile"]
    assert set(user_file) == {"thumbnail", "payload"}
    for info in user_file.values():
        assert set(info) == {"mimeType", "fileSizeBytes", "fileUri", "fileName"}
        assert isinstance(info["fileSizeBytes"], int)
        assert info["fileUri"].startswith("https://storage.googleapis.com/")
    only_payload = rbm.file_message(rbm.file_info("scan.pdf", "application/pdf", 1234, "obj"))
    assert only_payload["userFile"] == {
        "payload": {
            "mimeType": "application/pdf",
            "fileSizeBytes": 1234,
            "fileUri": "https://storage.googleapis.com/rbm-user-files/obj",
            "fileName": "scan.pdf",
        }
    }
    us = rbm.text_message("hi", richMessageClassification={"richMessageType": "RICH_MESSAGE"})
    assert us["richMessageClassification"] == {"richMessageType": "RICH_MESSAGE"}


def test_user_events_name_the_agent_message_only_when_delivered_or_read() -> None:
    read = rbm.user_event("READ", "agent-msg-1", event_id="e-1", at=AT)
    assert read == {
        "senderPhoneNumber": rbm.USER_PHONE,
        "eventType": "READ",
        "eventId": "e-1",
        "messageId": "agent-msg-1",
        "sendTime": "2026-03-05T18:50:19.386436000Z",
        "agentId": rbm.AGENT,
    }
    for kind in ("IS_TYPING", "SUBSCRIBE", "UNSUBSCRIBE"):
        assert "messageId" not in rbm.user_event(kind)
    with pytest.raises(ValueError, match="messageId"):
        rbm.user_event("DELIVERED")
    with pytest.raises(ValueError, match="messageId"):
        rbm.user_event("IS_TYPING", "agent-msg-1")


def test_server_events_say_phone_number_not_sender() -> None:
    event = rbm.server_event("TTL_EXPIRATION_REVOKED", "agent-msg-1", event_id="s-1", at=AT)
    assert event == {
        "phoneNumber": rbm.USER_PHONE,
        "agentId": rbm.AGENT,
        "messageId": "agent-msg-1",
        "eventType": "TTL_EXPIRATION_REVOKED",
        "eventId": "s-1",
        "sendTime": "2026-03-05T18:50:19.386436000Z",
    }


def test_launch_events_carry_the_states_and_an_agent_scoped_event_id() -> None:
    event = rbm.agent_launch_event("REJECTED", comment="Carrier has rejected the launch")
    assert (event["oldLaunchState"], event["newLaunchState"]) == ("PENDING", "REJECTED")
    assert event["eventId"].startswith(f"{rbm.AGENT_ID}/")
    assert event["regionId"].startswith("/v1/regions/")
    unmarked = rbm.envelope(event, attributes={})["message"]
    assert "attributes" not in unmarked


def test_handshake_holds_only_the_token_and_the_secret() -> None:
    assert json.loads(rbm.handshake("SJENCPGJESMGUFPY", "1234567890")) == {
        "clientToken": "SJENCPGJESMGUFPY",
        "secret": "1234567890",
    }


class _Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append((self.path, dict(self.headers.items()), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[str, dict[str, str], bytes]]]]:
    seen: list[tuple[str, dict[str, str], bytes]] = []
    handler = type("Recorder", (_Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_post_signed_sends_the_body_unchanged_with_a_verifiable_signature(
    receiver: tuple[str, list[tuple[str, dict[str, str], bytes]]],
) -> None:
    url, seen = receiver
    body = rbm.push(rbm.text_message("Hello"))
    assert rbm.post_signed(f"{url}/rbm", body, TOKEN).status_code == 200
    assert rbm.post_handshake(f"{url}/rbm", TOKEN, "1234567890").status_code == 200

    (path, headers, received), (_, handshake_headers, handshake) = seen
    assert (path, received) == ("/rbm", body)
    assert headers["Content-Type"] == "application/json"
    assert hmac.compare_digest(headers["X-Goog-Signature"], documented_signature(body, TOKEN))
    assert json.loads(handshake) == {"clientToken": TOKEN, "secret": "1234567890"}
    assert "X-Goog-Signature" not in handshake_headers
