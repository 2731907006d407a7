"""The analytics views (terraform/analytics/*.sql) compute what `make report` computes.

Each message below is described once and gives both its change-stream events (valid against
docs/changes.v1.schema.json) and the message document the recorder keeps for it. The events
go through the views (BigQuery SQL, transpiled to DuckDB by tests/analytics.py); the documents
go through shared.core.metrics.breakdown, the report's own code; the numbers must be equal.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlglot
from sqlglot.errors import ErrorLevel, ParseError

from shared.core.changes import AGENT_READ_SETTLED, MESSAGE_RECEIVED, MESSAGE_STATUS
from shared.core.events import AGENT, USER
from shared.core.metrics import breakdown
from shared.core.read_receipts import FAILED, FIELD, SENT
from shared.core.records import FIRST_TIME, time_field
from tests.analytics import Warehouse, bigquery_sql, numbers, report_numbers, view_names
from tests.change_consumer import validate

T = datetime(2026, 12, 1, 9, tzinfo=UTC)
STATUS, RECEIVED, SETTLED = MESSAGE_STATUS, MESSAGE_RECEIVED, AGENT_READ_SETTLED
RANKS = {"sent": 1, "delivered": 2, "read": 3, "failed": 4}


def at(seconds: float) -> datetime:
    return T + timedelta(seconds=seconds)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def cloudevent(
    type_: str, provider: str, agent: str | None, subject: str, time: datetime, data: Any
) -> dict[str, Any]:
    key = json.dumps([type_, provider, subject, data.get("status")])
    return {
        "specversion": "1.0",
        "id": hashlib.sha256(key.encode()).hexdigest()[:32],
        "source": f"/{provider}/{agent}" if agent else f"/{provider}",
        "type": type_,
        "subject": subject,
        "time": rfc3339(time),
        "datacontenttype": "application/json",
        "data": data,
    }


@dataclass(frozen=True)
class BusinessMessage:
    provider: str
    agent: str | None
    message_id: str
    statuses: dict[str, datetime]  # as the provider names them: DELIVERED, Delivered, delivered
    error: dict[str, Any] = field(default_factory=dict)  # errorCode, errorDescription

    def events(self) -> list[dict[str, Any]]:
        return [
            cloudevent(
                STATUS,
                self.provider,
                self.agent,
                self.message_id,
                time,
                {
                    "provider": self.provider,
                    "agent": self.agent,
                    "conversationId": f"conversation-{self.message_id}",
                    "messageId": self.message_id,
                    "status": status,
                    "statusRank": RANKS[status.lower()],
                    "time": rfc3339(time),
                    "receipt": {"sendTime": rfc3339(time)},
                    "message": self.error if status.lower() == "failed" else {},
                },
            )
            for status, time in self.statuses.items()
        ]

    def document(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "agent": self.agent,
            "direction": AGENT,
            FIRST_TIME: min(self.statuses.values()),
            **{time_field(status): time for status, time in self.statuses.items()},
            **self.error,
        }


@dataclass(frozen=True)
class UserMessage:
    provider: str
    agent: str
    message_id: str
    first_time: datetime
    create_time: datetime | None = None
    kind: str = "message"
    read: tuple[str, datetime] | None = None  # the agent's READ once settled: state, time

    def events(self) -> list[dict[str, Any]]:
        conversation = f"conversation-{self.message_id}"
        created = self.create_time and rfc3339(self.create_time)
        received = {
            "provider": self.provider,
            "agent": self.agent,
            "conversationId": conversation,
            "messageId": self.message_id,
            "kind": self.kind,
            "createTime": created,
            "firstTime": rfc3339(self.first_time),
            "context": {},
            "content": {"messageType": "text", "text": "hello"},
        }
        events = [
            cloudevent(
                RECEIVED, self.provider, self.agent, self.message_id, self.first_time, received
            )
        ]
        if self.read is not None:
            state, time = self.read
            settled = {
                "provider": self.provider,
                "conversationId": conversation,
                "messageId": self.message_id,
                "state": state,
                "time": rfc3339(time),
                "attempts": 1,
                "reason": None if state == SENT else "PERMISSION_DENIED",
                "coveredBy": None,
            }
            events.append(
                cloudevent(SETTLED, self.provider, self.agent, self.message_id, time, settled)
            )
        return events

    def document(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "provider": self.provider,
            "agent": self.agent,
            "direction": USER,
            "kind": self.kind,
            "createTime": self.create_time,
            FIRST_TIME: self.first_time,
        }
        if self.read is not None:
            state, time = self.read
            document[FIELD] = {"state": state, **({"sentTime": time} if state == SENT else {})}
        return document


RBM, WHATSAPP, CHATAPP = "rbm-agent@rbm.goog", "15550001111", "8613800000000"
MIDNIGHT = datetime(2026, 12, 2, tzinfo=UTC)
UNDELIVERABLE = {"errorCode": 131026, "errorDescription": "Message undeliverable."}
MESSAGES: list[BusinessMessage | UserMessage] = [
    BusinessMessage("rbm", RBM, "m1", {"DELIVERED": at(0), "READ": at(30)}),
    BusinessMessage("rbm", RBM, "m2", {"DELIVERED": at(10), "READ": at(70.5)}),
    BusinessMessage("rbm", RBM, "m3", {"DELIVERED": at(20)}),
    # READ before DELIVERED by the clocks: left out of the times, counted out of order
    BusinessMessage("rbm", RBM, "m4", {"READ": at(5), "DELIVERED": at(20)}),
    BusinessMessage("rbm", RBM, "m5", {"READ": at(40)}),  # a READ implies delivered
    BusinessMessage("rbm", None, "m6", {"DELIVERED": at(1), "READ": at(2.25)}),
    # read the next day (UTC): counted on the day of its first time
    BusinessMessage(
        "rbm", RBM, "m7", {"DELIVERED": MIDNIGHT - timedelta(seconds=1), "READ": MIDNIGHT}
    ),
    BusinessMessage(
        "whatsapp", WHATSAPP, "w1", {"sent": at(0), "delivered": at(1), "read": at(61)}
    ),
    BusinessMessage("whatsapp", WHATSAPP, "w2", {"sent": at(0)}),  # nothing a view counts
    BusinessMessage("whatsapp", WHATSAPP, "w3", {"sent": at(0), "failed": at(2)}, UNDELIVERABLE),
    # the same code as a string: one label; the most frequent description wins
    BusinessMessage(
        "whatsapp",
        WHATSAPP,
        "w4",
        {"failed": at(3)},
        {"errorCode": "131026", "errorDescription": "Receiver incapable."},
    ),
    BusinessMessage("whatsapp", WHATSAPP, "w5", {"failed": at(4)}, UNDELIVERABLE),
    BusinessMessage("whatsapp", WHATSAPP, "w6", {"failed": at(5)}),  # no code
    BusinessMessage(
        "chatapp",
        CHATAPP,
        "c1",
        {"Sent": at(86_400), "Failed": at(86_401)},
        {"errorCode": "1001", "errorDescription": "Template not approved"},
    ),
    BusinessMessage("chatapp", CHATAPP, "c2", {"Delivered": at(86_400), "Read": at(86_460)}),
    UserMessage("rbm", RBM, "u1", at(0), create_time=at(0), read=(SENT, at(2))),
    UserMessage("rbm", RBM, "u2", at(1), kind="suggestionResponse", read=(SENT, at(2.5))),
    UserMessage("rbm", RBM, "u3", at(10), create_time=at(10), read=(SENT, at(9))),
    UserMessage("rbm", RBM, "u4", at(11), create_time=at(11), read=(FAILED, at(12))),
    UserMessage("rbm", RBM, "u5", at(12), create_time=at(12)),  # READ not settled yet
    UserMessage("rbm", RBM, "u6", at(13), kind="userStatus"),  # typing: not a user message
    UserMessage("whatsapp", WHATSAPP, "u7", at(3), create_time=at(3), read=(SENT, at(3.8))),
    UserMessage("whatsapp", WHATSAPP, "u8", at(4), create_time=at(3.5), read=(SENT, at(5))),
    # an agent none of whose READs settled: BigQuery's COUNTIF counts 0, not NULL
    UserMessage("bm", "brands/b/agents/a", "u9", at(6), create_time=at(6)),
]
EVENTS = [event for message in MESSAGES for event in message.events()]
REDELIVERED = 3  # the first events reach the table twice, as at-least-once allows


@pytest.fixture(scope="module")
def warehouse() -> Warehouse:
    loaded = Warehouse()
    loaded.load(EVENTS, redelivered=REDELIVERED)
    return loaded


def test_the_events_are_valid_against_the_schema() -> None:
    for event in EVENTS:
        validate(event)
    assert len({event["id"] for event in EVENTS}) == len(EVENTS)


def test_every_view_is_bigquery_sql() -> None:
    assert view_names() == [
        "events",
        "business_messages",
        "user_messages",
        "agent_read_latency",
        "delivered_read_by_day",
        "failures_by_error_code",
        "read_rate",
        "time_to_read",
    ]
    for view in view_names():
        sqlglot.parse_one(bigquery_sql(view), read="bigquery", error_level=ErrorLevel.RAISE)
    with pytest.raises(ParseError):  # the parse does refuse what BigQuery would
        sqlglot.parse_one("SELECT FROM WHERE", read="bigquery", error_level=ErrorLevel.RAISE)


def test_the_events_view_keeps_one_row_per_event(warehouse: Warehouse) -> None:
    assert len(warehouse.rows("events")) == len(EVENTS)
    [[deliveries]] = warehouse.db.execute("SELECT COUNT(*) FROM analytics.changes").fetchall()
    assert deliveries == len(EVENTS) + REDELIVERED


def test_the_views_give_the_report_s_numbers(warehouse: Warehouse) -> None:
    documents = [message.document() for message in MESSAGES]
    expected = report_numbers(breakdown(documents, UTC))
    assert numbers(warehouse) == expected
    # ...and those numbers are the ones worked out by hand, not two empty tables.
    rbm = expected["agents"][("rbm", RBM)]
    assert (rbm["delivered"], rbm["read"], rbm["read_rate"]) == (6, 5, 5 / 6)
    assert rbm["time_to_read"] == {"samples": 3, "p50": 30.0, "p90": 60.5, "p99": 60.5}
    assert rbm["out_of_order"] == 2  # m4's READ, u3's READ latency
    assert (rbm["user_messages"], rbm["agent_reads_sent"], rbm["agent_reads_failed"]) == (5, 3, 1)
    assert rbm["agent_read_latency"] == {"samples": 2, "p50": 1.5, "p90": 2.0, "p99": 2.0}
    assert expected["agents"][("rbm", "(none)")]["time_to_read"]["p50"] == 1.25
    whatsapp = expected["agents"][("whatsapp", WHATSAPP)]
    assert whatsapp["failures"] == {
        "131026": (3, "Message undeliverable."),
        "(no code)": (1, None),
    }
    assert whatsapp["agent_read_latency"]["p50"] == pytest.approx(0.8)
    unsettled = expected["agents"][("bm", "brands/b/agents/a")]
    assert (unsettled["user_messages"], unsettled["agent_reads_sent"]) == (1, 0)
    assert expected["days"] == {
        date(2026, 12, 1): {"delivered": 8, "read": 7, "failed": 4},
        date(2026, 12, 2): {"delivered": 1, "read": 1, "failed": 1},
    }
