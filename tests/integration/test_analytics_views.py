"""The analytics views on the demo's own events: every event of `make demo` (its
conversations of every provider and its simulated week) as a consumer received it from the
changes topic, loaded as the BigQuery subscription writes it, gives through the views
(tests/analytics.py) the numbers `make report` gives for the same conversations' Firestore
documents."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.cloud import firestore

from shared.core.metrics import FIELDS, Breakdown, MessageFacts
from shared.ops import report
from tests.analytics import Warehouse, numbers, report_numbers
from tests.change_consumer import ChangeConsumer
from tests.integration.conftest import DemoRun
from tools.local.procs import wait_until

# One worker of `make test` runs the group: it shares one play of the demo.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("demo")]


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


def test_the_views_give_the_report_s_numbers_for_the_demo(
    demo_run: DemoRun, consumer: ChangeConsumer, db: firestore.Client
) -> None:
    def compared() -> tuple[dict[str, Any], dict[str, Any]]:
        pushed = consumer.pushed()
        conversations = {
            cid for each in pushed if (cid := each.event["data"].get("conversationId"))
        }
        warehouse = Warehouse()
        warehouse.insert(
            (
                consumer.subscription,
                each.message_id,
                each.publish_time,
                json.dumps(each.event),
                json.dumps(each.attributes),
            )
            for each in pushed
        )
        return numbers(warehouse), report_numbers(report_of(db, conversations))

    # The READ sender settles after the recorder: wait until the stream has caught up.
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: (pair := compared())[0] == pair[1], 120, "the views to catch up")
    views, expected = compared()
    assert views == expected
    agents = expected["agents"].values()
    assert {provider for provider, _ in expected["agents"]} == {"rbm", "bm", "whatsapp", "chatapp"}
    assert any(agent["read"] for agent in agents)
    assert any(agent["agent_reads_sent"] for agent in agents)
    assert any(agent["failures"] for agent in agents)
