"""`make report` shows any stored value as text: in the terminal, the HTML page and the chart.

Message documents hold what providers sent, so an agent, a provider, an error code or its
description can be of any type and hold any characters. Each must come out as the same plain
text everywhere: never read as rich markup, mathtext or HTML, and never crash the report.
"""

import html
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from shared.core import metrics
from shared.ops.report import Window
from shared.ops.report_render import Report, to_rich
from tests.report_output import chart_texts, on_chart, row, rows

T = datetime(2026, 3, 2, 9, tzinfo=UTC)
BUSINESS = "8613800000000"
WIDE = 1000  # terminal columns: no cell wraps, so each row is one line

# A stored value, and the text the report shows for it.
HOSTILE: dict[str, tuple[Any, str]] = {
    "a number": (131026, "131026"),
    "a JSON object": ({"why": ["x", None], "code": 7}, '{"code": 7, "why": ["x", null]}'),
    "a list": ([1, "two"], '[1, "two"]'),
    "rich markup": ("[/bold]", "[/bold]"),
    "mathtext": ("$\\foo$", "$\\foo$"),
    "HTML": ("<script>alert(1)</script>", "<script>alert(1)</script>"),
    "a lone surrogate": ("bad \ud800 code", "bad \\ud800 code"),
    "terminal escapes": ("\x1b[2J\x1b[31mred", "\\x1b[2J\\x1b[31mred"),
    "a very long string": ("9" * 5000, "9" * 199 + "…"),
}
TEXTS = {name: case for name, case in HOSTILE.items() if isinstance(case[0], str)}


def failed(code: Any, **fields: Any) -> dict[str, Any]:
    return {
        "provider": "chatapp",
        "agent": BUSINESS,
        "direction": "AGENT",
        "firstTime": T,
        "failedTime": T,
        "errorCode": code,
        **fields,
    }


def delivered(**fields: Any) -> dict[str, Any]:
    return {**failed(None), "failedTime": None, "deliveredTime": T, **fields}


def rendered(
    documents: list[dict[str, Any]], directory: Path, window: str = "2026-03-02"
) -> tuple[str, str, list[str]]:
    """What the terminal shows, the HTML page, and the texts of the page's chart."""
    report = Report(window, [T.date()], metrics.breakdown(documents, UTC))
    terminal = io.StringIO()
    console = Console(file=terminal, width=WIDE, color_system=None)
    for table in report.tables():
        console.print(to_rich(table))
    page, png = report.write(directory)
    assert png.read_bytes().startswith(b"\x89PNG")
    text = page.read_text(encoding="utf-8")
    return terminal.getvalue(), text, chart_texts(text)


def unwrapped(text: str) -> str:
    return "".join(text.split())


@pytest.mark.parametrize(("value", "shown"), HOSTILE.values(), ids=HOSTILE.keys())
def test_an_error_code_of_any_value_is_shown_as_text(
    value: Any, shown: str, tmp_path: Path
) -> None:
    terminal, page, chart = rendered([failed(value), failed(value)], tmp_path)
    assert row(terminal, shown) == [shown, "2"]
    assert f"<tr><td>{html.escape(shown)}</td><td>2</td></tr>" in page
    assert on_chart(shown, chart), chart


@pytest.mark.parametrize(("value", "shown"), HOSTILE.values(), ids=HOSTILE.keys())
def test_an_error_description_of_any_value_is_shown_as_text(
    value: Any, shown: str, tmp_path: Path
) -> None:
    terminal, page, chart = rendered([failed("131026", errorDescription=value)], tmp_path)
    assert row(terminal, f"131026 {shown}") == [f"131026 {shown}", "1"]
    assert f"<td>131026 {html.escape(shown)}</td>" in page
    assert on_chart(f"131026 {shown}", chart), chart


@pytest.mark.parametrize(("value", "shown"), HOSTILE.values(), ids=HOSTILE.keys())
def test_an_agent_and_a_provider_of_any_value_are_shown_as_text(
    value: Any, shown: str, tmp_path: Path
) -> None:
    terminal, page, _ = rendered([delivered(agent=value), delivered(provider=value)], tmp_path)
    by_agent = [cells[:4] for cells in rows(terminal) if len(cells) == 9]
    assert ["chatapp", shown, "0", "1"] in by_agent
    assert [shown, BUSINESS, "0", "1"] in by_agent
    assert f"<tr><td>chatapp</td><td>{html.escape(shown)}</td>" in page
    assert f"<tr><td>{html.escape(shown)}</td><td>{BUSINESS}</td>" in page


@pytest.mark.parametrize(("value", "shown"), TEXTS.values(), ids=TEXTS.keys())
def test_the_agent_asked_for_is_shown_as_text_in_the_titles(
    value: str, shown: str, tmp_path: Path
) -> None:
    """`--agent` is an argument: always a str, with undecodable bytes as lone surrogates."""
    days = (T, T + timedelta(days=1), UTC)
    expected = Window(*days).describe().replace("all agents", f"agent {shown}")
    terminal, page, chart = rendered(
        [failed("131026", agent=value)], tmp_path, Window(*days, value).describe()
    )
    assert unwrapped(f"Your messages: {expected}") in unwrapped(terminal)  # a title may wrap
    assert f"<p>{html.escape(expected)}</p>" in page
    assert on_chart(f"Receipts, {expected}", chart), chart


def test_an_error_code_is_shown_with_its_most_frequent_description(tmp_path: Path) -> None:
    incapable = "Receiver is incapable of receiving this message"
    documents = [
        *[failed("131026", errorDescription=incapable)] * 2,
        failed("131026", errorDescription="incapable"),
        failed("131026"),  # no description: the code's others still name it
        failed(131047, errorDescription="Re-engagement message"),
        failed("131047", errorDescription="Outside the 24-hour window"),  # a tie: text order
        failed(0),  # a code, not the absence of one
        failed(None),
        failed("131051"),
    ]
    shown = [
        [f"131026 {incapable}", "4"],
        ["131047 Outside the 24-hour window", "2"],
        ["(no code)", "1"],
        ["0", "1"],
        ["131051", "1"],
    ]
    for order in (documents, documents[::-1], documents[1::2] + documents[::2]):
        terminal, page, chart = rendered(order, tmp_path)
        failures = terminal.split("Failed deliveries by error code")[1]
        assert rows(failures) == shown
        assert f"<td>131026 {incapable}</td><td>4</td>" in page
        assert on_chart(f"131026 {incapable}", chart), chart


def test_only_the_totals_are_a_total_row(tmp_path: Path) -> None:
    terminal, page, _ = rendered([delivered(), failed("131026")], tmp_path)
    lines = terminal.splitlines()
    totals = [n for n, line in enumerate(lines) if line.startswith("│ all ")]
    assert len(totals) == 2  # your messages, users' messages: each below a rule
    assert all(lines[n - 1].startswith("├") for n in totals), terminal
    assert page.count("<tr class=total>") == 2  # your messages, users' messages
    assert "<tr class=total><td>all</td>" in page
    assert "<tr><td>131026</td><td>1</td></tr></tbody>" in page  # the last row, not a total


STORED = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(st.characters(exclude_categories=()))  # lone surrogates too
    | st.datetimes(timezones=st.just(UTC)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)
DOCUMENT = st.fixed_dictionaries(
    {"firstTime": st.just(T), "direction": st.sampled_from(["AGENT", "USER"])},
    optional={
        name: STORED
        for name in (*metrics.FIELDS, "agentReadReceipt")
        if name not in ("firstTime", "direction") and "." not in name
    },
)


@given(st.lists(DOCUMENT, max_size=6))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_stored_values_make_tables_of_plain_text(documents: list[dict[str, Any]]) -> None:
    report = Report("2026-03-02", [T.date()], metrics.breakdown(documents, UTC))
    console = Console(file=io.StringIO(), width=160, color_system=None)
    for table in report.tables():
        for cells in (*table.rows, *([table.total] if table.total else [])):
            for cell in cells:
                assert cell.isprintable(), cell
                cell.encode("utf-8")  # a lone surrogate cannot be written to the page
        console.print(to_rich(table))
