"""`make demo` plays its conversation through the stack and shows what landed."""

import contextlib
import json
import re
import uuid
import warnings
from datetime import date
from typing import Any

import pytest
from google.cloud import firestore
from google.cloud.pubsub_v1 import SubscriberClient

from shared.core import changes, records
from tests.change_consumer import validate
from tests.integration.conftest import DemoRun, documents
from tools.local import demo
from tools.local.history import simulate
from tools.local.procs import wait_until
from tools.local.stack import LocalStack

# One worker of `make test` runs the group: it shares one play of the demo.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("demo")]


def test_the_demo_conversation_lands_as_shown(demo_run: DemoRun) -> None:
    shown = demo_run.shown
    assert "-> 200 'demo-secret'" in shown
    assert "a request signed with the wrong key                  -> 401" in shown
    assert "receipts: 6 unique" in shown
    parked = "parked: REJECTED_RECEIPT: 1 of 2 elements set aside: 1x receiptType is "
    assert parked + "RECEIPT_TYPE_UNSPECIFIED" in shown
    assert shown.count("/receipt -> 200") == 2
    rows = [line.split() for line in shown.splitlines() if line.startswith("  agent-")]
    # Pub/Sub does not keep order: the rows follow processing, so compare them as a set.
    assert sorted((row[0], row[2]) for row in rows) == [
        ("agent-1", "READ"),
        ("agent-2", "READ"),
        ("agent-3", "READ"),
    ]
    # The RCS Business Messaging part of the demo.
    assert "a request signed with the wrong client token         -> 401" in shown
    assert "user is typing: acknowledged, not stored             -> 200" in shown
    rbm_rows = [line.split() for line in shown.splitlines() if line.startswith("  reply-")]
    assert [row[2] for row in rbm_rows] == ["READ"]
    events = [line for line in shown.splitlines() if "/agentEvents READ" in line]
    assert len(events) == 2  # one READ per user message, however often Google redelivers
    assert all(line.endswith("-> 200") for line in events)
    # The Chat App part of the demo.
    assert "a push with a wrong callback token                   -> 401" in shown
    assert "1 set aside with the reason (element 1: From, To missing)" in shown
    assert "receipts: 6 unique (MessageId, Status) pairs" in shown
    assert "(en_US): pass   history: fail -> pass" in shown
    chatapp_rows = {
        line.split()[0]: line.split() for line in shown.splitlines() if line.startswith("  wa-")
    }
    assert chatapp_rows["wa-1"][2] == "Read"
    assert (chatapp_rows["wa-2"][2], chatapp_rows["wa-2"][-1]) == ("Failed", "131026")
    # The Chat App SMQ part: enqueued in the stand-in, pulled by the scheduled puller.
    assert "receipts: 3 unique (the repeated Delivered collapsed)" in shown
    assert re.search(r"queue ChatAppStatus +deleted \d+, left 0", shown)
    # The simulated week for `make report`.
    assert "A simulated week for `make report`: 7 days before" in shown
    assert re.search(r"recorded [1-9]\d+ agent messages", shown)


def test_the_simulated_week_publishes_what_it_records(
    stack: LocalStack, db: firestore.Client
) -> None:
    """One simulated day: the change stream tells what Firestore holds (and `make report`
    counts): each receipt, user message and settled READ once, every event valid."""
    target = demo.Target.of(stack)
    subscriber = SubscriberClient()
    project, topic = stack.settings.project, stack.settings.changes_topic
    path = subscriber.subscription_path(project, f"demo-week-{uuid.uuid4().hex[:8]}")
    subscriber.create_subscription(name=path, topic=subscriber.topic_path(project, topic))
    agent_messages = simulate(db, DAY, target.change_stream(), days=1)
    events: dict[str, dict[str, Any]] = {}  # by id: a redelivered one is the same event

    def published() -> dict[str, set[tuple[str, ...]]]:
        for event in _pull(subscriber, path):
            validate(event)
            events[event["id"]] = event
        by_type: dict[str, set[tuple[str, ...]]] = {t: set() for t in STORED}
        for event in events.values():
            by_type[event["type"]].add(_key(event))
        return by_type

    def every_agent_message_reported() -> bool:
        return len({key[:2] for key in published()[changes.MESSAGE_STATUS]}) == agent_messages

    try:
        # Each conversation of the day has an agent message: the stream then named them all.
        wait_until(every_agent_message_reported, 60, "an event for each simulated agent message")
        stored = _stored(db, {key[0] for keys in published().values() for key in keys})
        with contextlib.suppress(TimeoutError):  # the assertion below shows the difference
            wait_until(lambda: published() == stored, 60, "an event for each recorded change")
        assert published() == stored
    finally:
        subscriber.delete_subscription(subscription=path)
    assert all(stored.values())


DAY = date(2025, 6, 11)  # the simulated day is the one before: no other test's
STORED = (changes.MESSAGE_STATUS, changes.MESSAGE_RECEIVED, changes.AGENT_READ_SETTLED)


def _stored(db: firestore.Client, conversations: set[str]) -> dict[str, set[tuple[str, ...]]]:
    """Each receipt, user message and final READ recorded in these conversations."""
    stored = {
        cid: documents(db.collection(f"conversations/{cid}/messages")) for cid in conversations
    }
    return {
        changes.MESSAGE_STATUS: {
            (cid, *key.split("~"))
            for cid, messages in stored.items()
            for key in records.receipts_of(messages)
        },
        changes.MESSAGE_RECEIVED: {
            (cid, m)
            for cid, ms in stored.items()
            for m, d in ms.items()
            if d.get("direction") == "USER"
        },
        changes.AGENT_READ_SETTLED: {
            (cid, m)
            for cid, ms in stored.items()
            for m, d in ms.items()
            if d.get("agentReadReceipt", {}).get("state") in ("SENT", "FAILED")
        },
    }


def _key(event: dict[str, Any]) -> tuple[str, ...]:
    data = event["data"]
    status = (data["status"],) if event["type"] == changes.MESSAGE_STATUS else ()
    return (data["conversationId"], data["messageId"], *status)


def _pull(subscriber: SubscriberClient, path: str) -> list[dict[str, Any]]:
    with warnings.catch_warnings():  # deprecated for production pulls; a test's drain
        warnings.simplefilter("ignore", DeprecationWarning)
        response = subscriber.pull(
            subscription=path, max_messages=1000, timeout=10, return_immediately=True
        )
    if response.received_messages:
        ack_ids = [m.ack_id for m in response.received_messages]
        subscriber.acknowledge(subscription=path, ack_ids=ack_ids)
    return [json.loads(m.message.data) for m in response.received_messages]
