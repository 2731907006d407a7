"""The analytics views (terraform/analytics/*.sql) on a local engine, and the report's numbers
beside theirs.

Each view's BigQuery SQL is parsed in BigQuery's dialect (errors raised), transpiled to DuckDB
and created over a table shaped like the rows the Pub/Sub BigQuery subscription writes with
write_metadata (subscription_name, message_id, publish_time, data, attributes). `numbers`
reads every view into the shape `report_numbers` gives `make report`'s Breakdown, so a test
compares the two with one assertion.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel

from shared.core.metrics import Breakdown, Distribution, Tally

VIEWS = Path(__file__).resolve().parent.parent / "terraform" / "analytics"
DATASET = "analytics"  # a DuckDB schema here; project.dataset in BigQuery
SUBSCRIPTION = "projects/local/subscriptions/receipt-pipeline-changes-bigquery"
# The views each view reads come first (terraform/changes.tf creates them in these layers).
BASE_VIEWS = ("events", "business_messages", "user_messages")
PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


def view_names() -> list[str]:
    files = sorted(path.stem for path in VIEWS.glob("*.sql"))
    return [*BASE_VIEWS, *(name for name in files if name not in BASE_VIEWS)]


def bigquery_sql(view: str, dataset: str = DATASET) -> str:
    """The view's query as Terraform's templatefile renders it (its only variable: dataset)."""
    template = (VIEWS / f"{view}.sql").read_text()
    if "%{" in template or "$${" in template:
        raise ValueError(f"{view}.sql holds a Terraform template directive")
    return PLACEHOLDER.sub(lambda match: {"dataset": dataset}[match.group(1)], template)


def duckdb_sql(view: str) -> str:
    tree = sqlglot.parse_one(bigquery_sql(view), read="bigquery", error_level=ErrorLevel.RAISE)
    return tree.transform(_bigquery_countif).sql(dialect="duckdb")


def _bigquery_countif(node: exp.Expression) -> exp.Expression:
    """BigQuery's COUNTIF is 0 over only NULL conditions, where DuckDB's COUNT_IF is NULL."""
    if isinstance(node, exp.CountIf):
        return exp.CountIf(this=exp.Coalesce(this=node.this, expressions=[exp.false()]))
    return node


def subscription_rows(
    events: Iterable[Mapping[str, Any]], redelivered: int = 1
) -> list[tuple[str, str, datetime, str, str]]:
    """The rows the BigQuery subscription writes for these events, in publish order; the first
    `redelivered` events are written a second time, later, as at-least-once delivery allows."""
    events = list(events)
    published = datetime(2026, 1, 1, tzinfo=UTC)
    deliveries = [*events, *events[:redelivered]]
    return [
        (
            SUBSCRIPTION,
            str(number),
            published + timedelta(milliseconds=number),
            json.dumps(event),
            json.dumps(
                {
                    "type": event["type"],
                    "provider": event["data"]["provider"],
                    "content-type": "application/cloudevents+json",
                }
            ),
        )
        for number, event in enumerate(deliveries, start=1)
    ]


class Warehouse:
    """An in-memory DuckDB with the subscription's table and every view."""

    def __init__(self) -> None:
        self.db = duckdb.connect()
        self.db.execute("SET TimeZone = 'UTC'")  # BigQuery's DATE(timestamp) is UTC's day
        self.db.execute(f"CREATE SCHEMA {DATASET}")
        self.db.execute(
            f"CREATE TABLE {DATASET}.changes (subscription_name VARCHAR, message_id VARCHAR,"
            " publish_time TIMESTAMPTZ, data VARCHAR, attributes JSON)"
        )
        for view in view_names():
            self.db.execute(f"CREATE VIEW {DATASET}.{view} AS {duckdb_sql(view)}")

    def load(self, events: Iterable[Mapping[str, Any]], redelivered: int = 1) -> None:
        self.insert(subscription_rows(events, redelivered))

    def insert(self, rows: Iterable[tuple[str, str, datetime, str, str]]) -> None:
        """Rows as the subscription writes them (name, message id, publish time, data,
        attributes)."""
        self.db.executemany("INSERT INTO analytics.changes VALUES (?, ?, ?, ?, ?)", list(rows))

    def rows(self, view: str) -> list[dict[str, Any]]:
        if view not in view_names():
            raise ValueError(f"no view {view!r} in {VIEWS}")
        cursor = self.db.execute(f"SELECT * FROM {DATASET}.{view}")  # noqa: S608 -- a view's file name
        columns = [column[0] for column in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


# --- The numbers both sides give --------------------------------------------------------


def _percentiles(distribution: Distribution) -> dict[str, Any]:
    return {
        "samples": distribution.count,
        "p50": distribution.p50,
        "p90": distribution.p90,
        "p99": distribution.p99,
    }


def _agent_numbers(tally: Tally) -> dict[str, Any]:
    metrics = tally.metrics()
    return {
        "delivered": metrics.delivered,
        "read": metrics.read,
        "failed": metrics.failed,
        "read_rate": metrics.read_rate,
        "time_to_read": _percentiles(metrics.time_to_read),
        "user_messages": metrics.user_messages,
        "agent_reads_sent": metrics.agent_reads_sent,
        "agent_reads_failed": metrics.agent_reads_failed,
        "agent_read_latency": _percentiles(metrics.agent_read_latency),
        # Without send records (no event carries them), no time to deliver is out of order.
        "out_of_order": metrics.out_of_order,
        "failures": {
            code: (count, metrics.error_descriptions.get(code))
            for code, count in metrics.failures.items()
        },
    }


def _counted(table: Mapping[Any, Mapping[str, Any]]) -> dict[Any, Mapping[str, Any]]:
    """The rows that count something: an agent or a day with only typing or sign-ins (or
    statuses no metric reads) is a row of zeros on one side and no row on the other."""
    return {key: row for key, row in table.items() if any(row[n] for n in _COUNTS if n in row)}


_COUNTS = ("delivered", "read", "failed", "user_messages")
_DAY_COUNTS = ("delivered", "read", "failed")


def report_numbers(result: Breakdown) -> dict[str, Any]:
    """What `make report` shows, per (provider, agent) and per day, that the views give too."""
    return {
        "agents": _counted({agent: _agent_numbers(t) for agent, t in result.agents.items()}),
        "days": _counted(
            {
                day: {key: getattr(tally.metrics(), key) for key in _DAY_COUNTS}
                for day, tally in result.days.items()
            }
        ),
    }


def _view_percentiles(row: Mapping[str, Any] | None) -> dict[str, Any]:
    if row is None:
        return _percentiles(Distribution())
    return {
        "samples": row["samples"],
        **{p: row[f"{p}_seconds"] for p in ("p50", "p90", "p99")},
    }


def numbers(warehouse: Warehouse) -> dict[str, Any]:
    """The views' numbers, in `report_numbers`' shape."""

    def by_agent(view: str) -> dict[tuple[str, str], dict[str, Any]]:
        return {(row["provider"], row["agent"]): row for row in warehouse.rows(view)}

    rates, reads, latencies = (
        by_agent("read_rate"),
        by_agent("time_to_read"),
        by_agent("agent_read_latency"),
    )
    failures: dict[tuple[str, str], dict[str, tuple[int, str | None]]] = {}
    for row in warehouse.rows("failures_by_error_code"):
        failures.setdefault((row["provider"], row["agent"]), {})[row["error_code"]] = (
            row["failures"],
            row["error_description"],
        )
    agents = {}
    for agent in sorted(rates.keys() | latencies.keys()):
        rate, latency = rates.get(agent, {}), latencies.get(agent, {})
        agents[agent] = {
            "delivered": rate.get("delivered", 0),
            "read": rate.get("read", 0),
            "failed": rate.get("failed", 0),
            "read_rate": rate.get("read_rate"),
            "time_to_read": _view_percentiles(reads.get(agent)),
            "user_messages": latency.get("user_messages", 0),
            "agent_reads_sent": latency.get("agent_reads_sent", 0),
            "agent_reads_failed": latency.get("agent_reads_failed", 0),
            "agent_read_latency": _view_percentiles(latency or None),
            "out_of_order": reads.get(agent, {}).get("out_of_order", 0)
            + latency.get("out_of_order", 0),
            "failures": failures.get(agent, {}),
        }
    days: dict[date, dict[str, int]] = {}
    for row in warehouse.rows("delivered_read_by_day"):
        day = days.setdefault(row["day"], dict.fromkeys(_DAY_COUNTS, 0))
        for key in day:
            day[key] += row[key]
    return {"agents": _counted(agents), "days": _counted(days)}
