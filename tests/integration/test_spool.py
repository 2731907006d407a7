"""Pub/Sub unavailable: Chat App events go to the Firestore spool, are acknowledged, and
are republished by the drainer once Pub/Sub is back; persisted once, none lost.

The Pub/Sub emulator is frozen (SIGSTOP) rather than stopped: it keeps its state, as Pub/Sub
would, so anything lost here is the product's doing, not the emulator's.
"""

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from google.cloud import firestore

from shared.providers.chatapp.normalise import conversation_id as chatapp_conversation
from tests.integration.conftest import PROCESSING_TIMEOUT, documents, send
from tools.local.procs import free_port, wait_until
from tools.local.stack import LocalStack
from tools.payloads import bm as bm
from tools.payloads import chatapp as ca
from tools.topology import WEBHOOK

pytestmark = pytest.mark.integration


@pytest.fixture
def pubsub_frozen(stack: LocalStack) -> Iterator[None]:
    stack.pubsub.freeze()
    try:
        yield
    finally:
        stack.pubsub.thaw()


def receipts_of(db: firestore.Client, user: str) -> dict[str, Any]:
    cid = chatapp_conversation(ca.BUSINESS, user)
    return documents(db.collection(f"conversations/{cid}/receipts"))


def spool_holds(db: firestore.Client, user: str) -> bool:
    return any(
        user.encode() in (d.get("data") or b"") for d in documents(db.collection("spool")).values()
    )


def test_while_pubsub_is_down_chatapp_is_spooled_and_drained_once_back(
    stack: LocalStack, db: firestore.Client
) -> None:
    user = "86139" + str(uuid.uuid4().int)[:8]
    batch = ca.encode([ca.status("m1", "Sent", user), ca.status("m1", "Delivered", user)])
    stack.pubsub.freeze()
    try:
        answer = ca.push(stack.chatapp_url("status"), batch)
        refused = send(stack, bm.encode(bm.receipts("bm-during-outage", ("a1", "READ"))))
        assert spool_holds(db, user)
    finally:
        stack.pubsub.thaw()
    assert (answer.status_code, answer.json()["code"]) == (200, 0)  # Alibaba need not push again
    assert "spoolId" in answer.json()
    assert refused.status_code == 503  # Business Messages is not spooled: Google retries 7 days
    wait_until(lambda: len(receipts_of(db, user)) == 2, PROCESSING_TIMEOUT, "the drainer")
    wait_until(lambda: not spool_holds(db, user), PROCESSING_TIMEOUT, "the spool to empty")
    assert set(receipts_of(db, user)) == {"m1~Sent", "m1~Delivered"}


def test_a_stream_through_an_outage_loses_nothing_and_doubles_nothing(
    stack: LocalStack, db: firestore.Client
) -> None:
    """Fault scenario 1: Pub/Sub stops answering in the middle of a stream of pushes."""
    user = "86139" + str(uuid.uuid4().int)[:8]
    sent, acknowledged, spooled = 40, [], []
    outage_started, outage_over = threading.Event(), threading.Event()
    session = requests.Session()

    def push(index: int) -> None:
        answer = ca.push(
            stack.chatapp_url("status"), ca.encode([ca.status(f"m{index}", "Sent", user)]), session
        )
        if answer.status_code == 200 and answer.json()["code"] == 0:
            acknowledged.append(index)
            if "spoolId" in answer.json():
                spooled.append(index)

    for index in range(sent):
        if index == 10:
            stack.pubsub.freeze()
            outage_started.set()
        if index == 25:
            stack.pubsub.thaw()
            outage_over.set()
        push(index)
    assert outage_started.is_set()
    assert outage_over.is_set()

    expected = {f"m{i}~Sent" for i in acknowledged}
    wait_until(
        lambda: set(receipts_of(db, user)) >= expected,
        PROCESSING_TIMEOUT,
        "every acknowledged event",
    )
    wait_until(lambda: not spool_holds(db, user), PROCESSING_TIMEOUT, "the spool to empty")
    persisted = receipts_of(db, user)
    lost = expected - set(persisted)
    assert len(acknowledged) == sent  # nothing refused: the spool took what Pub/Sub could not
    assert len(spooled) >= 10  # the outage was real and the spool carried it
    assert lost == set()
    assert set(persisted) == expected  # one receipt per event: nothing doubled
    print(f"\nstream: sent {sent}, acknowledged {len(acknowledged)}, spooled {len(spooled)}, "
          f"persisted {len(persisted)}, lost {len(lost)}, duplicated 0")  # fmt: skip


def test_with_both_pubsub_and_the_spool_down_the_webhook_refuses(stack: LocalStack) -> None:
    port = free_port()
    dead = f"127.0.0.1:{free_port()}"
    broken = {"PUBSUB_EMULATOR_HOST": dead, "FIRESTORE_EMULATOR_HOST": dead}
    process = stack.function_process(WEBHOOK, port, broken)
    process.start(f"http://127.0.0.1:{port}/")
    try:
        url = f"http://127.0.0.1:{port}/chatapp/status/{stack.settings.chatapp_tokens}"
        answer = ca.push(url, ca.encode([ca.status("m1", "Sent", "8613900000009")]))
    finally:
        process.stop()
    assert answer.status_code == 503
    assert answer.json()["code"] == 503  # Alibaba will push again
