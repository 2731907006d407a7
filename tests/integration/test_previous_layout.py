"""Documents of the previous layout, read as they are (docs/data-contract.md: no migration).

Until receipts moved onto their messages, each receipt also had a document of its own under
`conversations/{c}/receipts/` and updated the conversation's `lastActivityTime`. The fixtures
below are what that layout wrote (main at baa2772, field for field), put straight into the
emulator. The same traffic then goes through today's pipeline on another day, and every
reader must see the two alike: the recorder (a redelivery of an old receipt writes nothing, a
new one moves the old message on), the READ sender (an old user message's READ is not sent
again) and `make report` (the same figures).
"""

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.cloud import firestore

from shared.ops import report
from tests.integration.conftest import delivery, documents, recorded, send, settled
from tests.report_output import row
from tools.local.stack import LocalStack
from tools.payloads import bm as bm
from tools.standins.bm_api import BusinessMessagesStandIn
from tools.topology import AGENT_READ_RECEIPTS

pytestmark = pytest.mark.integration

OLD_DAY = datetime(2025, 3, 7, 9, tzinfo=UTC)  # days no other test writes to
NEW_DAY = datetime(2025, 3, 8, 9, tzinfo=UTC)
MOVED_DAY = datetime(2025, 3, 9, 9, tzinfo=UTC)  # an old conversation that receives more
# The traffic of both days: (message, status, seconds after the day's start).
RECEIPTS = [("a1", "DELIVERED", 0), ("a1", "READ", 60), ("a2", "DELIVERED", 0), ("a3", "READ", 30)]


def previous_layout(cid: str, day: datetime) -> dict[str, dict[str, Any]]:
    """Path -> document, as the previous layout recorded RECEIPTS and a user message u1 whose
    READ receipt was sent."""
    recorded_at = day + timedelta(minutes=5)
    common = {"provider": "bm", "agent": bm.AGENT, "conversationId": cid, "recordTime": recorded_at}
    root = f"conversations/{cid}"
    docs: dict[str, dict[str, Any]] = {}
    for message_id, status, seconds in RECEIPTS:
        time = day + timedelta(seconds=seconds)
        docs[f"{root}/receipts/{message_id}~{status}"] = {
            **common,
            "messageId": message_id,
            "receiptType": status,
            "createTime": time,
            "requestId": None,
            "sendTime": time,
        }
        message = docs.setdefault(
            f"{root}/messages/{message_id}",
            {**common, "direction": "AGENT", "messageId": message_id, "updateTime": recorded_at},
        )
        if message.get("status") != "READ":
            message["status"] = status
        message[f"{status.lower()}Time"] = time
        message["firstTime"] = min(time, message.get("firstTime", time))
    context = bm.user_text(cid, "u1", "hello", at=day)["context"]  # every field kept
    docs[f"{root}/messages/u1"] = {
        **common,
        "direction": "USER",
        "messageId": "u1",
        "kind": "message",
        "createTime": day,
        "firstTime": day,
        "requestId": str(uuid.uuid4()),
        "sendTime": day,
        "context": context,
        "text": "hello",
        "agentReadReceipt": {
            "state": "SENT",
            "attempts": 1,
            "updateTime": recorded_at,
            "sentTime": recorded_at,
            "failedTime": None,
            "error": None,
            "leaseExpireTime": None,
        },
    }
    docs[root] = {
        **common,
        "customAgentId": "demo-custom-agent",
        "lastActivityTime": day + timedelta(seconds=60),  # every receipt moved it
        "context": context,
        "contextTime": day,
        "updateTime": recorded_at,
    }
    return docs


def receipt_bodies(cid: str, day: datetime) -> list[bytes]:
    return [
        bm.encode(bm.receipts(cid, (message_id, status), at=day + timedelta(seconds=seconds)))
        for message_id, status, seconds in RECEIPTS
    ]


def user_body(cid: str, day: datetime) -> bytes:
    return bm.encode(bm.user_text(cid, "u1", "hello", at=day))


@pytest.fixture(scope="module")
def old_cid(db: firestore.Client) -> str:
    cid = f"previous-{uuid.uuid4().hex[:8]}"
    batch = db.batch()
    for path, document in previous_layout(cid, OLD_DAY).items():
        batch.create(db.document(path), document)
    batch.commit()
    return cid


def messages(db: firestore.Client, cid: str) -> dict[str, dict[str, Any]]:
    return documents(db.collection(f"conversations/{cid}/messages"))


def test_a_redelivered_receipt_of_the_previous_layout_writes_nothing(
    stack: LocalStack, db: firestore.Client, old_cid: str
) -> None:
    before = messages(db, old_cid)
    entries = recorded(stack, *(send(stack, body) for body in receipt_bodies(old_cid, OLD_DAY)))
    assert [entry["writes"] for entry in entries] == [0, 0, 0, 0]
    assert messages(db, old_cid) == before


def test_a_new_receipt_moves_a_message_of_the_previous_layout_on(
    stack: LocalStack, db: firestore.Client
) -> None:
    cid = f"previous-{uuid.uuid4().hex[:8]}"
    for path, document in previous_layout(cid, MOVED_DAY).items():
        db.document(path).create(document)
    later = MOVED_DAY + timedelta(seconds=120)
    [entry] = recorded(stack, send(stack, bm.encode(bm.receipts(cid, ("a2", "READ"), at=later))))
    assert (entry["reads"], entry["writes"]) == (1, 1)
    a2 = messages(db, cid)["a2"]
    assert (a2["status"], a2["deliveredTime"], a2["readTime"]) == ("READ", MOVED_DAY, later)
    assert set(a2["receipts"]) == {"READ"}  # the old DELIVERED stays in its own document
    assert db.document(f"conversations/{cid}/receipts/a2~DELIVERED").get().exists


def test_a_user_message_of_the_previous_layout_gets_no_second_read(
    stack: LocalStack, db: firestore.Client, standin: BusinessMessagesStandIn, old_cid: str
) -> None:
    response = send(stack, user_body(old_cid, OLD_DAY))
    [recording] = recorded(stack, response)
    [reading] = settled(
        stack, AGENT_READ_RECEIPTS.target, "agent READ receipt settled", [delivery(response)]
    )
    assert recording["writes"] == 0
    assert reading["state"] == "SENT"
    assert [c for c in standin.calls_for("u1") if c.conversation_id == old_cid] == []
    assert messages(db, old_cid)["u1"]["agentReadReceipt"]["attempts"] == 1


def test_the_report_gives_the_same_figures_for_both_layouts(
    stack: LocalStack,
    db: firestore.Client,
    old_cid: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    new_cid = f"current-{uuid.uuid4().hex[:8]}"
    user = send(stack, user_body(new_cid, NEW_DAY))
    recorded(stack, *(send(stack, body) for body in receipt_bodies(new_cid, NEW_DAY)), user)
    settled(stack, AGENT_READ_RECEIPTS.target, "agent READ receipt settled", [delivery(user)])
    for name, value in stack.client_environment().items():
        monkeypatch.setenv(name, value)

    def figures(day: datetime) -> tuple[list[str], list[str]]:
        since, until = day.date().isoformat(), (day + timedelta(days=1)).date().isoformat()
        report.main(["--since", since, "--until", until, "--out", str(tmp_path)])
        agents, users = capsys.readouterr().out.split("Users' messages")
        return row(agents, "all"), row(users, "all")[:6]  # then the time to READ: when it ran

    old_agents, old_users = figures(OLD_DAY)
    # delivered a1, a2 and a3 (only READ); read a1 and a3; a1 read 60 s after its DELIVERED
    assert old_agents[2:] == ["0", "3", "2", "66.7%", "1.0 min / 1.0 min / 1.0 min", "-", "0"]
    assert old_users[2:] == ["1", "1", "0", "0"]  # u1, its READ sent
    assert figures(NEW_DAY) == (old_agents, old_users)
