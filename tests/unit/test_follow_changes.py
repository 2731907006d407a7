"""`make changes` shows one readable line per event of the stream, with kinds and ids only."""

import re
from datetime import UTC, date, datetime
from typing import Any

import pytest

from shared.core import changes
from shared.core.changes import Change
from tests.change_consumer import validate
from tools.local.changes import line

AT = datetime(2026, 12, 7, 12, 0, 1, 250_000, tzinfo=UTC)
TODAY = AT.date()
PAYLOAD_KEY = "ab" * 32


def event(change: Change) -> dict[str, Any]:
    """The event as a consumer receives it, checked against the stream's schema."""
    published = change.cloud_event()
    validate(published)
    return published


STATUS = changes.message_status(
    "whatsapp", "15550001", "c1", "wamid.X", "delivered", 2, AT, {"sendTime": AT}, {}
)
FAILED = changes.message_status(
    "chatapp", "waba-1", "c2", "wa-2", "Failed", 3, AT, {}, {"errorCode": "131026"}
)
RECEIVED = changes.message_received(
    "rbm",
    "agent@rbm.goog",
    "c3",
    {"messageId": "m-1", "kind": "MESSAGE", "firstTime": AT, "messageType": "text", "text": "hi"},
)
TAPPED = changes.message_received(  # its kind and its type say the same: said once
    "rbm",
    "agent@rbm.goog",
    "c3",
    {
        "messageId": "m-2",
        "kind": "suggestionResponse",
        "firstTime": AT,
        "messageType": "suggestionResponse",
        "postbackData": "track",
    },
)
READ_FAILED = changes.agent_read_settled(
    "bm", "c4", "user-1", {"state": "FAILED", "failedTime": AT, "error": "404 NOT_FOUND"}
)
READ_COVERED = changes.agent_read_settled(
    "whatsapp", "c5", "wamid.A", {"state": "SENT", "sentTime": AT, "coveredBy": "wamid.B"}
)
PARKED = changes.event_parked(
    "bm",
    None,
    {
        "payloadKey": PAYLOAD_KEY,
        "kind": "RECEIPT",
        "category": "REJECTED_RECEIPT",
        "reason": "1x receiptType is RECEIPT_TYPE_UNSPECIFIED",
        "setAside": 1,
    },
    AT,
)
REVIEWED = changes.template_reviewed(
    "chatapp",
    "waba-1~order~en_US",
    {
        "account": "waba-1",
        "templateCode": "order",
        "language": "en_US",
        "status": "pass",
        "reviewTime": AT,
    },
)


@pytest.mark.parametrize(
    ("change", "columns"),
    [
        (STATUS, ["message.status", "whatsapp", "wamid.X", "delivered (rank 2)"]),
        (FAILED, ["message.status", "chatapp", "wa-2", "Failed (rank 3, error 131026)"]),
        (RECEIVED, ["message.received", "rbm", "m-1", "MESSAGE text"]),
        (TAPPED, ["message.received", "rbm", "m-2", "suggestionResponse"]),
        (READ_FAILED, ["agent_read.settled", "bm", "user-1", "FAILED: 404 NOT_FOUND"]),
        (READ_COVERED, ["agent_read.settled", "whatsapp", "wamid.A", "SENT covered by wamid.B"]),
        (
            PARKED,
            [
                "event.parked",
                "bm",
                PAYLOAD_KEY[:29] + "...",
                "REJECTED_RECEIPT: 1x receiptType is RECEIPT_TYPE_UNSPECIFIED",
            ],
        ),
        (REVIEWED, ["template.reviewed", "chatapp", "waba-1/order/en_US", "pass"]),
    ],
)
def test_each_type_of_event_is_one_line_of_columns(change: Change, columns: list[str]) -> None:
    shown = line(event(change), TODAY)
    assert re.split(r" {2,}", shown) == ["12:00:01", *columns]
    # aligned: the essence starts in the same place on every line
    assert shown.index(columns[-1]) == len("12:00:01  agent_read.settled  whatsapp  ") + 32 + 2


def test_the_date_is_shown_for_an_event_of_another_day() -> None:
    shown = line(event(STATUS), date(2026, 12, 8))
    assert shown.startswith("2026-12-07 12:00:01  message.status ")


def test_no_message_text_is_shown() -> None:
    assert event(RECEIVED)["data"]["content"]["text"] == "hi"  # the event carries it...
    assert "hi" not in line(event(RECEIVED), TODAY).split()  # ...the line does not
