"""Receipt metrics from message documents, checked by hand."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from shared.core import metrics
from shared.core.metrics import Distribution
from shared.ops.report_render import Report, duration

T = datetime(2026, 3, 2, 9, tzinfo=UTC)
BM_AGENT = "brands/b/agents/a"
BUSINESS = "8613800000000"


def at(seconds: float) -> datetime:
    return T + timedelta(seconds=seconds)


def agent_message(provider: str = "bm", agent: str = BM_AGENT, **times: Any) -> dict[str, Any]:
    present = [t for t in times.values() if isinstance(t, datetime)]
    return {
        "provider": provider,
        "agent": agent,
        "direction": "AGENT",
        "firstTime": min(present),
        **times,
    }


def user_message(kind: str = "message", **fields: Any) -> dict[str, Any]:
    return {
        "provider": "bm",
        "agent": BM_AGENT,
        "direction": "USER",
        "kind": kind,
        "createTime": T,
        "firstTime": T,
        **fields,
    }


def read_receipt(state: str, sent: datetime | None = None) -> dict[str, Any]:
    return {"agentReadReceipt": {"state": state, "sentTime": sent}}


DOCUMENTS = [
    agent_message(deliveredTime=T, readTime=at(60)),  # 60 s to read
    agent_message(deliveredTime=T, readTime=at(180)),  # 3 min
    agent_message(deliveredTime=T),  # never read
    agent_message(readTime=at(30)),  # READ alone: delivered too, no time to read
    agent_message(sentTime=at(-10), deliveredTime=at(20), readTime=at(620)),  # 30 s, 10 min
    agent_message(deliveredTime=at(100), readTime=at(50)),  # clocks disagree: left out
    agent_message("chatapp", BUSINESS, failedTime=T, errorCode="131026", errorDescription="no"),
    agent_message("chatapp", BUSINESS, sentTime=T, failedTime=at(1), errorCode=131026),
    agent_message("chatapp", BUSINESS, failedTime=T),
    agent_message("chatapp", BUSINESS, sentTime=T, deliveredTime=at(2), readTime=at(4)),
    user_message(**read_receipt("SENT", at(2))),
    user_message(**read_receipt("SENT", at(5))),
    user_message(**read_receipt("FAILED")),
    user_message(**read_receipt("PENDING")),
    user_message("userStatus"),  # typing: not a message
    {**user_message(), "provider": "chatapp", "agent": BUSINESS},
    {"direction": "AGENT", "deliveredTime": T},  # recorded before firstTime existed: unplaced
]


def test_nearest_rank_percentiles() -> None:
    values = Distribution.of([4.0, 1.0, 3.0, 2.0])
    assert (values.p50, values.p90, values.p99, values.count) == (2.0, 4.0, 4.0, 4)
    assert Distribution.of([]).p50 is None


def test_a_window_by_hand() -> None:
    total = metrics.breakdown(DOCUMENTS, UTC).total.metrics()
    assert (total.sent, total.delivered, total.read, total.failed) == (3, 7, 6, 3)
    assert total.read_rate == 6 / 7
    assert total.time_to_read.values == (2.0, 60.0, 180.0, 600.0)
    assert (total.time_to_read.p50, total.time_to_read.p90) == (60.0, 600.0)
    assert total.time_to_deliver.values == (2.0, 30.0)
    assert total.out_of_order == 1
    assert total.failures == {"131026": 2, "(no code)": 1}  # the number and the text: one code
    assert total.error_descriptions == {"131026": "no"}
    assert total.user_messages == 5
    assert (total.agent_reads_sent, total.agent_reads_failed, total.agent_reads_pending) == (
        2,
        1,
        1,
    )
    assert total.agent_read_latency.values == (2.0, 5.0)


def test_per_agent_and_per_day_in_the_report_time_zone() -> None:
    late_evening = agent_message(deliveredTime=datetime(2026, 3, 2, 23, 30, tzinfo=UTC))
    paris = metrics.breakdown([*DOCUMENTS, late_evening], ZoneInfo("Europe/Paris"))
    bm = paris.agents["bm", BM_AGENT].metrics()
    chatapp = paris.agents["chatapp", BUSINESS].metrics()
    assert (bm.delivered, bm.read, bm.user_messages) == (7, 5, 4)
    assert (chatapp.delivered, chatapp.read, chatapp.failed, chatapp.user_messages) == (1, 1, 3, 1)
    march_2, march_3 = datetime(2026, 3, 2).date(), datetime(2026, 3, 3).date()
    assert paris.days[march_2].metrics().delivered == 7
    assert paris.days[march_3].metrics().delivered == 1  # 00:30 in Paris
    assert metrics.breakdown([late_evening], UTC).days.keys() == {march_2}


def test_durations_read_like_people_write_them() -> None:
    assert [duration(s) for s in (None, 4.2, 180, 5400, 2 * 86400)] == [
        "-",
        "4.2 s",
        "3.0 min",
        "1.5 h",
        "2.0 d",
    ]


def test_the_report_renders_the_numbers_in_tables_html_and_png(tmp_path: Path) -> None:
    breakdown = metrics.breakdown(DOCUMENTS, UTC)
    report = Report("2026-03-02", [T.date()], breakdown)
    overall = report.tables()[0].total
    assert overall == ("all", "", "3", "7", "6", "85.7%", "1.0 min / 10.0 min / 10.0 min",
                       "2.0 s / 30.0 s / 30.0 s", "3")  # fmt: skip
    page, png = report.write(tmp_path)
    text = page.read_text()
    assert all(shown in text for shown in ("85.7%", "131026", "1.0 min / 10.0 min", "<svg"))
    assert png.read_bytes().startswith(b"\x89PNG")


def test_stored_values_as_labels() -> None:
    assert metrics.label(131026) == "131026"
    assert metrics.label(True) == "true"
    assert metrics.label({"b": [1, None], "a": "x"}) == '{"a": "x", "b": [1, null]}'
    assert metrics.label({1: "a", "b": 2}) == "{1: 'a', 'b': 2}"  # unsortable as JSON
    assert metrics.label(T) == '"2026-03-02 09:00:00+00:00"'
    assert metrics.label("[/bold] $\\foo$ <b>") == "[/bold] $\\foo$ <b>"  # the renderers' job
    assert metrics.label("a\nb\x1b[2J\ud800\u202e") == "a\\nb\\x1b[2J\\ud800\\u202e"
    assert metrics.label("x" * 300) == "x" * 199 + "…"
    assert metrics.label("x" * 300, 10) == "x" * 9 + "…"


def test_fields_of_the_wrong_type_count_as_absent() -> None:
    documents = [
        agent_message(deliveredTime=T, readTime="later"),  # delivered, not read
        agent_message(deliveredTime=T, sentTime=[1]),  # no send time
        {**agent_message(deliveredTime=T), "readTime": datetime(2026, 3, 2, 10)},  # naive
        {**agent_message(deliveredTime=T), "firstTime": "2026-03-02"},  # cannot be placed
        {**agent_message(failedTime=T), "agent": 0, "provider": {"p": 1}},  # 0 is an agent
        {**user_message(), "kind": {"kind": "message"}},  # not a kind
        user_message(agentReadReceipt="SENT"),  # a user message, no READ receipt
        user_message(agentReadReceipt={"state": ["SENT"], "sentTime": at(1)}),
    ]
    result = metrics.breakdown(documents, UTC)
    total = result.total.metrics()
    assert (total.sent, total.delivered, total.read, total.failed) == (0, 3, 0, 1)
    assert total.time_to_read.count == 0
    reads = (total.user_messages, total.agent_reads_sent, total.agent_read_latency.count)
    assert reads == (2, 0, 0)
    assert ('{"p": 1}', "0") in result.agents
