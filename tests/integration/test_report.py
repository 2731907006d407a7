"""`make report` on data sets sent through the whole pipeline, checked by hand.

The first is dated 3 March 2025, a day nothing else in the tests (nor the demo's simulated
week) writes to, and arrives the way a webhook sees it: payloads repeated, READs before their
DELIVERED, a DELIVERED dated after its READ, a send recorded by the business, a READ receipt
the API refuses. The second, on 5 March 2025, is hostile: error codes, descriptions and
business numbers of every type and with markup of every kind, which the report must show as
text, checked in a real browser too.
"""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.cloud import firestore

from shared.adapters.change_stream import ChangeStream
from shared.ops import report
from shared.ops.sends import SentMessage, record_sent
from tests.headless_chromium import open_page
from tests.integration.conftest import documents, recorded, send
from tests.report_output import on_chart, row, rows
from tools.local.groups import live_groups
from tools.local.procs import wait_until
from tools.local.stack import LocalStack
from tools.payloads import bm as bm
from tools.payloads import chatapp as ca
from tools.payloads import rbm
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


def seed(
    stack: LocalStack,
    db: firestore.Client,
    standin: BusinessMessagesStandIn,
    change_stream: ChangeStream,
) -> None:
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
    record_sent(db, [SentMessage("bm", bm.AGENT, CID, "a5", at(-10))], change_stream)
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
def seeded(
    stack: LocalStack,
    db: firestore.Client,
    standin: BusinessMessagesStandIn,
    change_stream: ChangeStream,
) -> None:
    seed(stack, db, standin, change_stream)


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
    assert row(shown, "131026 incapable")[1] == "1"  # the code beside its description
    assert row(shown, "131047 re-engagement")[1] == "1"
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


HOSTILE_DAY = datetime(2025, 3, 5, 9, tzinfo=UTC)
HOSTILE_WINDOW = ["--since", "2025-03-05", "--until", "2025-03-06"]
INCAPABLE = "Receiver is incapable of receiving this message"
# Each tries to run a script or add an element; none may, in the terminal, the page or the chart.
SCRIPT = "<script>window.injected = 'script'</script>"
IMAGE = "<img src=x onerror=\"window.injected = 'image'\">"
ELEMENT = "<b id=injected>bold?</b>"
MATH = "$\\foo$"
HOSTILE_BUSINESS = f"[/bold] {MATH} {ELEMENT}"
# (ErrorCode, ErrorDescription) as Alibaba could push them, and the failures table's rows.
HOSTILE_FAILURES: list[tuple[Any, Any]] = [
    (131026, INCAPABLE),  # a number
    ("131026", INCAPABLE),  # the same code as text
    ("131026", "incapable"),  # a rarer description of it
    ({"code": 7, "why": ELEMENT}, None),
    ("[/bold]", MATH),
    (MATH, SCRIPT),
    (IMAGE, ["listed", 1]),
    (None, None),
]
HOSTILE_ROWS = [  # most first, then in text order
    [f"131026 {INCAPABLE}", "3"],
    [f"$\\foo$ {SCRIPT}", "1"],
    ["(no code)", "1"],
    [f'{IMAGE} ["listed", 1]', "1"],
    ["[/bold] $\\foo$", "1"],
    ['{"code": 7, "why": "<b id=injected>bold?</b>"}', "1"],
]
HOSTILE_USER = "8613900000305"
HOSTILE_AGENTS = [  # (provider, agent), sorted, then the total
    ["[/bold]", '{"name": "<b id=injected>bold?</b>"}'],
    ["bm", "8613800000001"],
    ["chatapp", ca.BUSINESS],
    ["chatapp", HOSTILE_BUSINESS],
    ["all", ""],
]


def seed_hostile(stack: LocalStack, db: firestore.Client) -> None:
    statuses = []
    hostile_millis = int(HOSTILE_DAY.timestamp() * 1000)
    for n, (code, description) in enumerate(HOSTILE_FAILURES):
        failed = ca.status(f"hostile-{n}", "Failed", HOSTILE_USER, at=hostile_millis)
        statuses.append({**failed, "ErrorCode": code, "ErrorDescription": description})
    delivered = ca.status("hostile-d", "Delivered", HOSTILE_USER, at=hostile_millis)
    statuses.append({**delivered, "From": HOSTILE_BUSINESS})
    recorded(stack, ca.push(stack.chatapp_url("status"), ca.encode(statuses)))
    # Types no provider of the pipeline stores today, as any other writer of the collection could.
    messages = db.collection("conversations/hostile-stored/messages")
    for message_id, provider, agent in (
        ("s1", "[/bold]", {"name": ELEMENT}),
        ("s2", "bm", 8613800000001),
    ):
        messages.document(message_id).set(
            {
                "provider": provider,
                "agent": agent,
                "direction": "AGENT",
                "firstTime": HOSTILE_DAY,
                "deliveredTime": HOSTILE_DAY,
            }
        )


@pytest.fixture(scope="module")
def hostile(stack: LocalStack, db: firestore.Client) -> None:
    seed_hostile(stack, db)


# What the browser shows, gathered in the page: its elements outside the chart, anything that
# could run, each table's rows with the computed weight of their text, the chart's texts.
INSPECT = """(() => {
  const outside = [...document.querySelectorAll("body *")].filter((e) => !e.closest("svg"));
  const all = [...document.querySelectorAll("*")];
  return {
    injected: window.injected ?? null,
    scripts: document.scripts.length,
    handlers: all.flatMap((e) => [...e.attributes].map((a) => a.name))
      .filter((name) => name.startsWith("on")),
    embedded: document.querySelectorAll("#injected, img, iframe, object, embed, foreignObject")
      .length,
    tags: [...new Set(outside.map((e) => e.localName))].sort(),
    title: document.title,
    tables: [...document.querySelectorAll("table")].map((table) => ({
      title: table.previousElementSibling.textContent,
      rows: [...table.tBodies[0].rows].map((tr) => ({
        cells: [...tr.cells].map((td) => td.textContent),
        weight: getComputedStyle(tr.cells[0]).fontWeight,
      })),
    })),
    charts: [...document.querySelectorAll("svg")].map((svg) => ({
      width: svg.getBoundingClientRect().width,
      height: svg.getBoundingClientRect().height,
      texts: [...svg.querySelectorAll("text")].map((text) => text.textContent),
    })),
  };
})()"""
PAGE_TAGS = ["h1", "h2", "p", "table", "tbody", "td", "th", "thead", "tr"]
CHART_TITLES = {
    "Delivered and read, by day",
    "Time from DELIVERED to READ",
    "Agent READ receipt latency (user message to READ), by day",
    "Failed deliveries by error code",
}


def test_stored_values_of_any_kind_show_as_text(
    hostile: None, reported: Reporter, tmp_path: Path
) -> None:
    shown = reported(HOSTILE_WINDOW)
    failures = shown.split("Failed deliveries by error code")[1]
    for cells in HOSTILE_ROWS:
        assert row(failures, cells[0]) == cells
    by_agent = [cells[:2] for cells in rows(shown.split("Users' messages")[0])]
    assert by_agent == HOSTILE_AGENTS, shown
    assert (tmp_path / "report.png").read_bytes().startswith(b"\x89PNG")

    with open_page((tmp_path / "report.html").as_uri()) as page:
        seen = page.evaluate(INSPECT)
    assert page.browser_pid not in live_groups()  # the browser and all it started are gone

    # Nothing ran and nothing was added: every hostile value is text in a cell.
    assert (seen["injected"], seen["scripts"], seen["handlers"], seen["embedded"]) == (
        None, 0, [], 0,
    )  # fmt: skip
    assert seen["tags"] == PAGE_TAGS
    assert seen["title"].startswith("Receipt report: 2025-03-05 00:00")
    tables = {table["title"].split(":")[0]: table["rows"] for table in seen["tables"]}
    assert [r["cells"] for r in tables["Failed deliveries by error code"]] == HOSTILE_ROWS
    assert [r["cells"][:2] for r in tables["Your messages"]] == HOSTILE_AGENTS
    # Only the totals rows are bold, not the last row of a table without one.
    bold = {
        title: [r["cells"][0] for r in shown_rows if int(r["weight"]) >= 600]
        for title, shown_rows in tables.items()
    }
    assert bold == {
        "Your messages": ["all"],
        "Users' messages and the agent's READ receipts": ["all"],
        "By day": [],
        "Failed deliveries by error code": [],
    }
    # The chart is there, drawn, and shows the same labels as text.
    (chart,) = seen["charts"]
    assert chart["width"] > 500
    assert chart["height"] > 300
    assert set(chart["texts"]) >= CHART_TITLES
    assert all(on_chart(cells[0], chart["texts"]) for cells in HOSTILE_ROWS), chart["texts"]


RBM_DAY = datetime(2025, 3, 7, 9, tzinfo=UTC)


def test_rbm_beside_the_others_delivered_read_and_its_read_receipts(
    stack: LocalStack, db: firestore.Client, reported: Reporter
) -> None:
    """r1 delivered then read 2 minutes later, r2 delivered only, r3 READ only (so delivered
    too); the user's message gets the agent's READ; every event sent twice, as Google does."""
    phone = "+447700900777"

    def event(kind: str, message: str, seconds: float) -> dict[str, Any]:
        when = RBM_DAY + timedelta(seconds=seconds)
        return rbm.user_event(kind, message, phone=phone, at=when)  # type: ignore[arg-type]

    events = [
        event("DELIVERED", "r1", 0),
        event("READ", "r1", 120),
        event("DELIVERED", "r2", 0),
        event("READ", "r3", 30),
        rbm.text_message("hi", phone=phone, message_id="rbm-u1", at=RBM_DAY),
    ]
    bodies = [rbm.encode(rbm.envelope(e)) for e in events]
    token = stack.rbm_client_token
    recorded(stack, *(rbm.post_signed(stack.rbm_url, b, token) for b in bodies + bodies))
    cid = f"conversations/rbm:{rbm.AGENT_ID}:{phone}/messages/rbm-u1"

    def read_sent() -> bool:
        document = db.document(cid).get().to_dict() or {}
        return bool(document.get("agentReadReceipt", {}).get("state") == "SENT")

    wait_until(read_sent, 60, "the agent's READ of rbm-u1")
    shown = reported(["--since", "2025-03-07", "--until", "2025-03-08", "--agent", rbm.AGENT_ID])
    agents, users = shown.split("Users' messages")[:2]
    assert row(agents, "all")[3:7] == ["3", "2", "66.7%", "2.0 min / 2.0 min / 2.0 min"]
    assert row(users, "all")[2:6] == ["1", "1", "0", "0"]
