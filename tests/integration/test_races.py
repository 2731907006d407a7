"""Idempotency across instances: the same delivery at the same moment on two processes, and
a READ-receipt attempt killed between claiming and sending."""

import contextlib
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from google.cloud import firestore

from tests.integration.conftest import PROCESSING_TIMEOUT, recorded_receipts
from tools.local.procs import ManagedProcess, free_port, wait_until
from tools.local.stack import LocalStack, pubsub_push
from tools.payloads import bm as bm
from tools.standins.bm_api import BusinessMessagesStandIn
from tools.topology import AGENT_READ_RECEIPTS, RECORD_EVENTS, Function

pytestmark = pytest.mark.integration
LEASE_SECONDS = 25  # the shortest lease the configuration accepts with a 2 s retry window


@pytest.fixture
def instances(stack: LocalStack) -> Iterator[Any]:
    started: list[ManagedProcess] = []

    def start(function: Function, **overrides: str) -> tuple[ManagedProcess, str]:
        port = free_port()
        process = stack.function_process(function, port, overrides)
        process.start(f"http://127.0.0.1:{port}/")
        started.append(process)
        return process, f"http://127.0.0.1:{port}/"

    yield start
    for process in started:
        process.stop()


def push_to_all(urls: list[str], body: bytes, kind: str) -> list[int]:
    """The same Pub/Sub message, pushed to every instance at the same moment."""
    push = pubsub_push(body, {"provider": "bm", "kind": kind}, message_id=uuid.uuid4().hex)
    barrier = threading.Barrier(len(urls))

    def post(url: str) -> int:
        barrier.wait()
        return requests.post(url, json=push, timeout=60).status_code

    with ThreadPoolExecutor(max_workers=len(urls)) as pool:
        return list(pool.map(post, urls))


def test_two_recorders_given_the_same_delivery_at_once_record_it_once(
    stack: LocalStack, db: firestore.Client, instances: Any
) -> None:
    urls = [instances(RECORD_EVENTS)[1] for _ in range(2)] + [f"{stack.url(RECORD_EVENTS.target)}/"]
    for round_ in range(10):
        cid = f"race-{uuid.uuid4().hex[:8]}"
        body = bm.encode(bm.receipts(cid, ("a1", "DELIVERED"), ("a2", "READ")))
        assert push_to_all(urls, body, "receipts") == [200, 200, 200], round_
        assert set(recorded_receipts(db, cid)) == {
            "a1~DELIVERED",
            "a2~READ",
        }


def test_two_senders_given_the_same_message_at_once_send_one_read_receipt(
    stack: LocalStack, db: firestore.Client, standin: BusinessMessagesStandIn, instances: Any
) -> None:
    urls = [instances(AGENT_READ_RECEIPTS)[1], f"{stack.url(AGENT_READ_RECEIPTS.target)}/"]
    for _ in range(10):
        cid, message_id = f"race-{uuid.uuid4().hex[:8]}", f"u-{uuid.uuid4().hex[:8]}"
        statuses = push_to_all(urls, bm.encode(bm.user_text(cid, message_id, "hi")), "message")
        # One sends; the other finds the claim held and asks Pub/Sub to redeliver (500).
        assert sorted(statuses) in ([200, 200], [200, 500])
        assert [c.status for c in standin.calls_for(message_id)] == [200]


def test_a_read_receipt_attempt_killed_mid_call_is_sent_later_exactly_once(
    stack: LocalStack, db: firestore.Client, standin: BusinessMessagesStandIn, instances: Any
) -> None:
    cid, message_id = f"crash-{uuid.uuid4().hex[:8]}", f"u-{uuid.uuid4().hex[:8]}"
    body = bm.encode(bm.user_text(cid, message_id, "hi"))
    push = pubsub_push(body, {"provider": "bm", "kind": "message"})
    standin.stall(message_id, 20)  # the API hangs; the process dies while it waits
    doomed, doomed_url = instances(
        AGENT_READ_RECEIPTS, READ_RECEIPT_LEASE_SECONDS=str(LEASE_SECONDS)
    )

    def doomed_delivery() -> None:  # its connection dies with the process
        with contextlib.suppress(requests.RequestException):
            requests.post(doomed_url, json=push, timeout=60)

    threading.Thread(target=doomed_delivery, daemon=True).start()
    ref = db.document(f"conversations/{cid}/messages/{message_id}")

    def claimed() -> bool:
        return bool(
            (ref.get().to_dict() or {}).get("agentReadReceipt", {}).get("state") == "PENDING"
        )

    wait_until(claimed, 30, "the doomed attempt to claim the message")
    doomed.kill()

    def redelivered_until_sent() -> bool:  # what Pub/Sub does after the failed delivery
        requests.post(f"{stack.url(AGENT_READ_RECEIPTS.target)}/", json=push, timeout=60)
        return bool((ref.get().to_dict() or {}).get("agentReadReceipt", {}).get("state") == "SENT")

    wait_until(
        redelivered_until_sent,
        LEASE_SECONDS + PROCESSING_TIMEOUT,
        "the retry after the lease",
        interval=2,
    )
    wait_until(lambda: len(standin.calls_for(message_id)) == 2, 30, "the hung call to end")
    assert sorted(c.status for c in standin.calls_for(message_id)) == [200, 503]  # one accepted
