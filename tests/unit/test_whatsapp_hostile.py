"""WhatsApp's envelope and payload parser on hostile input (hypothesis): nothing raises on
any bytes or any JSON, lone surrogates, deep nesting and huge numbers included; nothing
unsigned is handed off; whatever is read can be planned and marked read."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.core import records
from shared.core.ingress import Incoming, Publish, Reply
from shared.core.screening import screen
from shared.providers.whatsapp import normalise as normalise_module
from shared.providers.whatsapp import webhook
from shared.providers.whatsapp.normalise import normalise
from shared.providers.whatsapp.read_receipts import read_targets
from tests.unit.test_whatsapp import SECRETS, SETTINGS, Headers
from tools.payloads import whatsapp as wa

NOW = datetime(2026, 12, 1, tzinfo=UTC)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

texts = st.text(max_size=12) | st.sampled_from(
    ["\ud800", "a\udfffb", "", " ", "16505551234", "US.1"]
)
# 5,000 digits: built lazily, since repr() of such an int raises (Python's 4,300-digit limit).
huge = st.builds(lambda: 10**5000)
numbers = st.integers() | st.sampled_from([10**19, -(10**19)]) | st.floats() | huge
scalars = st.none() | st.booleans() | numbers | texts
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=12,
)


def shaped(other: st.SearchStrategy[Any], **keys: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """An object with the documented keys, each holding a plausible value or any other."""
    return other | st.fixed_dictionaries({}, optional={k: v | other for k, v in keys.items()})


statuses = shaped(
    json_values,
    id=st.just("w1"),
    status=st.sampled_from(["sent", "delivered", "read", "failed", "played", "new"]),
    timestamp=st.just("1765000000") | st.just("9" * 30),
    recipient_id=st.just("16505551234"),
    recipient_user_id=st.just("US.1"),
    errors=st.lists(
        shaped(json_values, code=numbers, title=texts, error_data=json_values), max_size=2
    ),
    pricing=json_values,
    conversation=json_values,
    biz_opaque_callback_data=texts,
)
messages = shaped(
    json_values,
    id=st.just("m1"),
    type=st.sampled_from([*wa.MESSAGE_OBJECTS, "nope"]),
    timestamp=st.just("1765000000"),
    context=json_values,
    referral=json_values,
    errors=json_values,
    **{"from": st.just("16505551234"), "from_user_id": st.just("US.1")},
    **{name: json_values | st.just(sample) for name, sample in wa.MESSAGE_OBJECTS.items()},
)
values = shaped(
    json_values,
    metadata=shaped(json_values, phone_number_id=st.just("1")),
    statuses=st.lists(statuses, max_size=3),
    messages=st.lists(messages, max_size=3),
    contacts=st.lists(
        shaped(json_values, wa_id=texts, user_id=texts, profile=json_values), max_size=2
    ),
    errors=st.lists(json_values, max_size=2),
    user_id_update=st.lists(json_values, max_size=2),
    event=texts,
    message_template_name=texts,
    message_template_language=texts,
    message_template_id=numbers,
)
changes = shaped(
    json_values,
    field=st.sampled_from(
        ["messages", "message_template_status_update", "user_id_update", "account_update"]
    )
    | texts,
    value=values,
)
documents = st.fixed_dictionaries(
    {"object": st.just("whatsapp_business_account") | texts},
    optional={
        "entry": st.lists(
            shaped(json_values, id=texts, time=numbers, changes=st.lists(changes, max_size=3)),
            max_size=3,
        )
        | json_values
    },
)


def _as_json(document: Any) -> bytes:
    try:
        return json.dumps(document, default=str).encode("utf-8", "surrogatepass")
    except ValueError:  # a 5,000-digit int has no JSON text in Python
        return b""


def everything_downstream(payloads: list[Any]) -> None:
    """What the recorder and the READ sender do with the payloads must not raise either."""
    screened = screen(payloads)
    for group in records.commit_groups(screened):
        for payload in group:
            assert payload.provider == "whatsapp"
            assert records.plan(payload, {}, NOW), "a payload that writes nothing"
    read_targets(screened)


@FUZZ
@given(document=documents)
def test_no_document_makes_the_parser_raise(document: dict[str, Any]) -> None:
    # Huge integers are kept as Python reads them; here the document is handed to the parser
    # as if JSON had carried it, and everything after the parser runs on it too.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(normalise_module, "parse_json", lambda raw: document)
        payloads = normalise(b"{}", {}, NOW)
    everything_downstream(payloads)


@FUZZ
@given(raw=st.binary(max_size=300) | documents.map(_as_json))
def test_no_bytes_make_the_normaliser_or_webhook_raise(raw: bytes) -> None:
    everything_downstream(normalise(raw, {"kind": "messages"}, NOW))
    decided = webhook.receive(
        Incoming((), Headers(wa.signed_headers(raw, SECRETS[1])), raw, None), SETTINGS
    )
    assert isinstance(decided, Reply | Publish)
    unsigned = webhook.receive(Incoming((), Headers(), raw, None), SETTINGS)
    assert isinstance(unsigned, Reply)
    assert unsigned.status == 401


@FUZZ
@given(
    headers=st.dictionaries(st.sampled_from(["X-Hub-Signature-256", "Other"]), texts),
    query=st.dictionaries(
        texts | st.sampled_from(["hub.mode", "hub.verify_token", "hub.challenge"]), texts
    ),
    method=st.sampled_from(["GET", "POST", "PUT"]),
)
def test_no_request_makes_the_webhook_raise_and_none_unsigned_is_published(
    headers: dict[str, str], query: dict[str, str], method: str
) -> None:
    decided = webhook.receive(
        Incoming(
            (),
            Headers(headers),
            b'{"object":"whatsapp_business_account","entry":[{}]}',
            None,
            method,
            query,
        ),
        SETTINGS,
    )
    assert not isinstance(decided, Publish)


@pytest.mark.parametrize("depth", [20, 500, 1000, 5000])
def test_deep_nesting_anywhere_is_parked_or_kept_never_raised(depth: int) -> None:
    nested = "[" * depth + "]" * depth
    inner = '{"a":' * depth + "1" + "}" * depth
    for hole in (nested, inner):
        message = json.dumps(wa.message("m1", "text"))[:-1] + f',"text":{hole}' + "}"
        raw = (
            '{"object":"whatsapp_business_account","entry":[{"id":"w","changes":[{"field":"messages",'
            f'"value":{{"metadata":{{"phone_number_id":"1"}},"messages":[{message},{hole}]}}}},'
            f'{{"field":"x","value":{hole}}}]}}]}}'
        ).encode()
        payloads = normalise(raw, {}, NOW)
        assert payloads
        everything_downstream(payloads)
        decided = webhook.receive(
            Incoming((), Headers(wa.signed_headers(raw, SECRETS[0])), raw, None), SETTINGS
        )
        assert isinstance(decided, Reply | Publish)


@pytest.mark.parametrize("digits", [20, 5000])
def test_huge_numbers_in_every_field_are_never_raised_on(digits: int) -> None:
    huge = "9" * digits
    raw = (
        '{"object":"whatsapp_business_account","entry":[{"id":'
        + huge
        + ',"time":'
        + huge
        + ',"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":'
        + huge
        + '},"statuses":[{"id":"w1","status":"failed","timestamp":'
        + huge
        + ',"recipient_id":"1",'
        + '"errors":[{"code":'
        + huge
        + '}]}],"messages":[{"id":"m1","from":"1","type":"location",'
        + '"timestamp":"'
        + huge
        + '","location":{"latitude":'
        + huge
        + "}}]}},"
        + '{"field":"message_template_status_update","value":{"event":"APPROVED",'
        + '"message_template_id":'
        + huge
        + ',"message_template_language":"en"}}]}]}'
    ).encode()
    everything_downstream(normalise(raw, {}, NOW))
