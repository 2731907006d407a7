"""The change stream through the real stack: every change the demo's conversations (every
provider) and its simulated week commit reaches a consumer's push endpoint, valid against
the schema, once per id, orderable per message; and a recorder killed between its commit
and its publish loses nothing."""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from google.cloud import firestore
from google.cloud.pubsub_v1 import SubscriberClient

from shared import providers
from shared.core import changes, records
from shared.core.changes import change_id
from shared.core.read_receipts import FAILED, FIELD, SENT
from shared.core.records import RECEIPTS
from shared.providers.rbm.normalise import conversation_id
from tests.change_consumer import ChangeConsumer, validate
from tests.integration.conftest import PROCESSING_TIMEOUT, DemoRun, delivery
from tools.local.procs import free_port, wait_until
from tools.local.stack import LocalStack
from tools.payloads import rbm
from tools.topology import RECORD_EVENTS, SUBSCRIPTIONS

# One worker of `make test` runs the group: it shares one play of the demo.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("demo")]

SCALES = {p.name: p.scale for p in providers.REGISTRY}


def committed_changes(
    db: firestore.Client, since: datetime | None = None, until: datetime | None = None
) -> dict[str, str]:
    """The id of every change the documents hold (recorded between `since` and `until`), with
    what it is: what the stream must carry, derived from Firestore alone."""

    def within(document: dict[str, Any]) -> bool:
        recorded = document.get("recordTime")
        return since is None or (recorded is not None and since <= recorded <= (until or recorded))

    found: dict[str, str] = {}
    for snap in db.collection_group("messages").stream():
        message = snap.to_dict() or {}
        if not within(message) or "provider" not in message:
            continue  # only the READ sender's claim: the recorder has not written it yet
        provider, cid, mid = message["provider"], message["conversationId"], message["messageId"]
        for status in message.get(RECEIPTS) or {}:
            found[change_id(changes.MESSAGE_STATUS, provider, cid, mid, status)] = f"{mid} {status}"
        if "kind" in message and message.get("direction") == "USER":
            found[change_id(changes.MESSAGE_RECEIVED, provider, cid, mid)] = f"{mid} received"
        if (message.get(FIELD) or {}).get("state") in (SENT, FAILED):
            found[change_id(changes.AGENT_READ_SETTLED, provider, cid, mid)] = f"{mid} READ"
    for snap in db.collection("parked").stream():
        parked = snap.to_dict() or {}
        if "payloadKey" in parked and within(parked):
            key = parked["payloadKey"]
            found[change_id(changes.EVENT_PARKED, parked["provider"], key)] = f"{key} parked"
    for snap in db.collection_group("history").stream():
        review = snap.to_dict() or {}
        if "payloadKey" in review and within(review):
            found[change_id(changes.TEMPLATE_REVIEWED, review["provider"], snap.id)] = snap.id
    return found


def test_every_change_of_the_demo_arrives_valid_once_per_id_and_in_order_per_message(
    demo_run: DemoRun, consumer: ChangeConsumer, db: firestore.Client
) -> None:
    expected = committed_changes(db, demo_run.started, demo_run.finished)
    assert len(expected) > 1000  # the conversations of every provider and the simulated week

    def arrived() -> bool:
        return expected.keys() <= {event["id"] for event in consumer.events()}

    with contextlib.suppress(TimeoutError):
        wait_until(arrived, PROCESSING_TIMEOUT * 2, "every committed change at the consumer")
    pushed = consumer.pushed()
    arrived_ids = {each.event["id"] for each in pushed}
    missing = {expected[i] for i in expected.keys() - arrived_ids}
    assert not missing, f"{len(missing)} changes never arrived, e.g. {sorted(missing)[:5]}"

    # Only what was committed: every event names a change Firestore holds.
    assert arrived_ids <= committed_changes(db).keys()
    by_id: dict[str, dict[str, Any]] = {}
    providers_seen, types_seen = set(), set()
    for each in pushed:
        validate(each.event)
        # At least once: a redelivery may publish a change again, always as the same event.
        assert by_id.setdefault(each.event["id"], each.event) == each.event
        assert each.attributes["type"] == each.event["type"]
        providers_seen.add(each.attributes["provider"])
        types_seen.add(each.event["type"])
    assert providers_seen == set(SCALES)
    assert types_seen == {
        changes.MESSAGE_STATUS,
        changes.MESSAGE_RECEIVED,
        changes.AGENT_READ_SETTLED,
        changes.TEMPLATE_REVIEWED,
        changes.EVENT_PARKED,
    }

    # In order per message: applying a message's status events as they arrived, keeping the
    # highest statusRank, ends where the recorder's monotonic status did.
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for each in pushed:
        data = each.event["data"]
        if each.event["type"] != changes.MESSAGE_STATUS:
            continue
        key = (data["conversationId"], data["messageId"])
        if key not in latest or data["statusRank"] > latest[key]["statusRank"]:
            latest[key] = data
    checked = 0
    for (cid, mid), data in latest.items():
        document = _message(db, cid, mid)
        if data["statusRank"] > 0:  # a status outside the provider's scale leaves it as it was
            assert document["status"] == data["status"], (cid, mid)
            checked += 1
    assert checked > 500


def _message(db: firestore.Client, cid: str, mid: str) -> dict[str, Any]:
    return db.document(records.message_path(cid, mid)).get().to_dict() or {}


class BlackHole:
    """A TCP endpoint that accepts connections and never answers: a publish sent to it hangs."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._socket.getsockname()[1]}"

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = self._socket.accept()
                self.accepted.append(connection)

    def close(self) -> None:
        for connection in self.accepted:
            connection.close()
        self._socket.close()


@contextlib.contextmanager
def recorder_publishing_into(stack: LocalStack, hole: BlackHole) -> Iterator[Any]:
    """A second recorder whose publishes hang, fed by the recorder's push subscriptions until
    the block ends; then they push to the stack's own recorder again."""
    port = free_port()
    process = stack.function_process(
        RECORD_EVENTS,
        port,
        {"PUBSUB_EMULATOR_HOST": hole.host, "CHANGES_PUBLISH_TIMEOUT_SECONDS": "600"},
    )
    process.start(f"http://127.0.0.1:{port}/")
    subscriber = SubscriberClient()
    project = stack.settings.project
    paths = [
        subscriber.subscription_path(project, s.id)
        for s in SUBSCRIPTIONS
        if s.function == RECORD_EVENTS.target
    ]
    for path in paths:
        subscriber.modify_push_config(
            subscription=path, push_config={"push_endpoint": f"http://127.0.0.1:{port}/"}
        )
    try:
        yield process
    finally:
        endpoint = f"{stack.url(RECORD_EVENTS.target)}/"
        for path in paths:
            subscriber.modify_push_config(
                subscription=path, push_config={"push_endpoint": endpoint}
            )
        subscriber.close()
        process.stop()


def test_a_recorder_killed_between_its_commit_and_its_publish_loses_no_change(
    stack: LocalStack, consumer: ChangeConsumer, db: firestore.Client
) -> None:
    phone = "+4477008" + str(uuid.uuid4().int)[:5]
    cid = conversation_id(rbm.AGENT_ID, phone)
    reply, written = f"kill-reply-{uuid.uuid4().hex[:8]}", f"kill-user-{uuid.uuid4().hex[:8]}"
    status_id = change_id(changes.MESSAGE_STATUS, "rbm", cid, reply, "DELIVERED")
    received_id = change_id(changes.MESSAGE_RECEIVED, "rbm", cid, written)
    hole = BlackHole()
    try:
        with recorder_publishing_into(stack, hole) as doomed:
            for event in (
                rbm.user_event("DELIVERED", reply, phone=phone),
                rbm.text_message("Hello", phone=phone, message_id=written),
            ):
                body = rbm.encode(rbm.envelope(event))
                response = rbm.post_signed(stack.rbm_url, body, "local-rbm-client-token")
                assert response.status_code == 200, response.text
            # Both committed, and the recorder is publishing their changes: into the hole.
            wait_until(
                lambda: (
                    _message(db, cid, reply).get("deliveredTime") is not None
                    and "kind" in _message(db, cid, written)
                    and len(hole.accepted) > 0
                ),
                PROCESSING_TIMEOUT,
                "the commits, then the publish",
            )
            assert not {status_id, received_id} & {e["id"] for e in consumer.events()}
            doomed.kill()  # SIGKILL: no clean-up, no acknowledgement
        # Pub/Sub delivers again, now to the stack's recorder, which finds the changes
        # recorded by these same payloads and publishes them.
        wait_until(
            lambda: {status_id, received_id} <= {e["id"] for e in consumer.events()},
            PROCESSING_TIMEOUT * 2,
            "the changes, published by the redelivery",
        )
    finally:
        hole.close()
    arrived = {e["id"]: e for e in consumer.events() if e["id"] in (status_id, received_id)}
    for event in arrived.values():
        validate(event)
    assert arrived[status_id]["data"]["status"] == "DELIVERED"
    assert arrived[received_id]["data"]["kind"] == "message"
    # The platform's duplicate (another body, the same receipt) changes nothing: nothing new.
    before = len(consumer.events())
    again = rbm.user_event("DELIVERED", reply, phone=phone)
    duplicate = rbm.post_signed(
        stack.rbm_url, rbm.encode(rbm.envelope(again)), "local-rbm-client-token"
    )
    assert duplicate.status_code == 200
    [entry] = stack.logged_for(
        "record_events",
        "event recorded",
        [delivery(duplicate)],
        PROCESSING_TIMEOUT,
    ).values()
    assert (entry["changes"], entry["writes"]) == (0, 0)
    assert {e["id"] for e in consumer.events()[before:]} <= {status_id, received_id}
