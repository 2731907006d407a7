"""Signature, handshake and classification: what the webhook decides before publishing."""

import base64
import hashlib
import hmac
import json

import pytest

from shared.core import credentials, routing
from shared.core.config import Env
from shared.core.ingress import Incoming, Publish, Reply, parse_json
from shared.providers.bm import webhook as bm_webhook

BODY = b'{"conversationId": "c1", "requestId": "r1", "message": {"text": "hi"}}'


def google_signature(body: bytes, key: str) -> str:
    """Computed independently of the product: base64(HMAC-SHA512(key, raw body))."""
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha512).digest()).decode()


def test_signature_of_the_raw_body_with_the_key_is_valid() -> None:
    assert credentials.hmac_sha512_valid(
        BODY, google_signature(BODY, "partner-key"), ["partner-key"]
    )


def test_any_configured_key_verifies_so_keys_can_rotate() -> None:
    header = google_signature(BODY, "new-key")
    assert credentials.hmac_sha512_valid(BODY, header, ["old-key", "new-key"])
    assert not credentials.hmac_sha512_valid(BODY, header, ["old-key"])


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "not base64 at all!",
        base64.b64encode(b"short").decode(),
        google_signature(BODY, "wrong-key"),
        google_signature(BODY + b" ", "partner-key"),
        base64.urlsafe_b64encode(hmac.new(b"partner-key", BODY, hashlib.sha256).digest()).decode(),
    ],
)
def test_missing_malformed_or_wrong_signatures_are_refused(header: str | None) -> None:
    assert not credentials.hmac_sha512_valid(BODY, header, ["partner-key"])


def test_re_serialised_json_does_not_verify() -> None:
    reserialised = json.dumps(json.loads(BODY), separators=(",", ":")).encode()
    assert not credentials.hmac_sha512_valid(reserialised, google_signature(BODY, "k"), ["k"])


def test_handshake_is_exactly_client_token_and_secret() -> None:
    assert credentials.handshake({"clientToken": "t", "secret": "s"}) == credentials.Handshake(
        "t", "s"
    )
    assert credentials.handshake({"clientToken": "t", "secret": "s", "message": {}}) is None
    assert credentials.handshake({"clientToken": "t"}) is None
    assert credentials.handshake({"clientToken": 1, "secret": "s"}) is None
    assert credentials.handshake(["clientToken", "secret"]) is None


def test_token_comparison() -> None:
    assert credentials.matches_any("token", ["token"])
    assert not credentials.matches_any("token", ["tokeN"])
    assert not credentials.matches_any("", ["token"])


@pytest.mark.parametrize(
    ("document", "kind", "topic"),
    [
        ({"message": {}}, "message", routing.READABLE),
        ({"suggestionResponse": {}}, "suggestionResponse", routing.READABLE),
        ({"receipts": {}}, "receipts", routing.EVENTS),
        ({"authenticationResponse": {}}, "authenticationResponse", routing.EVENTS),
        ({"userStatus": {}}, "userStatus", routing.EVENTS),
        ({"surveyResponse": {}}, "surveyResponse", routing.EVENTS),
        ({"somethingNew": {}}, "unknown", routing.EVENTS),
        (None, "unknown", routing.EVENTS),
        ([1, 2], "unknown", routing.EVENTS),
    ],
)
def test_describe_names_the_kind_and_routes_it(document: object, kind: str, topic: str) -> None:
    description = bm_webhook.describe(document)
    assert (description.kind, description.topic_key) == (kind, topic)
    assert description.attributes["provider"] == "bm"
    assert description.attributes["kind"] == kind


def test_attributes_carry_ids_where_present_and_usable() -> None:
    attributes = bm_webhook.describe(
        {"conversationId": "c", "requestId": "r", "message": {}}
    ).attributes
    assert attributes == {
        "provider": "bm",
        "kind": "message",
        "conversationId": "c",
        "requestId": "r",
    }
    odd = bm_webhook.describe(
        {"conversationId": "x" * 2000, "requestId": 7, "receipts": {}}
    ).attributes
    assert "conversationId" not in odd  # over Pub/Sub's 1024-byte limit: the body still has it
    assert "requestId" not in odd


def test_parse_json_survives_hostile_bodies() -> None:
    assert parse_json(b"[" * 100_000) is None
    assert parse_json(b"\xff\xfe") is None
    assert parse_json(b"{}") == {}


def test_the_signature_is_checked_before_any_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[bytes] = []

    def spy(body: bytes) -> object:
        parsed.append(body)
        return parse_json(body)

    monkeypatch.setattr(bm_webhook, "parse_json", spy)
    receive = bm_webhook.receiver(Env({"BM_SIGNING_KEY": "k", "BM_CLIENT_TOKEN": "t"}))
    big = b'{"conversationId": "c", "message": {"text": "' + b"x" * 1_000_000 + b'"}}'

    def answer(body: bytes, headers: dict[str, str]) -> int:
        decision = receive(Incoming((), headers, body, None))
        assert isinstance(decision, Reply)
        return decision.status

    assert answer(big, {bm_webhook.SIGNATURE_HEADER: google_signature(big, "forged")}) == 401
    assert answer(big, {}) == 401  # unsigned and too large to be a handshake
    assert parsed == []
    handshake = b'{"clientToken": "t", "secret": "s"}'
    assert answer(handshake, {}) == 200  # a small unsigned body may be the handshake
    assert answer(handshake, {bm_webhook.SIGNATURE_HEADER: "forged"}) == 401
    assert parsed == [handshake]


def test_a_sign_in_is_published_with_its_code_redacted_once_the_signature_is_checked() -> None:
    receive = bm_webhook.receiver(Env({"BM_SIGNING_KEY": "k", "BM_CLIENT_TOKEN": "t"}))
    sign_in = {"conversationId": "c1", "authenticationResponse": {"code": "SECRET", "x": 1}}
    raw = json.dumps(sign_in).encode()
    decision = receive(
        Incoming((), {bm_webhook.SIGNATURE_HEADER: google_signature(raw, "k")}, raw, None)
    )
    assert isinstance(decision, Publish)
    assert decision.body is not None
    assert json.loads(decision.body) == {
        "conversationId": "c1",
        "authenticationResponse": {"code": "REDACTED", "x": 1},
    }
    # A repeated key cannot hide a code, nor can a sign-in that is no object.
    repeated = b'{"authenticationResponse": {"code": "SECRET"}, "authenticationResponse": {}}'
    for body in (repeated, b'{"authenticationResponse": "code=SECRET"}'):
        signed = {bm_webhook.SIGNATURE_HEADER: google_signature(body, "k")}
        decision = receive(Incoming((), signed, body, None))
        assert isinstance(decision, Publish)
        assert decision.body is not None
        assert b"SECRET" not in decision.body
    other = b'{"conversationId": "c1", "userStatus": {"isTyping": true}}'
    signed = {bm_webhook.SIGNATURE_HEADER: google_signature(other, "k")}
    decision = receive(Incoming((), signed, other, None))
    assert isinstance(decision, Publish)
    assert decision.body is None  # published unchanged
