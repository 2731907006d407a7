"""The webhook on the real stack: what it answers, and exactly what it publishes."""

import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from types import ModuleType

import pytest
import requests

from shared.core import arrival, credentials
from shared.providers import REGISTRY
from shared.providers.bm import webhook as bm_webhook
from tests.integration.conftest import BODY_LIMIT, Spy, documents, recorded, send
from tests.python_process import run_python
from tools.local.stack import LocalStack
from tools.payloads import bm as bm
from tools.topology import ROOT

pytestmark = pytest.mark.integration


def new_conversation() -> str:
    return f"conv-{uuid.uuid4().hex[:12]}"


def test_handshake_with_the_right_token_answers_the_plain_secret(stack: LocalStack) -> None:
    response = requests.post(
        stack.webhook_url,
        json={"clientToken": stack.client_token, "secret": "s3cr3t-value"},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.text == "s3cr3t-value"
    assert response.headers["Content-Type"].startswith("text/plain")


def test_handshake_with_a_wrong_token_is_refused_without_the_secret(stack: LocalStack) -> None:
    response = requests.post(
        stack.webhook_url, json={"clientToken": "guess", "secret": "s3cr3t-value"}, timeout=10
    )
    assert response.status_code == 403
    assert "s3cr3t-value" not in response.text


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "garbage!!",
        "c2hvcnQ=",
        credentials.hmac_sha512_header(b"another body", "local-signing-key"),
    ],
    ids=["missing", "empty", "garbage", "short", "forged"],
)
def test_unsigned_or_forged_requests_are_401_and_nothing_is_published_or_stored(
    stack: LocalStack, spy: Spy, db: object, signature: str | None
) -> None:
    cid = new_conversation()
    body = bm.encode(bm.user_text(cid, "m1", "hello"))
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers[bm_webhook.SIGNATURE_HEADER] = signature
    response = requests.post(stack.webhook_url, data=body, headers=headers, timeout=10)
    assert response.status_code == 401
    # A signed event after it is published and recorded: the rejected one never was.
    marker = send(stack, bm.encode(bm.user_status(cid, isTyping=True)))
    recorded(stack, marker)
    assert [m["attributes"]["kind"] for m in spy.published(cid)] == ["userStatus"]
    messages = documents(stack.firestore_client().collection(f"conversations/{cid}/messages"))
    assert [d["kind"] for d in messages.values()] == ["userStatus"]


def test_an_authenticated_body_is_published_unchanged_with_its_attributes(
    stack: LocalStack, spy: Spy
) -> None:
    cid = new_conversation()
    document = bm.user_text(cid, "m1", "hello")
    body = json.dumps(document, indent=3).encode()  # odd formatting must survive byte for byte
    response = send(stack, body)
    recorded(stack, response)
    [published] = spy.published(cid)
    assert published["data"] == body
    assert published["messageId"] == response.json()["messageId"]
    assert published["topic"] == stack.settings.topics["READABLE_TOPIC"]
    attributes = dict(published["attributes"])
    stamp = attributes.pop(arrival.RECEIVED_TIME)  # when it first arrived
    arrived = arrival.received({arrival.RECEIVED_TIME: stamp}, datetime.min.replace(tzinfo=UTC))
    assert abs(arrived - datetime.now(UTC)) < timedelta(minutes=5)
    assert attributes == {
        "provider": "bm",
        "kind": "message",
        "conversationId": cid,
        "requestId": document["requestId"],
    }


def test_receipts_go_to_the_events_topic(stack: LocalStack, spy: Spy) -> None:
    cid = new_conversation()
    recorded(stack, send(stack, bm.encode(bm.receipts(cid, ("a1", "READ")))))
    [published] = spy.published(cid)
    assert published["topic"] == stack.settings.topics["EVENTS_TOPIC"]
    assert "requestId" not in published["attributes"]


def test_signed_bodies_of_unknown_kind_or_not_json_are_accepted_and_parked(
    stack: LocalStack,
) -> None:
    unknown = bm.encode({"conversationId": new_conversation(), "somethingNew": {"x": 1}})
    garbage = b"\x00\x01 definitely not json"
    entries = recorded(stack, send(stack, unknown), send(stack, garbage))
    assert [(e["kind"], e["parked"]) for e in entries] == [("unknown", 1), ("unknown", 1)]
    parked = documents(stack.firestore_client().collection("parked"))
    by_body = {d.get("rawBody"): d["category"] for d in parked.values()}
    assert by_body[unknown] == "UNKNOWN_KIND"
    assert by_body[garbage] == "NOT_JSON"


def test_only_post_is_accepted(stack: LocalStack) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = requests.request(method, stack.webhook_url, timeout=10)
        assert response.status_code == 405
        assert response.headers["Allow"] == "POST"


def test_oversized_bodies_are_413_by_length_or_by_stream(stack: LocalStack, spy: Spy) -> None:
    limit = BODY_LIMIT
    cid = new_conversation()
    big = bm.encode(bm.user_text(cid, "m1", "x" * limit))
    assert send(stack, big).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the webhook must stop reading
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    headers = {bm_webhook.SIGNATURE_HEADER: credentials.hmac_sha512_header(big, stack.signing_key)}
    response = requests.post(stack.webhook_url, data=chunks(), headers=headers, timeout=10)
    assert response.status_code == 413
    recorded(stack, send(stack, bm.encode(bm.user_status(cid, isTyping=False))))
    assert [m["attributes"]["kind"] for m in spy.published(cid)] == ["userStatus"]


def test_a_previous_key_still_verifies_while_keys_rotate(stack: LocalStack) -> None:
    assert "," in stack.settings.providers_env["BM_SIGNING_KEY"]
    body = bm.encode(bm.user_status(new_conversation(), isTyping=True))
    recorded(stack, send(stack, body, key="previous-signing-key"))


def import_webhook(code: str, **environment: str) -> subprocess.CompletedProcess[str]:
    """Imports the webhook's entry point in a fresh interpreter, as its server would."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **environment}
    return run_python(["-c", f"import sys, functions.webhook.main; {code}"], env)


def test_missing_configuration_stops_the_webhook_at_start_naming_it() -> None:
    nothing = import_webhook("", GOOGLE_CLOUD_PROJECT="p")
    assert nothing.returncode != 0
    assert "webhook cannot start: no provider is configured" in nothing.stderr
    half = import_webhook("", GOOGLE_CLOUD_PROJECT="p", BM_SIGNING_KEY="k")
    assert half.returncode != 0
    assert "webhook cannot start: BM_CLIENT_TOKEN is required" in half.stderr


def module_of(load: Callable[[], object]) -> str:
    """The module a provider's part loader imports (imported here, in the test's process)."""
    part = load()
    assert isinstance(part, ModuleType)
    return part.__name__


def test_the_webhook_imports_only_the_receive_side_of_the_providers_switched_on() -> None:
    subscriber_only = (
        "google.cloud.firestore",
        "tenacity",
        "shared.adapters.google_api",
        "shared.adapters.read_receipt_sender",
        "shared.adapters.store",
        "shared.adapters.spool",  # only on a failed publish
        "shared.core.records",
        *(module_of(p.load_normaliser) for p in REGISTRY),
        *(module_of(p.load_read_receipts) for p in REGISTRY if p.load_read_receipts),
        *(module_of(p.load_queue) for p in REGISTRY if p.load_queue),
    )
    switched_off = tuple(module_of(p.load_webhook) for p in REGISTRY if p.name != "bm")
    result = import_webhook(
        f"print(sorted(m for m in sys.modules if m.startswith({subscriber_only + switched_off!r})))"
        "; print('shared.providers.bm.webhook' in sys.modules)",
        GOOGLE_CLOUD_PROJECT="p",
        BM_SIGNING_KEY="k",
        BM_CLIENT_TOKEN="t",
        PUBSUB_EMULATOR_HOST="127.0.0.1:9",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[]", "True"]
