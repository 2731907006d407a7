"""`make report`: receipt metrics for a time window, as tables in the terminal and charts in a
self-contained HTML page and a PNG.

    python -m shared.ops.report [--since 2026-11-14] [--until 2026-11-21] [--agent AGENT]
                            [--timezone Europe/Paris] [--out DIR]

Reads each message document of the window once, projected to the fields the metrics use,
with one collection-group query on firstTime (the indexes are in terraform/firestore.tf);
nothing is counted at write time (docs/receipt-metrics-and-make-report.md). Works against
Google Cloud (Application Default Credentials, GOOGLE_CLOUD_PROJECT) or the emulator
(FIRESTORE_EMULATOR_HOST).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from google.cloud import firestore
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from shared.core.config import ConfigError, Env
from shared.core.metrics import FIELDS, Breakdown, MessageFacts, label
from shared.core.records import FIRST_TIME, MESSAGES
from shared.ops import report_render

DEFAULT_DAYS = 7
DEFAULT_OUT = Path(".local/report")
TABLE_WIDTH = 160


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime
    timezone: tzinfo
    agent: str | None = None

    def days(self) -> list[date]:
        first = self.since.astimezone(self.timezone).date()
        last = (self.until - timedelta(microseconds=1)).astimezone(self.timezone).date()
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]

    def describe(self) -> str:
        def local(moment: datetime) -> str:
            return moment.astimezone(self.timezone).strftime("%Y-%m-%d %H:%M")

        who = f", agent {label(self.agent)}" if self.agent else ", all agents"
        return f"{local(self.since)} to {local(self.until)} ({self.timezone}){who}"


def parse_window(argv: Sequence[str] | None, now: datetime | None = None) -> tuple[Window, Path]:
    parser = argparse.ArgumentParser(prog="make report", description=__doc__.splitlines()[0])
    parser.add_argument("--since", help="a date or ISO time (default: 7 days before --until)")
    parser.add_argument("--until", help="a date or ISO time, exclusive (default: now)")
    parser.add_argument(
        "--agent", help="only this agent (an RBM agent id, a BM agent name, a business number)"
    )
    parser.add_argument("--timezone", default="UTC", help="days begin at midnight here")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where files are written")
    args = parser.parse_args(argv)
    try:
        timezone: tzinfo = ZoneInfo(args.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        parser.error(f"unknown time zone {args.timezone!r}")
    try:
        until = _moment(args.until, timezone) if args.until else (now or datetime.now(UTC))
        week_before = (until - timedelta(days=DEFAULT_DAYS)).astimezone(timezone).date()
        since = (
            _moment(args.since, timezone)
            if args.since
            else datetime.combine(week_before, time(), timezone)  # whole days
        )
    except ValueError as bad:
        parser.error(str(bad))
    if since >= until:
        parser.error("--since must be before --until")
    return Window(since, until, timezone, args.agent or None), args.out


def _moment(text: str, timezone: tzinfo) -> datetime:
    """A date is its midnight; a time without an offset is in the report's time zone."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (2026-11-14) or ISO time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone)


# What the query filters on: terraform/firestore.tf declares the indexes for exactly these.
RANGE_FIELD = FIRST_TIME
EQUALITY_FIELD = "agent"


def message_query(db: firestore.Client, window: Window) -> firestore.Query:
    query = (
        db.collection_group(MESSAGES)
        .where(filter=firestore.FieldFilter(RANGE_FIELD, ">=", window.since))
        .where(filter=firestore.FieldFilter(RANGE_FIELD, "<", window.until))
    )
    if window.agent:
        query = query.where(filter=firestore.FieldFilter(EQUALITY_FIELD, "==", window.agent))
    return query


def read_breakdown(db: firestore.Client, window: Window, console: Console) -> Breakdown:
    """Streams the window's messages into the metrics, showing progress on a long read."""
    query = message_query(db, window)
    # A count aggregation costs one read per 1,000 entries: cheap, and it sizes the bar.
    counting: Any = query.count()  # typed as the class in google-cloud-firestore's stubs
    total = int(counting.get()[0][0].value)
    result = Breakdown(window.timezone)
    columns = (
        TextColumn("reading messages"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("read", total=total)
        for snapshot in query.select(FIELDS).stream():
            facts = MessageFacts.of(snapshot.to_dict() or {})
            if facts is not None:
                result.add(facts)
            progress.advance(task)
    return result


def main(argv: Sequence[str] | None = None) -> None:
    window, out = parse_window(argv)
    # Piped or captured output gets room for the tables rather than a wrapped 80 columns.
    console = Console(width=None if sys.stdout.isatty() else TABLE_WIDTH)
    env = Env()
    project = env.project()
    try:
        env.check("make report")
    except ConfigError as problem:
        sys.exit(str(problem))
    db = firestore.Client(project=project)
    result = read_breakdown(db, window, console)
    report = report_render.Report(window.describe(), window.days(), result)
    for table in report.tables():
        console.print(report_render.to_rich(table))
    html, png = report.write(out)
    console.print(Text(f"\ncharts: {html}\n        {png}"))  # a path is not markup


if __name__ == "__main__":
    main()
