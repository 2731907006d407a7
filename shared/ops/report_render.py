"""The report's tables and charts: one set of rows for the terminal and the HTML page, and
one matplotlib figure saved as PNG and inlined in the page as SVG.

Agents, providers and error codes are stored values (`metrics.label`), so every renderer
shows them as text and never as its own markup: rich Text rather than markup strings,
escaped HTML, and matplotlib text with mathtext off.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter
from rich.table import Table as RichTable
from rich.text import Text

from shared.core.metrics import Breakdown, Distribution, Metrics, Tally, label

DELIVERED_COLOUR = "#9ecae1"
READ_COLOUR = "#3182bd"
RATE_COLOUR = "#e6550d"
AGENT_COLOUR = "#31a354"
FAILED_COLOUR = "#de2d26"
# Latency bins from seconds to days: receipts span all of them.
LATENCY_EDGES = (0, 10, 30, 60, 300, 900, 3600, 6 * 3600, 86400, float("inf"))
LATENCY_LABELS = ("<10s", "10-30s", "30s-1m", "1-5m", "5-15m", "15m-1h", "1-6h", "6-24h", ">1d")
CHART_LABEL_LIMIT = 48  # characters of an error code and its description beside a bar


LABEL_COLUMNS = frozenset({"provider", "agent", "day", "error code"})  # the rest are numbers


@dataclass(frozen=True)
class Table:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""
    total: tuple[str, ...] | None = None  # after the rows, in bold


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"


def spread(distribution: Distribution) -> str:
    """p50 / p90 / p99."""
    if not distribution.count:
        return "-"
    return " / ".join(duration(distribution.percentile(p)) for p in (50, 90, 99))


Cells = Callable[[Metrics], tuple[str, ...]]  # a table's numbers for one set of metrics


@dataclass(frozen=True)
class Report:
    window: str  # described for people
    days: Sequence[date]
    breakdown: Breakdown

    def tables(self) -> list[Table]:
        days = self._daily()
        total = self.breakdown.total.metrics()
        return [
            Table(
                f"Your messages: {self.window}",
                ("provider", "agent", "sent", "delivered", "read", "read rate",
                 "time to read p50 / p90 / p99", "time to deliver p50 / p90 / p99", "failed"),
                self._per_agent(_outbound),
                "sent: where the send time is known; delivered includes messages only READ. "
                f"{total.out_of_order} out-of-order durations left out.",
                total=self._all_agents(_outbound),
            ),
            Table(
                "Users' messages and the agent's READ receipts",
                ("provider", "agent", "user messages", "READ sent", "READ failed", "pending",
                 "READ latency p50 / p90 / p99"),
                self._per_agent(_inbound),
                total=self._all_agents(_inbound),
            ),
            Table(
                "By day",
                ("day", "delivered", "read", "read rate", "time to read p50 / p90 / p99",
                 "user messages", "agent READ p50 / p90 / p99"),
                tuple(
                    (day.isoformat(), str(m.delivered), str(m.read), percent(m.read_rate),
                     spread(m.time_to_read), str(m.user_messages), spread(m.agent_read_latency))
                    for day, m in days
                ),
            ),
            Table(
                "Failed deliveries by error code",
                ("error code", "messages"),
                tuple((error_label(code, total), str(count))
                      for code, count in total.failures.items())
                or (("none", "0"),),
            ),
        ]  # fmt: skip

    def _daily(self) -> list[tuple[date, Metrics]]:
        """Every day of the window, a day without messages included."""
        return [(day, self.breakdown.days.get(day, Tally()).metrics()) for day in self.days]

    def _per_agent(self, cells: Cells) -> tuple[tuple[str, ...], ...]:
        """A row per (provider, agent)."""
        return tuple(
            (provider, agent, *cells(tally.metrics()))
            for (provider, agent), tally in sorted(self.breakdown.agents.items())
        )

    def _all_agents(self, cells: Cells) -> tuple[str, ...]:
        """The totals row."""
        return ("all", "", *cells(self.breakdown.total.metrics()))

    def figure(self) -> Figure:
        figure = Figure(figsize=(13, 8.5), layout="constrained")  # no pyplot: no global state
        (funnel, to_read), (agent, failures) = figure.subplots(2, 2)
        figure.suptitle(f"Receipts, {self.window}", fontsize=13, parse_math=False)
        days = self._daily()
        total = self.breakdown.total.metrics()
        _funnel(funnel, days)
        _histogram(to_read, total.time_to_read, "Time from DELIVERED to READ", READ_COLOUR)
        _agent_latency(agent, days)
        _failures(failures, total)
        return figure

    def write(self, directory: Path) -> tuple[Path, Path]:
        """report.html (self-contained: tables and SVG charts) and report.png."""
        directory.mkdir(parents=True, exist_ok=True)
        figure = self.figure()
        png = directory / "report.png"
        figure.savefig(png, dpi=110)
        svg = io.StringIO()
        # Text as SVG text, not glyph outlines: the page's labels can be read, searched and
        # copied, and shown as the characters they are.
        with rc_context({"svg.fonttype": "none"}):
            figure.savefig(svg, format="svg")
        page = directory / "report.html"
        page.write_text(_page(self.window, self.tables(), svg.getvalue()), encoding="utf-8")
        return page, png


def error_label(code: str, metrics: Metrics) -> str:
    """An error code beside its meaning, where the provider published one:
    `131026 Receiver is incapable of receiving this message`."""
    description = metrics.error_descriptions.get(code)
    return f"{code} {description}" if description else code


def _outbound(m: Metrics) -> tuple[str, ...]:
    return (
        str(m.sent),
        str(m.delivered),
        str(m.read),
        percent(m.read_rate),
        spread(m.time_to_read),
        spread(m.time_to_deliver),
        str(m.failed),
    )


def _inbound(m: Metrics) -> tuple[str, ...]:
    return (
        str(m.user_messages),
        str(m.agent_reads_sent),
        str(m.agent_reads_failed),
        str(m.agent_reads_pending),
        spread(m.agent_read_latency),
    )


def to_rich(table: Table) -> RichTable:
    # Text, never a str: rich would read a stored "[/bold]" as its markup.
    rich = RichTable(
        title=Text(table.title),
        caption=Text(table.note) if table.note else None,
        title_justify="left",
    )
    for column in table.columns:
        words = column in LABEL_COLUMNS
        rich.add_column(
            Text(column), justify="left" if words else "right", no_wrap=not words, overflow="fold"
        )
    for row in table.rows:
        rich.add_row(*map(Text, row))
    if table.total is not None:
        rich.add_section()
        rich.add_row(*map(Text, table.total), style="bold")
    return rich


def _html_row(cells: tuple[str, ...], attributes: str = "") -> str:
    return f"<tr{attributes}>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = "".join(_html_row(row) for row in table.rows)
    if table.total is not None:
        body += _html_row(table.total, " class=total")
    note = f"<p class=note>{html.escape(table.note)}</p>" if table.note else ""
    return (
        f"<h2>{html.escape(table.title)}</h2><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>{note}"
    )


def _page(window: str, tables: list[Table], svg: str) -> str:
    chart = svg[svg.index("<svg") :]  # drop the XML prologue: the SVG sits inside HTML
    # The page runs and fetches nothing; its policy has the browser enforce that, should a
    # value ever get past the escaping.
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Receipt report: {html.escape(window)}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
th, td {{ padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: right; }}
th:first-child, td:first-child, th:nth-child(2), td:nth-child(2) {{ text-align: left; }}
tr.total td {{ font-weight: 600; }}
.note {{ color: #666; margin-top: -1em; }}
svg {{ max-width: 100%; height: auto; }}
</style></head><body>
<h1>Receipt report</h1><p>{html.escape(window)}</p>
{chart}
{"".join(_html_table(t) for t in tables)}
</body></html>
"""


def _funnel(axes: Axes, days: list[tuple[date, Metrics]]) -> None:
    positions = list(range(len(days)))
    width = 0.38
    for offset, name, colour in ((-1, "delivered", DELIVERED_COLOUR), (1, "read", READ_COLOUR)):
        counts = [getattr(m, name) for _, m in days]
        axes.bar(
            [p + offset * width / 2 for p in positions], counts, width, label=name, color=colour
        )
    axes.set_xticks(positions, [day.strftime("%a %d") for day, _ in days])
    axes.set_xlim(-0.7, len(days) - 0.3)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("your messages")
    axes.set_title("Delivered and read, by day", loc="left")
    rate = axes.twinx()
    rates = [_or_nan(m.read_rate) for _, m in days]
    rate.plot(positions, rates, color=RATE_COLOUR, marker="o", label="read rate")
    rate.set_ylim(0, 1.05)
    rate.yaxis.set_major_formatter(PercentFormatter(1.0))
    axes.set_ylim(0, max([m.delivered for _, m in days] + [1]) * 1.25)  # room for the legend
    handles = axes.get_legend_handles_labels()[0] + rate.get_legend_handles_labels()[0]
    axes.legend(handles=handles, loc="upper left", ncols=3, fontsize=9)


def _histogram(axes: Axes, distribution: Distribution, title: str, colour: str) -> None:
    counts = [0] * len(LATENCY_LABELS)
    for value in distribution.values:
        bucket = next(i for i in range(len(counts)) if value < LATENCY_EDGES[i + 1])
        counts[bucket] += 1
    axes.bar(LATENCY_LABELS, counts, color=colour)
    axes.set_title(title, loc="left")
    axes.set_ylabel("messages")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.tick_params(axis="x", labelsize=8)
    axes.set_xlabel(
        f"n={distribution.count}   p50 {duration(distribution.p50)}   "
        f"p90 {duration(distribution.p90)}   p99 {duration(distribution.p99)}"
    )


def _agent_latency(axes: Axes, days: list[tuple[date, Metrics]]) -> None:
    labels = [day.strftime("%a %d") for day, _ in days]
    for p, style in ((50, "-"), (90, "--")):
        values = [_or_nan(m.agent_read_latency.percentile(p)) for _, m in days]
        axes.plot(labels, values, style, marker="o", color=AGENT_COLOUR, label=f"p{p}")
    highest = max((m.agent_read_latency.p90 or 0 for _, m in days), default=0)
    axes.set_ylim(0, highest * 1.3 or 1)  # room for the legend
    axes.yaxis.set_major_formatter(FuncFormatter(lambda seconds, _: duration(seconds)))
    axes.set_title("Agent READ receipt latency (user message to READ), by day", loc="left")
    axes.legend(loc="upper left", ncols=2, fontsize=9)


def _failures(axes: Axes, total: Metrics) -> None:
    axes.set_title("Failed deliveries by error code", loc="left")
    if not total.failures:
        axes.text(0.5, 0.5, "no failed deliveries", ha="center", va="center")
        axes.set_axis_off()
        return
    # Bars at numbered positions with the labels as plain tick text: a categorical axis would
    # merge labels that were cut to the same text and read "$...$" as mathtext.
    positions = range(len(total.failures))
    axes.barh(positions, list(total.failures.values()), color=FAILED_COLOUR)
    labels = [label(error_label(code, total), CHART_LABEL_LIMIT) for code in total.failures]
    axes.set_yticks(positions, labels, parse_math=False)
    axes.invert_yaxis()  # the most frequent on top
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("messages")


def _or_nan(value: float | None) -> float:
    """A gap in a line chart where there is nothing to plot."""
    return math.nan if value is None else value
