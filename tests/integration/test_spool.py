"""Pub/Sub unavailable: Chat App events go to the Firestore spool (a database of its own),
are acknowledged, and are republished by the drainer once Pub/Sub is back; persisted once,
none lost. An outage, however long, parks nothing; an event that can never be published is
parked after SPOOL_MAX_ATTEMPTS failures of its own and holds up no event behind it.

The Pub/Sub emulator is frozen (SIGSTOP) rather than stopped: it keeps its state, as Pub/Sub
would, so anything lost here is the product's doing, not the emulator's.
"""

import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from google.cloud import firestore

from shared.adapters.spool import FirestoreSpool
from shared.core.spool import UNPUBLISHABLE
from shared.providers.chatapp import STATUS
from shared.providers.chatapp.normalise import conversation_id as chatapp_conversation
from tests.integration.conftest import (
    PROCESSING_TIMEOUT,
    SPOOL_MAX_ATTEMPTS,
    documents,
    recorded_receipts,
    send,
)
from tests.python_process import run_python
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
    return recorded_receipts(db, chatapp_conversation(ca.BUSINESS, user))


def spool_holds(spool_db: firestore.Client, user: str) -> bool:
    return any(
        user.encode() in (d.get("data") or b"")
        for d in documents(spool_db.collection("spool")).values()
    )


def parked_of(spool_db: firestore.Client, user: str) -> dict[str, dict[str, Any]]:
    """What the drainer parked of this user's events (always in the spool's database)."""
    return {
        parked_id: d
        for parked_id, d in documents(spool_db.collection("parked")).items()
        if user.encode() in (d.get("rawBody") or b"")
    }


def test_while_pubsub_is_down_chatapp_is_spooled_and_drained_once_back(
    stack: LocalStack, db: firestore.Client, spool_db: firestore.Client
) -> None:
    user = "86139" + str(uuid.uuid4().int)[:8]
    batch = ca.encode([ca.status("m1", "Sent", user), ca.status("m1", "Delivered", user)])
    stack.pubsub.freeze()
    try:
        answer = ca.push(stack.chatapp_url("status"), batch)
        refused = send(stack, bm.encode(bm.receipts("bm-during-outage", ("a1", "READ"))))
        assert spool_holds(spool_db, user)
        assert not spool_holds(db, user)  # the spool has a database of its own
    finally:
        stack.pubsub.thaw()
    assert (answer.status_code, answer.json()["code"]) == (200, 0)  # Alibaba need not push again
    assert "spoolId" in answer.json()
    assert refused.status_code == 503  # Business Messages is not spooled: Google retries 7 days
    wait_until(lambda: len(receipts_of(db, user)) == 2, PROCESSING_TIMEOUT, "the drainer")
    wait_until(lambda: not spool_holds(spool_db, user), PROCESSING_TIMEOUT, "the spool to empty")
    assert set(receipts_of(db, user)) == {"m1~Sent", "m1~Delivered"}


def test_a_stream_through_an_outage_loses_nothing_and_doubles_nothing(
    stack: LocalStack, db: firestore.Client, spool_db: firestore.Client
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
    wait_until(lambda: not spool_holds(spool_db, user), PROCESSING_TIMEOUT, "the spool to empty")
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
        url = f"http://127.0.0.1:{port}/chatapp/status/{stack.settings.secret('CHATAPP_CALLBACK_TOKENS')}"
        answer = ca.push(url, ca.encode([ca.status("m1", "Sent", "8613900000009")]))
    finally:
        process.stop()
    assert answer.status_code == 503
    assert answer.json()["code"] == 503  # Alibaba will push again


def test_an_outage_parks_nothing_however_many_drains_it_lasts(
    stack: LocalStack, db: firestore.Client, spool_db: firestore.Client
) -> None:
    """Every drain during the outage fails to publish: none of those failures is the
    event's, so none counts towards SPOOL_MAX_ATTEMPTS."""
    user = "86139" + str(uuid.uuid4().int)[:8]
    since = len(stack.log_entries("drain_spool"))

    def drains_that_reached_no_pubsub() -> int:
        return sum(
            1
            for entry in stack.log_entries("drain_spool")[since:]
            if entry.get("message") == "spool drained"
            and entry.get("error")
            and entry.get("republished") == 0
        )

    stack.pubsub.freeze()
    try:
        answer = ca.push(stack.chatapp_url("status"), ca.encode([ca.status("m1", "Sent", user)]))
        assert "spoolId" in answer.json()
        wait_until(
            lambda: drains_that_reached_no_pubsub() > SPOOL_MAX_ATTEMPTS,
            PROCESSING_TIMEOUT,
            f"more than {SPOOL_MAX_ATTEMPTS} drains during the outage",
        )
        assert spool_holds(spool_db, user)
        assert parked_of(spool_db, user) == {}
    finally:
        stack.pubsub.thaw()
    wait_until(lambda: "m1~Sent" in receipts_of(db, user), PROCESSING_TIMEOUT, "the drainer")
    wait_until(lambda: not spool_holds(spool_db, user), PROCESSING_TIMEOUT, "the spool to empty")
    assert parked_of(spool_db, user) == {}


def test_an_event_that_can_never_be_published_is_parked_and_holds_up_none_behind_it(
    stack: LocalStack, db: firestore.Client, spool_db: firestore.Client
) -> None:
    """Poison events at the head of the spool: a topic key no topic has, no body, an
    attribute that is not a string. Before the fix, the drainer stopped at the first one on
    every run, and the event behind it was never published."""
    user = "86139" + str(uuid.uuid4().int)[:8]
    attributes = {"provider": "chatapp", "kind": STATUS}
    unknown_topic = ca.encode([ca.status("p1", "Sent", user)])
    # ids older than anything spooled: the head of the spool
    poison: dict[str, tuple[dict[str, Any], str]] = {
        f"20000101T000000000001-{user}": (
            {"data": unknown_topic, "topicKey": "no-such-topic", "attributes": attributes},
            "unknown topic key 'no-such-topic'",
        ),
        f"20000101T000000000002-{user}": (
            {"topicKey": "events", "attributes": {**attributes, "user": user}},
            "no body to publish",
        ),
        f"20000101T000000000003-{user}": (
            {
                "data": ca.encode([ca.status("p3", "Sent", user)]),
                "topicKey": "events",
                "attributes": {**attributes, "events": 1},
            },
            "attributes must map strings to strings",
        ),
    }
    for spool_id, (fields, _) in poison.items():
        spool_db.collection("spool").document(spool_id).create(
            {**fields, "receivedTime": firestore.SERVER_TIMESTAMP}
        )
    behind = ca.encode([ca.status("m1", "Sent", user)])
    FirestoreSpool(spool_db).add(behind, "events", attributes)

    wait_until(lambda: "m1~Sent" in receipts_of(db, user), PROCESSING_TIMEOUT, "the event behind")

    def all_parked() -> dict[str, dict[str, Any]] | None:
        parked = {
            spool_id: d
            for spool_id in poison
            if (d := spool_db.document(f"parked/{spool_id}").get().to_dict())
        }
        return parked if len(parked) == len(poison) else None

    parked = wait_until(all_parked, PROCESSING_TIMEOUT, "every poison event parked")
    assert isinstance(parked, dict)
    for spool_id, (fields, reason) in poison.items():
        document = parked[spool_id]
        assert document["category"] == UNPUBLISHABLE
        assert document["error"] == reason
        assert document["attempts"] == SPOOL_MAX_ATTEMPTS
        assert document["reason"] == f"not published after {SPOOL_MAX_ATTEMPTS} attempts: {reason}"
        assert document["rawBody"] == fields.get("data", b"")
        assert document["rawBodyBytes"] == len(fields.get("data", b""))
        assert (document["topicKey"], document["attributes"]) == (
            fields["topicKey"],
            fields["attributes"],
        )
        assert document["spoolId"] == spool_id
        assert not spool_db.document(f"spool/{spool_id}").get().exists  # moved, not copied
        assert not db.document(f"parked/{spool_id}").get().exists  # the drainer has no main db
    assert not spool_holds(spool_db, user)

    # The operator sees it, and re-drives the one with a usable body: replay routes it by its
    # provider and kind, not by the topic key that could not be published.
    environment = {**os.environ, **stack.client_environment()}
    listed = run_python(["-m", "shared.ops.replay", "list"], environment)
    assert listed.returncode == 0, listed.stderr
    unknown_topic_id = next(iter(poison))
    [line] = [line for line in listed.stdout.splitlines() if unknown_topic_id in line]
    assert line.split()[:4] == [unknown_topic_id, "spool", UNPUBLISHABLE, "whole"]
    redriven = run_python(
        ["-m", "shared.ops.replay", "redrive", "parked", unknown_topic_id], environment
    )
    assert redriven.returncode == 0, redriven.stderr
    wait_until(
        lambda: "p1~Sent" in receipts_of(db, user), PROCESSING_TIMEOUT, "the re-driven event"
    )
