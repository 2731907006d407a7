"""The public webhook never answers 5xx, whatever comes: the real WSGI app (functions
framework, Flask, the webhook and every provider's webhook part) is fuzzed with hostile methods,
paths, query strings, signature headers and bodies, unsigned and correctly signed.

A 500 would also fire the CRITICAL 5xx alert: an outsider must not be able to page anyone.
Only the publish is replaced, by one that confirms at once.
"""

import base64
import json
import logging
import sys
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote, unquote_to_bytes

import functions_framework
import pytest
from flask import Flask
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from shared.adapters.webhook import Webhook, WebhookConfig
from shared.core import credentials
from shared.providers import REGISTRY
from shared.providers.bm import webhook as bm_webhook
from shared.providers.whatsapp import webhook as wa_webhook
from tools.payloads import rbm
from tools.topology import WEBHOOK

ENV = {
    "GOOGLE_CLOUD_PROJECT": "fuzz-project",
    "PUBSUB_EMULATOR_HOST": "127.0.0.1:9",  # never reached: the publish is replaced
    "BM_SIGNING_KEY": "bm-key",
    "BM_CLIENT_TOKEN": "bm-token",
    "RBM_CLIENT_TOKEN": "rbm-token",
    "CHATAPP_CALLBACK_TOKENS": "chatapp-token",
    "WHATSAPP_APP_SECRET": "wa-secret",
    "WHATSAPP_VERIFY_TOKEN": "wa-token",
}
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))


class ConfirmingPublisher:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, dict[str, str]]] = []

    def publish(self, topic_key: str, data: bytes, attributes: Mapping[str, str]) -> str:
        self.published.append((topic_key, data, dict(attributes)))
        return str(len(self.published))


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def failures(self, since: int = 0) -> list[str]:
        """What was logged as an error or with a stack trace."""
        return [
            record.getMessage()
            for record in self.records[since:]
            if record.exc_info or record.levelno >= logging.ERROR
        ]


@pytest.fixture(scope="module")
def webhook() -> Iterator[tuple[Any, ConfirmingPublisher, Records]]:
    """The deployed entry point, as functions-framework serves it, with its logs."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    with pytest.MonkeyPatch.context() as patch:
        for name, value in ENV.items():
            patch.setenv(name, value)
        app: Flask = functions_framework.create_app(  # type: ignore[no-untyped-call]
            WEBHOOK.target, WEBHOOK.source
        )
        publisher = ConfirmingPublisher()
        main = sys.modules["main"]
        patch.setattr(main, "pipeline_webhook", Webhook(main.config, publisher))
        logs = Records()
        root.addHandler(logs)
        try:
            yield app.test_client(), publisher, logs
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)


def signed(path: str, body: bytes) -> dict[str, str]:
    """The headers that authenticate `body` on `path`'s provider, where it can be signed."""
    if path.startswith("/rbm"):
        try:
            data = base64.b64decode(json.loads(body)["message"]["data"], validate=True)
        except (ValueError, KeyError, TypeError, RecursionError):  # no envelope: sign the body
            data = body
        return {rbm.SIGNATURE_HEADER: credentials.hmac_sha512_header(data, "rbm-token")}
    if path.startswith("/whatsapp"):
        return {wa_webhook.SIGNATURE_HEADER: credentials.hub_signature(body, "wa-secret")}
    return {bm_webhook.SIGNATURE_HEADER: credentials.hmac_sha512_header(body, "bm-key")}


# Strings JSON can carry that Python's own strings find awkward: lone surrogates, NULs,
# non-characters, and the tokens themselves.
hostile_text = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["\ud800", "\udfff", "a\ud83d", "\x00", "\ufffe", "rbm-token", "bm-token"]),
    st.sampled_from(["wa-token", "subscribe", "hub.mode", "hub.verify_token", "hub.challenge"]),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | hostile_text
    | st.sampled_from([10**300, -(10**300)]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=12,
)
RAW_BODIES = [
    b"[" * 100_000 + b"]" * 100_000,  # nesting beyond any recursion limit
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b"1" * 5_000,  # beyond int's digit limit
    b"1e999999",
    b'{"clientToken": "\\ud800", "secret": "s"}',
    b'{"clientToken": "\\udfff\\ud800", "secret": "\\ud800"}',
    b'"\\ud800"',
    b"\xff\xfe",
]


def rbm_envelope(data: Any, attributes: Any) -> bytes:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    message = {"data": base64.b64encode(raw).decode(), "attributes": attributes}
    return json.dumps({"message": message}).encode()


bodies = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(RAW_BODIES),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.builds(
        lambda token, secret: json.dumps({"clientToken": token, "secret": secret}).encode(),
        hostile_text,
        hostile_text,
    ),
    st.builds(rbm_envelope, json_values | st.sampled_from(RAW_BODIES), json_values),
    st.builds(
        lambda kind, value: json.dumps({"conversationId": "c1", kind: value}).encode(),
        st.sampled_from(["message", "receipts", "authenticationResponse", "userStatus"]),
        json_values,
    ),
)
routes = sorted({p.route for p in REGISTRY})
paths = st.one_of(
    st.sampled_from(
        [
            "/",
            "/rbm",
            "/rbm/",
            "/rbm/x",
            "/chatapp/status/chatapp-token",
            "/chatapp/inbound/x",
            "/whatsapp",
        ]
    ),
    st.builds(
        lambda route, rest: "/" + "/".join([route, *rest]),
        st.sampled_from(routes),
        st.lists(hostile_text.map(lambda s: quote(s, safe="", errors="surrogatepass")), max_size=3),
    ),
    st.just("/chatapp/status/%ED%A0%80"),  # a token whose UTF-8 is a lone surrogate
)
signature_headers = st.one_of(
    st.none(),
    st.just("signed"),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=100),
    st.binary(max_size=100).map(lambda b: base64.b64encode(b).decode()),
    st.binary(min_size=64, max_size=64).map(lambda b: base64.b64encode(b).decode()),
)
methods = st.sampled_from(["POST"] * 6 + ["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
authenticated_paths = st.sampled_from(
    [
        "/",
        "/rbm",
        "/whatsapp",
        *(f"/chatapp/{kind}/chatapp-token" for kind in ("status", "inbound", "audit")),
    ]
)
queries = st.dictionaries(hostile_text, hostile_text, max_size=3).map(
    lambda q: "&".join(
        f"{quote(k, errors='surrogatepass')}={quote(v, errors='surrogatepass')}"
        for k, v in q.items()
    )
)


@FUZZ
@given(method=methods, path=paths, query=queries, body=bodies, signature=signature_headers)
def test_no_request_makes_the_webhook_answer_5xx_or_log_a_failure(
    webhook: tuple[Any, ConfirmingPublisher, Records],
    method: str,
    path: str,
    query: str,
    body: bytes,
    signature: str | None,
) -> None:
    client, _, logs = webhook
    headers = {"X-Forwarded-For": "203.0.113.7"}
    if signature == "signed":
        headers |= signed(path, body)
    elif signature is not None:
        headers[rbm.SIGNATURE_HEADER] = signature
    before = len(logs.records)
    # As a server hands them over: the path's bytes as latin-1, the query string as sent.
    raw = {"PATH_INFO": unquote_to_bytes(path).decode("latin-1"), "QUERY_STRING": query}
    response = client.open("/", method=method, data=body, headers=headers, environ_overrides=raw)
    event(f"answered {response.status_code}")
    assert response.status_code < 500, (response.status_code, response.get_data()[:200])
    assert logs.failures(since=before) == []
    del logs.records[before:]


@FUZZ
@given(path=authenticated_paths, body=bodies)
def test_no_authenticated_request_makes_the_webhook_answer_5xx_or_log_a_failure(
    webhook: tuple[Any, ConfirmingPublisher, Records], path: str, body: bytes
) -> None:
    client, _, logs = webhook
    before = len(logs.records)
    response = client.post(path, data=body, headers=signed(path, body))
    event(f"answered {response.status_code}")
    assert response.status_code < 500, (response.status_code, response.get_data()[:200])
    assert logs.failures(since=before) == []
    del logs.records[before:]


def test_a_constant_time_comparison_never_raises_on_any_string() -> None:
    for offered in ("\ud800", "\udfff\ud800", "a\ud83d", "\x00", "t\u00e9"):
        assert not credentials.matches_any(offered, ["t", "t\u00e8"])
    assert credentials.matches_any("t\u00e9", ["other", "t\u00e9"])
    assert credentials.handshake_reply({"clientToken": "\ud800", "secret": "s"}, ["t"]) == (
        credentials.handshake_reply({"clientToken": "wrong", "secret": "s"}, ["t"])
    )


@pytest.mark.parametrize("path", ["/rbm", "/"])
def test_a_handshake_with_a_lone_surrogate_is_refused_like_any_wrong_token(
    webhook: tuple[Any, ConfirmingPublisher, Records], path: str
) -> None:
    client, publisher, logs = webhook
    published = len(publisher.published)

    def handshake(token: str) -> int:
        body = b'{"clientToken": "' + token.encode() + b'", "secret": "s"}'
        status: int = client.post(path, data=body).status_code
        return status

    assert handshake("\\ud800") == handshake("wrong-token") == 403
    assert logs.failures() == []
    assert len(publisher.published) == published


def test_a_signed_handshake_whose_secret_no_answer_can_echo_is_a_400(
    webhook: tuple[Any, ConfirmingPublisher, Records],
) -> None:
    """Found by the fuzz above: a matching token with a lone surrogate as the secret."""
    client, publisher, logs = webhook
    token = sys.modules["main"].config.routes[""].receive.keywords["settings"].client_token
    body = b'{"clientToken": "' + token.encode() + b'", "secret": "\\ud800"}'
    published = len(publisher.published)
    for headers in ({}, signed("/", body)):  # unsigned, and signed as the fuzz found it
        assert client.post("/", data=body, headers=headers).status_code == 400
    assert logs.failures() == []
    assert len(publisher.published) == published


def test_every_configured_provider_answers_its_own_route(
    webhook: tuple[Any, ConfirmingPublisher, Records],
) -> None:
    config: WebhookConfig = sys.modules["main"].config
    assert set(config.routes) == {p.route for p in REGISTRY}  # the fuzz reaches every one
