"""`make report` on a data set sent through the whole pipeline, checked by hand.

The data set is dated 3 March 2025, a day nothing else in the tests (nor the demo's simulated
week) writes to, and arrives the way a webhook sees it: payloads repeated, READs before their
DELIVERED, a DELIVERED dated after its READ, a send recorded by the business, a READ receipt
the API refuses.
"""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from google.cloud import firestore

from shared.ops import report
from shared.ops.sends import SentMessage, record_sent
from tests.integration.conftest import documents, recorded, send
from tools.local.procs import wait_until
from tools.local.stack import LocalStack
from tools.payloads import bm as bm
from tools.payloads import chatapp as ca
from tools.standins.bm_api import BusinessMessagesStandIn

pytestmark = pytest.mark.integration

T = datetime(2025, 3, 3, 9, tzinfo=UTC)
CID = "hand-checked"
USER = "8613900000302"
WINDOW = ["--since", "2025-03-03", "--until", "2025-03-04"]


def at(seconds: float) -> datetime:
    return T + timedelta(seconds=seconds)


def millis(seconds: float) -> int:
    return int(at(seconds).timestamp() * 1000)


def receipts(status: str, seconds: float, *messages: str) -> bytes:
    return bm.encode(bm.receipts(CID, *((m, status) for m in messages), at=at(seconds)))


def seed(stack: LocalStack, db: firestore.Client, standin: BusinessMessagesStandIn) -> None:
    delivered = receipts("DELIVERED", 0, "a1", "a2", "a3")
    bm_bodies = [
        delivered,
        delivered,  # redelivered
        receipts("READ", 60, "a1"),
        delivered,  # late, after a1's READ
        receipts("READ", 180, "a2"),
        receipts("READ", 30, "a4"),  # READ with no DELIVERED ever
        receipts("READ", 620, "a5"),  # before its DELIVERED
        receipts("DELIVERED", 20, "a5"),
        receipts("READ", 50, "a6"),
        receipts("DELIVERED", 100, "a6"),  # dated after its READ: left out of the times
    ]
    standin.script("hc-u2", [404])  # the API refuses u2's READ receipt: FAILED, never retried
    users = [bm.encode(bm.user_text(CID, m, "hello", at=T)) for m in ("hc-u1", "hc-u1", "hc-u2")]
    recorded(stack, *(send(stack, body) for body in bm_bodies + users))
    record_sent(db, [SentMessage("bm", bm.AGENT, CID, "a5", at(-10))])
    statuses = [
        ca.status("w1", "Sent", USER, at=millis(0)),
        ca.status("w1", "Delivered", USER, at=millis(2)),
        ca.status("w1", "Read", USER, at=millis(4)),
        ca.status("w2", "Sent", USER, at=millis(0)),
        {**ca.failed("w2", USER, "131026", "incapable"), "Timestamp": millis(1)},
        {**ca.failed("w3", USER, "131047", "re-engagement"), "Timestamp": millis(0)},
    ]
    batch = ca.encode(statuses)
    inbound = ca.encode([ca.inbound_text("mo-1", USER, "thanks", at=millis(0))])
    recorded(
        stack,
        ca.push(stack.chatapp_url("status"), batch),
        ca.push(stack.chatapp_url("status"), batch),  # Alibaba pushes the batch again
        ca.push(stack.chatapp_url("inbound"), inbound),
    )
    messages = db.document(f"conversations/{CID}").collection("messages")

    def read_receipts_final() -> bool:
        states = {
            m: d.get("agentReadReceipt", {}).get("state") for m, d in documents(messages).items()
        }
        return (states.get("hc-u1"), states.get("hc-u2")) == ("SENT", "FAILED")

    wait_until(read_receipts_final, 60, "u1's READ receipt sent and u2's refused")


@pytest.fixture(scope="module")
def seeded(stack: LocalStack, db: firestore.Client, standin: BusinessMessagesStandIn) -> None:
    seed(stack, db, standin)


Reporter = Callable[[list[str]], str]


@pytest.fixture
def reported(
    stack: LocalStack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Reporter:
    """Runs `make report`'s code on the stack's Firestore; returns what it printed."""
    for name, value in stack.client_environment().items():
        monkeypatch.setenv(name, value)

    def run(arguments: list[str]) -> str:
        report.main([*WINDOW, "--out", str(tmp_path), *arguments])
        return capsys.readouterr().out

    return run


def row(shown: str, first: str) -> list[str]:
    """A table row's cells, by its first cell."""
    for line in shown.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if cells and cells[0] == first:
            return cells
    raise AssertionError(f"no row {first!r} in\n{shown}")


def test_the_metrics_of_a_hand_checked_day(
    seeded: None, reported: Reporter, tmp_path: Path
) -> None:
    shown = reported([])
    tables = shown.split("Users' messages")
    # sent (a5 by the send API, w1, w2); delivered a1-a6 and w1; read a1, a2, a4, a5, a6, w1;
    # time to read 2 s (w1), 60 s, 180 s, 600 s (a5); time to deliver 2 s (w1), 30 s (a5).
    assert row(tables[0], "all") == [
        "all", "", "3", "7", "6", "85.7%",
        "1.0 min / 10.0 min / 10.0 min", "2.0 s / 30.0 s / 30.0 s", "2",
    ]  # fmt: skip
    assert "1 out-of-order durations left out" in shown  # a6
    user_row = row(tables[1], "all")
    assert user_row[2:6] == ["3", "1", "1", "0"]  # u1, u2, mo-1; u1 SENT, u2 FAILED
    # u1's READ went out when the test ran, long after 3 March 2025.
    assert user_row[6].endswith(" d"), user_row
    assert row(shown, "2025-03-03")[1:4] == ["7", "6", "85.7%"]
    assert row(shown, "131026")[1] == "1"
    assert row(shown, "131047")[1] == "1"
    page = (tmp_path / "report.html").read_text()
    assert "85.7%" in page
    assert "1.0 min / 10.0 min / 10.0 min" in page
    assert (tmp_path / "report.png").read_bytes().startswith(b"\x89PNG")


def test_one_agent_only(seeded: None, reported: Reporter) -> None:
    shown = reported(["--agent", ca.BUSINESS]).split("Users' messages")[0]
    assert row(shown, "chatapp")[1:9] == [
        ca.BUSINESS, "2", "1", "1", "100.0%", "2.0 s / 2.0 s / 2.0 s", "2.0 s / 2.0 s / 2.0 s", "2",
    ]  # fmt: skip
    assert "bm " not in shown


def test_a_window_with_nothing_in_it_reports_zeros(reported: Reporter, tmp_path: Path) -> None:
    shown = reported(["--since", "2020-01-01", "--until", "2020-01-02"])
    assert row(shown, "all")[2:6] == ["0", "0", "0", "-"]
    assert (tmp_path / "report.png").exists()
