"""What every provider must do, on the real stack: each check runs for each registered provider.

A provider gets these tests by being registered (`shared.providers.REGISTRY`) with its
platform's requests (`tools.payloads.CONTRACT_REQUESTS_BY_PROVIDER`); its own tests stay
beside them.
"""

import uuid
from collections.abc import Iterator

import pytest
import requests
from google.cloud import firestore

from shared.adapters.webhook import body_limit
from shared.core import records
from shared.core.config import Env
from shared.core.events import payload_key
from shared.providers import REGISTRY, named
from tests.integration.conftest import PROCESSING_TIMEOUT, Spy, recorded_receipts
from tools.local.procs import ManagedProcess, free_port
from tools.local.stack import LocalStack
from tools.payloads import CONTRACT_REQUESTS_BY_PROVIDER
from tools.payloads.contract import ContractRequests, WebhookRequest
from tools.topology import WEBHOOK

pytestmark = pytest.mark.integration

PROVIDERS = [pytest.param(CONTRACT_REQUESTS_BY_PROVIDER[p.name], id=p.name) for p in REGISTRY]


def post(base_url: str, request: WebhookRequest) -> requests.Response:
    return requests.post(
        base_url + request.path, data=request.body, headers=dict(request.headers), timeout=30
    )


def published(spy: Spy, platform: ContractRequests, *bodies: bytes) -> list[dict[str, object]]:
    """What reached the topics for one of these bodies (published as the provider publishes
    it, or not at all)."""
    spy.drain()
    forms = [platform.published(body) for body in bodies]
    return [m for m in spy.seen if m["data"] in forms]


@pytest.fixture(scope="module")
def webhook_without_pubsub(stack: LocalStack) -> Iterator[str]:
    """A second webhook whose Pub/Sub never answers, with no provider spooling."""
    port = free_port()
    process: ManagedProcess = stack.function_process(
        WEBHOOK,
        port,
        {
            "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{free_port()}",
            "SPOOL_PROVIDERS": "",
            "PUBLISH_TIMEOUT_SECONDS": "0.5",
        },
    )
    process.start(f"http://127.0.0.1:{port}/")
    yield f"http://127.0.0.1:{port}"
    process.stop()


@pytest.mark.parametrize("platform", PROVIDERS)
def test_a_forged_or_missing_credential_is_refused_and_nothing_published(
    stack: LocalStack, spy: Spy, platform: ContractRequests
) -> None:
    env = stack.function_environment()
    tag = uuid.uuid4().hex[:12]
    genuine = platform.receipt(env, tag).request
    for request in (platform.forged(env, genuine), platform.unauthenticated(env, genuine)):
        response = post(stack.webhook_url, request)
        assert response.status_code in (401, 403), response.text
    assert published(spy, platform, genuine.body) == []


@pytest.mark.parametrize("platform", PROVIDERS)
def test_an_oversized_or_malformed_body_is_a_clear_4xx_and_nothing_published(
    stack: LocalStack, spy: Spy, platform: ContractRequests
) -> None:
    env = stack.function_environment()
    provider = named(platform.name)
    assert provider is not None
    limit = body_limit(provider, Env(env))  # its own bound, or the test stack's lower one
    tag = uuid.uuid4().hex[:12]
    genuine = platform.receipt(env, tag).request
    oversized = WebhookRequest(genuine.path, genuine.body + b" " * limit, genuine.headers)
    response = post(stack.webhook_url, oversized)
    assert response.status_code == 413
    assert str(limit) in response.json()["error"]
    malformed = platform.malformed(env)
    if malformed is not None:
        response = post(stack.webhook_url, malformed)
        assert response.status_code == 400
        assert response.json()  # a JSON answer that says what is wrong
    assert published(spy, platform, genuine.body, oversized.body) == []


@pytest.mark.parametrize("platform", PROVIDERS)
def test_an_accepted_request_is_acknowledged_only_once_pubsub_confirmed_it(
    stack: LocalStack, spy: Spy, webhook_without_pubsub: str, platform: ContractRequests
) -> None:
    env = stack.function_environment()
    unconfirmed = platform.receipt(env, uuid.uuid4().hex[:12]).request
    response = post(webhook_without_pubsub, unconfirmed)
    assert response.status_code == 503, response.text
    sample = platform.receipt(env, uuid.uuid4().hex[:12]).request
    accepted = post(stack.webhook_url, sample)
    assert accepted.status_code == 200, accepted.text
    [message] = published(spy, platform, sample.body)
    assert message["messageId"] == accepted.json()["messageId"]
    assert message["attributes"]["provider"] == platform.name  # type: ignore[index]


@pytest.mark.parametrize("platform", PROVIDERS)
def test_a_duplicate_payload_leaves_one_record(
    stack: LocalStack, db: firestore.Client, platform: ContractRequests
) -> None:
    sample = platform.receipt(stack.function_environment(), uuid.uuid4().hex[:12])
    deliveries = []
    for _ in range(2):
        response = post(stack.webhook_url, sample.request)
        assert response.status_code == 200, response.text
        deliveries.append(
            (response.json()["messageId"], payload_key(platform.published(sample.request.body)))
        )
    found = stack.logged_for("record_events", "event recorded", deliveries, PROCESSING_TIMEOUT)
    writes = sorted(found[delivery]["writes"] for delivery in deliveries)
    assert writes[0] == 0 < writes[1]  # whichever came second changed nothing
    path = records.message_path(sample.conversation_id, sample.message_id)
    message = db.document(path).get().to_dict()
    assert message is not None
    assert message["provider"] == platform.name
    assert message["status"]
    assert len(recorded_receipts(db, sample.conversation_id)) == 1
