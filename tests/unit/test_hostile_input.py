"""Hostile input, fuzzed: nothing raises, nothing unauthenticated is handed off, and what
cannot be used is parked with a reason instead of lost."""

import base64
import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.core import credentials, records
from shared.core.events import Payload
from shared.core.ingress import Incoming, Publish, Reply, parse_json
from shared.core.screening import screen
from shared.providers import chatapp
from shared.providers.bm import webhook as bm_webhook
from shared.providers.bm.normalise import normalise_one
from shared.providers.bm.read_receipts import read_targets
from shared.providers.chatapp import webhook as chatapp_webhook
from shared.providers.chatapp.normalise import normalise_batch
from tools.payloads import chatapp as ca

KEYS = ("current-key", "previous-key")
BM_SETTINGS = bm_webhook.BmWebhookSettings(signing_keys=KEYS, client_token="client-token")
CHATAPP_SETTINGS = chatapp_webhook.ChatAppWebhookSettings(tokens=("callback-token",))
NOW = datetime(2026, 1, 1, tzinfo=UTC)
_PATH = {kind: path for path, kind in chatapp.KIND_BY_PATH.items()}
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# JSON that Python's own values cannot say, or that trips code reading it: written into the
# body in place of a placeholder (see `hostile_json`).
HOSTILE = (
    '"\\ud800"',  # a lone surrogate
    '"caption \\udfff"',
    "9" * 20,  # beyond 64 bits
    "-" + "9" * 5000,  # beyond what Python parses as an integer
    '{"a":' * 960 + "1" + "}" * 960,  # deeper than any screen allows
    "[" * 40 + "]" * 40,
    "1e308",
    "-0.0",
    "1e999",
)
hostile = st.sampled_from(range(len(HOSTILE))).map(lambda n: f"__hostile_{n}__")
hostile_keys = st.sampled_from(["__hostile_0__", "__hostile_1__"])  # the strings


def hostile_json(document: Any) -> bytes:
    """The document as JSON, each hostile placeholder replaced by its text."""
    text = json.dumps(document)
    for number, raw in enumerate(HOSTILE):
        text = text.replace(f'"__hostile_{number}__"', raw)
    return text.encode()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | hostile,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=12) | hostile_keys, inner, max_size=4)
    ),
    max_leaves=25,
)
# Objects shaped like the providers' own, with any value in any field.
receipt_types = st.sampled_from(["DELIVERED", "READ", "RECEIPT_TYPE_UNSPECIFIED"])
bm_receipt = st.fixed_dictionaries(
    {},
    optional={
        "message": json_values | st.just("conversations/c1/messages/m1"),
        "receiptType": json_values | receipt_types,
    },
)
bm_receipts = st.fixed_dictionaries(
    {"receipts": st.lists(json_values | bm_receipt, max_size=5)},
    optional={"createTime": json_values},
)
bm_message = st.fixed_dictionaries({}, optional={"name": json_values, "text": json_values})
bm_documents = st.fixed_dictionaries(
    {},
    optional={
        "conversationId": json_values | st.just("c1"),
        "requestId": json_values,
        "sendTime": json_values | st.just("2026-01-01T00:00:00Z"),
        "agent": json_values,
        "context": json_values,
        "message": json_values | bm_message,
        "receipts": json_values | bm_receipts,
        "suggestionResponse": json_values,
        "userStatus": json_values,
        "surveyResponse": json_values,
        "authenticationResponse": json_values,
    },
)
chatapp_events = st.lists(
    json_values
    | st.fixed_dictionaries(
        {},
        optional={
            "MessageId": json_values | st.just("m1"),
            "From": json_values | st.just("8613800000000"),
            "To": json_values | st.just("8613900000000"),
            "Timestamp": json_values | st.integers(min_value=-(10**20), max_value=10**20),
            "Timestamp ": json_values,
            "Status": json_values | st.sampled_from(sorted(chatapp.SCALE.ranks)),
            "Type": json_values | st.sampled_from(["TEXT", "IMAGE"]),
            "Message": json_values,
            "TemplateCode": json_values,
            "Language": json_values,
            "AuditStatus": json_values,
            "WabaId": json_values,
        },
    ),
    max_size=6,
)
# Well-formed envelopes with hostile contents reach every branch of the parsers.
bm_events = st.one_of(
    st.builds(lambda r: {"receipts": r}, bm_receipts),
    st.builds(lambda m: {"message": {**m, "name": "conversations/c1/messages/m1"}}, bm_message),
    st.builds(
        lambda v: {"suggestionResponse": {"message": "conversations/c1/messages/s1", "text": v}},
        json_values,
    ),
    st.builds(lambda v: {"userStatus": v}, json_values),
    st.builds(lambda v: {"surveyResponse": v}, json_values),
    st.builds(lambda v: {"authenticationResponse": v}, json_values),
)
bm_envelopes = st.builds(
    lambda event, context: {"conversationId": "c1", "requestId": "r1", "context": context, **event},
    bm_events,
    json_values,
)
bodies = st.one_of(
    st.binary(max_size=300),
    bm_documents.map(hostile_json),
    bm_envelopes.map(hostile_json),
)


def headers(signature: str | None) -> dict[str, str]:
    return {} if signature is None else {bm_webhook.SIGNATURE_HEADER: signature}


def plan_everything(payloads: list[Payload]) -> int:
    """Plans every payload against an empty store, as the recorder would."""
    return sum(
        len(records.plan(p, {}, NOW)) for group in records.commit_groups(payloads) for p in group
    )


@FUZZ
@given(body=bodies, signature=st.none() | st.text(max_size=100) | st.binary(max_size=64).map(
    lambda b: base64.b64encode(b).decode()
))  # fmt: skip
def test_an_unsigned_or_wrongly_signed_body_is_never_handed_off(
    body: bytes, signature: str | None
) -> None:
    decision = bm_webhook.receive(
        Incoming((), headers(signature), body, "203.0.113.1"), BM_SETTINGS
    )
    assert isinstance(decision, Reply)
    assert decision.status in (200, 401, 403)  # 200 and 403 only for the handshake shape
    if decision.status == 200:
        assert credentials.handshake(parse_json(body)) is not None


@FUZZ
@given(body=bodies)
def test_any_correctly_signed_body_is_handed_off_whole(body: bytes) -> None:
    signature = credentials.hmac_sha512_header(body, KEYS[1])
    decision = bm_webhook.receive(Incoming((), headers(signature), body, None), BM_SETTINGS)
    if credentials.handshake(parse_json(body)) is not None:
        return  # the handshake is answered, never published
    assert isinstance(decision, Publish)
    assert all(len(value.encode()) <= 1024 for value in decision.attributes.values())


@FUZZ
@given(body=bodies)
def test_every_business_messages_body_normalises_and_plans_without_error(body: bytes) -> None:
    payloads = screen([normalise_one(body)])  # as the recorder has it (providers.normalise)
    written = plan_everything(payloads)
    assert written > 0 or any(p.receipts or p.user_messages for p in payloads)  # none dropped
    read_targets(payloads)


@FUZZ
@given(
    events=chatapp_events,
    kind=st.sampled_from(sorted(chatapp.KIND_BY_PATH)),
    token=st.text(max_size=20),
)
def test_chatapp_callbacks_never_error_and_need_the_token(
    events: list[Any], kind: str, token: str
) -> None:
    body = hostile_json(events)
    wrong = chatapp_webhook.receive(
        Incoming((kind, token), headers(None), body, None), CHATAPP_SETTINGS
    )
    if token != "callback-token":
        assert isinstance(wrong, Reply)
        assert wrong.status == 401
    decision = chatapp_webhook.receive(
        Incoming((kind, "callback-token"), headers(None), body, None), CHATAPP_SETTINGS
    )
    assert isinstance(decision, Publish) if events else isinstance(decision, Reply)


@FUZZ
@given(events=chatapp_events, kind=st.sampled_from(sorted(chatapp.KIND_BY_PATH.values())))
def test_every_chatapp_element_is_recorded_or_parked(events: list[Any], kind: str) -> None:
    body = hostile_json(events)
    payloads = screen(normalise_batch(body, kind, NOW))
    kept = sum(
        len(p.receipts) + len(p.user_messages) + len(p.reviews) + len(p.parked) for p in payloads
    )
    assert kept == len(events)  # each element exactly once: used, or parked with its reason
    plan_everything(payloads)
    decision = chatapp_webhook.receive(
        Incoming((_PATH[kind], "callback-token"), headers(None), body, None), CHATAPP_SETTINGS
    )
    if events:  # the webhook's counts are the recorder's
        assert isinstance(decision, Publish)
        assert decision.accepted["setAside"] == sum(len(p.parked) for p in payloads)


@FUZZ
@given(body=st.binary(max_size=300))
def test_chatapp_bodies_that_are_not_arrays_are_refused_cleanly(body: bytes) -> None:
    decision = chatapp_webhook.receive(
        Incoming(("status", "callback-token"), headers(None), body, None), CHATAPP_SETTINGS
    )
    if not isinstance(parse_json(body), list):
        assert isinstance(decision, Reply)
        assert decision.status == 400


def test_deep_nesting_and_huge_arrays_are_bounded() -> None:
    deep = b"[" * 200_000 + b"]" * 200_000
    assert normalise_one(deep).parked[0].category == "NOT_JSON"
    assert normalise_batch(deep, chatapp.STATUS, NOW)[0].parked
    many = ca.encode([ca.status(f"m{i}", "Sent", "8613900000000") for i in range(5000)])
    payloads = screen(normalise_batch(many, chatapp.STATUS, NOW))
    groups = records.commit_groups(payloads)
    assert len(groups) > 1  # 5,000 writes: more than one commit holds
    assert all(
        sum(p.most_writes() for p in group) <= records.MAX_WRITES_PER_COMMIT for group in groups
    )
    assert sum(len(p.receipts) for p in payloads) == 5000  # every valid element is recorded
