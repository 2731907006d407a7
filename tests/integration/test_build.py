"""`make build`'s bundles are complete: each serves a real request with nothing but itself."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from google.cloud import firestore

from tests.integration.conftest import recorded, recorded_receipts
from tools.deploy import bundle as build
from tools.local.procs import free_port, wait_until
from tools.local.stack import LocalStack, pubsub_push
from tools.payloads import bm as bm
from tools.payloads import chatapp as ca
from tools.standins.alibaba import AlibabaStandIn
from tools.standins.bm_api import BusinessMessagesStandIn
from tools.topology import AGENT_READ_RECEIPTS, PULL_QUEUES, RECORD_EVENTS, WEBHOOK, Function

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("build")
    for function in (WEBHOOK, RECORD_EVENTS, AGENT_READ_RECEIPTS, PULL_QUEUES):
        build.bundle(function, out)
    return out


@pytest.fixture
def serve(stack: LocalStack, bundles: Path) -> Iterator[Any]:
    started = []

    def start(function: Function, **environment: str) -> str:
        port = free_port()
        # No PYTHONPATH: `shared` must come from the bundle itself.
        process = stack.function_process(
            function,
            port,
            {"PYTHONPATH": "", **environment},
            source=bundles / function.name / "main.py",
        )
        started.append(process)
        process.start(f"http://127.0.0.1:{port}/")
        return f"http://127.0.0.1:{port}"

    yield start
    for process in started:
        process.stop()


def test_a_bundle_holds_the_function_shared_and_pinned_requirements(bundles: Path) -> None:
    parts = [
        (WEBHOOK, "webhook"),
        (RECORD_EVENTS, "normalise"),
        (AGENT_READ_RECEIPTS, "read_receipts"),
    ]
    for function, part in parts:
        bundle = bundles / function.name
        assert (bundle / "main.py").exists()
        assert (bundle / "shared" / "providers" / "bm" / f"{part}.py").exists()
        assert "-c constraints.txt" in (bundle / "requirements.txt").read_text()
        assert "functions-framework==" in (bundle / "constraints.txt").read_text()
        assert not list(bundle.rglob("__pycache__"))


def test_the_webhook_bundle_answers_and_publishes(
    stack: LocalStack, db: firestore.Client, serve: Any
) -> None:
    url = serve(WEBHOOK)
    handshake = {"clientToken": stack.client_token, "secret": "bundle-secret"}
    assert requests.post(url, json=handshake, timeout=10).text == "bundle-secret"
    cid = "bundle-webhook"
    body = bm.encode(bm.receipts(cid, ("a1", "READ")))
    response = bm.post_signed(url, body, stack.signing_key)
    recorded(stack, response)
    assert "a1~READ" in recorded_receipts(db, cid)


def test_the_recorder_bundle_persists_a_push(
    stack: LocalStack, db: firestore.Client, serve: Any
) -> None:
    url = serve(RECORD_EVENTS)
    body = bm.encode(bm.receipts("bundle-recorder", ("a1", "DELIVERED")))
    push = pubsub_push(body, {"provider": "bm", "kind": "receipts"})
    assert requests.post(url, json=push, timeout=30).status_code == 200
    assert "a1~DELIVERED" in recorded_receipts(db, "bundle-recorder")


def test_the_read_receipt_bundle_sends_one(
    stack: LocalStack, serve: Any, standin: BusinessMessagesStandIn
) -> None:
    url = serve(AGENT_READ_RECEIPTS)
    body = bm.encode(bm.user_text("bundle-reader", "u-bundle", "hello"))
    push = pubsub_push(body, {"provider": "bm", "kind": "message"})
    assert requests.post(url, json=push, timeout=60).status_code == 200
    wait_until(lambda: standin.calls_for("u-bundle"), 30, "the READ receipt")
    assert [
        c.status for c in standin.calls_for("u-bundle") if c.conversation_id == "bundle-reader"
    ] == [200]


def test_the_queue_puller_bundle_pulls_a_queue(serve: Any) -> None:
    alibaba = AlibabaStandIn().start()
    try:
        alibaba.enqueue("ChatAppInbound", ca.inbound_text("bundle-mo", "8613900009999", "hi"))
        url = serve(
            PULL_QUEUES,
            CHATAPP_SMQ_QUEUES=f"ChatAppInbound={alibaba.queue_name('ChatAppInbound')}",
            CHATAPP_SMQ_ENDPOINT=alibaba.endpoint,
            CHATAPP_SMQ_TOKEN_ENDPOINT=alibaba.endpoint,
            ALIBABA_CLOUD_ACCESS_KEY_ID=alibaba.access_key_id,
            ALIBABA_CLOUD_ACCESS_KEY_SECRET=alibaba.access_key_secret,
            RUN_PERIOD_SECONDS="2",
        )
        answer = requests.post(url, timeout=60)  # a run of 2 s, less its hand-over
        assert answer.status_code == 200, answer.text
        assert (answer.json()["received"], answer.json()["deleted"]) == (1, 1)
    finally:
        alibaba.stop()


def test_a_bundle_without_shared_cannot_start(
    stack: LocalStack, bundles: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "webhook"
    broken.mkdir()
    (broken / "main.py").write_text((bundles / "webhook" / "main.py").read_text())
    port = free_port()
    process = stack.function_process(WEBHOOK, port, {"PYTHONPATH": ""}, source=broken / "main.py")
    with pytest.raises(RuntimeError, match="No module named 'shared'"):
        process.start(f"http://127.0.0.1:{port}/", timeout=30)
    process.stop()
