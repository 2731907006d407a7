"""The pipeline's deployable pieces and how Pub/Sub connects them.

One description serves the local stack (and, later, the deploy tooling), so the two
cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.routing import EVENTS, READABLE


@dataclass(frozen=True)
class Function:
    target: str  # entry point, and directory under functions/
    signature: str  # functions-framework signature type

    @property
    def source(self) -> str:
        return f"functions/{self.target}/main.py"


@dataclass(frozen=True)
class Subscription:
    id: str
    topic_key: str
    function: str


WEBHOOK = Function("webhook", "http")
RECORD_EVENTS = Function("record_events", "cloudevent")
AGENT_READ_RECEIPTS = Function("agent_read_receipts", "cloudevent")
FUNCTIONS = (WEBHOOK, RECORD_EVENTS, AGENT_READ_RECEIPTS)

SUBSCRIPTIONS = (
    Subscription("record-events", EVENTS, RECORD_EVENTS.target),
    Subscription("record-readable", READABLE, RECORD_EVENTS.target),
    Subscription("agent-read-receipts", READABLE, AGENT_READ_RECEIPTS.target),
)
