"""The analytics views on the demo's own events: every event the functions publish to the
changes topic while `make demo` plays its conversations through the local stack, each valid
against docs/changes.v1.schema.json, gives through the views (tests/analytics.py) the numbers
`make report` gives for the same conversations' Firestore documents.

The demo's simulated week is left out: it records with the recorder in-process, as history,
without the functions that publish the stream.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from google.api_core.exceptions import NotFound
from google.cloud import firestore
from google.cloud.pubsub_v1 import SubscriberClient

from shared.core.metrics import FIELDS, Breakdown, MessageFacts
from shared.ops import report
from tests.analytics import Warehouse, numbers, report_numbers
from tools.local import demo
from tools.local.procs import wait_until
from tools.local.stack import LocalStack

pytestmark = pytest.mark.integration

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "docs" / "changes.v1.schema.json").read_text()
)
# The lines where the demo names each conversation it played.
CONVERSATION = re.compile(r"(?:Firestore: conversations/|Business Messages: conversation )(\S+)")


class ChangeStream:
    """A pull subscription on the changes topic: every delivery since it was created."""

    def __init__(self, stack: LocalStack) -> None:
        self.client = SubscriberClient()
        project = stack.settings.project
        self.path = self.client.subscription_path(project, f"analytics-{uuid.uuid4().hex[:8]}")
        self.client.create_subscription(
            name=self.path, topic=f"projects/{project}/topics/{stack.settings.changes_topic}"
        )
        self.deliveries: list[tuple[str, str, datetime, str, str]] = []

    def pull(self) -> None:
        while True:
            with warnings.catch_warnings():
                # Deprecated for production pulls; here it drains without waiting out a timeout.
                warnings.simplefilter("ignore", DeprecationWarning)
                response = self.client.pull(
                    subscription=self.path, max_messages=1000, timeout=5, return_immediately=True
                )
            if not response.received_messages:
                return
            self.client.acknowledge(
                subscription=self.path, ack_ids=[m.ack_id for m in response.received_messages]
            )
            self.deliveries += [
                (
                    self.path,
                    received.message.message_id,
                    received.message.publish_time,
                    received.message.data.decode(),
                    json.dumps(dict(received.message.attributes)),
                )
                for received in response.received_messages
            ]

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(data) for _, _, _, data, _ in self.deliveries]

    def delete(self) -> None:
        with contextlib.suppress(NotFound):
            self.client.delete_subscription(subscription=self.path)


@pytest.fixture
def stream(stack: LocalStack) -> Iterator[ChangeStream]:
    subscription = ChangeStream(stack)
    yield subscription
    subscription.delete()


def play_conversations(stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> set[str]:
    """Plays the demo's conversations (not its simulated week); returns their ids."""
    target = demo.Target.of(stack)
    demo.play_rbm(target)
    demo.play_business_messages(target)
    demo.play_whatsapp(target)
    demo.play_chatapp(target)
    demo.play_chatapp_queues(target)
    return set(CONVERSATION.findall(capsys.readouterr().out))


def report_of(db: firestore.Client, conversations: set[str]) -> Breakdown:
    """`make report`'s query and metrics (UTC days), on these conversations' messages."""
    now = datetime.now(UTC)
    window = report.Window(now - timedelta(days=3650), now + timedelta(days=1), UTC)
    result = Breakdown(window.timezone)
    for snapshot in report.message_query(db, window).select(FIELDS).stream():
        conversation = snapshot.reference.parent.parent
        if conversation is not None and conversation.id in conversations:
            facts = MessageFacts.of(snapshot.to_dict() or {})
            if facts is not None:
                result.add(facts)
    return result


def in_conversations(event: dict[str, Any], conversations: set[str]) -> bool:
    return event["data"].get("conversationId") in conversations


def test_the_views_give_the_report_s_numbers_for_the_demo(
    stack: LocalStack,
    db: firestore.Client,
    stream: ChangeStream,
    capsys: pytest.CaptureFixture[str],
) -> None:
    conversations = play_conversations(stack, capsys)
    assert len(conversations) == 5, conversations

    def compared() -> tuple[dict[str, Any], dict[str, Any]]:
        stream.pull()
        warehouse = Warehouse()
        warehouse.insert(
            row
            for row, event in zip(stream.deliveries, stream.events(), strict=True)
            if in_conversations(event, conversations)
        )
        return numbers(warehouse), report_numbers(report_of(db, conversations))

    # The READ sender settles after the recorder: wait until the stream has caught up.
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: (pair := compared())[0] == pair[1], 60, "the views to catch up")
    views, expected = compared()
    assert views == expected
    assert expected["agents"], "the demo's conversations count nothing"
    assert any(agent["read"] for agent in expected["agents"].values())
    assert any(agent["agent_reads_sent"] for agent in expected["agents"].values())
    assert any(agent["failures"] for agent in expected["agents"].values())

    validator = jsonschema.Draft202012Validator(SCHEMA)
    events = stream.events()
    for event in events:
        validator.validate(event)
    providers = {e["data"]["provider"] for e in events if in_conversations(e, conversations)}
    assert providers >= {"rbm", "bm", "whatsapp", "chatapp"}
