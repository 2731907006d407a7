"""Fault scenario 4: a message that keeps failing reaches the dead-letter topic after the
configured attempts; once the cause is removed, `replay` re-drives it, and it is processed
exactly once."""

import os
import uuid

import pytest
from google.cloud import firestore
from google.cloud.pubsub_v1 import SubscriberClient

from shared.adapters.publisher import PubSubSettings
from shared.core.config import DEFAULT_DEAD_LETTER
from shared.ops.replay import Replay
from tests.integration.conftest import PROCESSING_TIMEOUT, delivery, send
from tests.python_process import run_python
from tools.local.procs import wait_until
from tools.local.stack import LocalStack
from tools.payloads import bm as bm
from tools.standins.bm_api import BusinessMessagesStandIn

pytestmark = pytest.mark.integration


@pytest.fixture
def replay(stack: LocalStack, db: firestore.Client, spool_db: firestore.Client) -> Replay:
    settings = stack.settings
    topics = {name.removesuffix("_TOPIC").lower(): topic for name, topic in settings.topics.items()}
    subscriber = SubscriberClient()
    return Replay(
        PubSubSettings(settings.project, topics, timeout=10).publisher(),
        subscriber,
        subscriber.subscription_path(settings.project, DEFAULT_DEAD_LETTER),
        db,
        spool_db,
    )


def test_a_poison_message_is_dead_lettered_then_replayed_once(
    stack: LocalStack, db: firestore.Client, standin: BusinessMessagesStandIn, replay: Replay
) -> None:
    cid, message_id = f"conv-{uuid.uuid4().hex[:8]}", f"u-{uuid.uuid4().hex[:8]}"
    standin.script(message_id, [503] * 10_000)  # the API is down for as long as it takes
    accepted = send(stack, bm.encode(bm.user_text(cid, message_id, "hello")))
    delivery(accepted)  # acknowledged to Google: never refused

    def dead_lettered() -> bool:
        return any(m.own_attributes.get("conversationId") == cid for m in replay.dead_letters())

    wait_until(dead_lettered, PROCESSING_TIMEOUT + 60, "the message on the dead-letter topic")
    [parked] = [m for m in replay.dead_letters() if m.own_attributes.get("conversationId") == cid]
    assert parked.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
    assert parked.data == accepted.request.body
    state = db.document(f"conversations/{cid}/messages/{message_id}").get().to_dict() or {}
    assert state["agentReadReceipt"]["state"] == "PENDING"  # not lost: waiting for a retry

    # The operator sees it, fixes the cause, and re-drives it.
    listed = run_python(
        ["-m", "shared.ops.replay", "list"], {**os.environ, **stack.client_environment()}
    )
    assert listed.returncode == 0, listed.stderr
    assert f"{parked.message_id}" in listed.stdout
    assert "failed 5 deliveries" in listed.stdout
    standin.heal(message_id)
    assert replay.redrive_dead_letters([parked.message_id]) == 1

    def sent() -> bool:
        document = db.document(f"conversations/{cid}/messages/{message_id}").get().to_dict() or {}
        return bool(document.get("agentReadReceipt", {}).get("state") == "SENT")

    wait_until(sent, PROCESSING_TIMEOUT, "the replayed READ receipt")
    assert [c.status for c in standin.calls_for(message_id)].count(200) == 1
    assert not dead_lettered()  # replayed and acknowledged: gone from the dead letters
