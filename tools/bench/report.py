"""The benchmark's Markdown report: every figure beside its baseline, and the targets."""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tools.bench import prices
from tools.bench.measure import ColdStart, Cost, Drain, Settings, Throughput
from tools.bench.queues import QueueDrain
from tools.topology import ROOT, WEBHOOK

THROUGHPUT_TARGET = 0.8  # of the empty function's requests/s
COLD_START_TARGET = 1.5  # times the empty function's
QUEUE_DRAIN_TARGET = 0.5  # of the receive-and-delete loop's messages/s, persisted


@dataclass(frozen=True)
class Results:
    settings: Settings
    throughput: list[Throughput]
    cold_starts: list[ColdStart]
    costs: list[Cost]
    drain: list[Drain]
    queue_drain: list[QueueDrain] = field(default_factory=list)


def markdown(results: Results) -> str:
    sections = [
        _header(results.settings),
        _throughput(results.throughput),
        _cold_starts(results.cold_starts),
        _costs(results.costs),
        _drain(results.drain),
        _cost_model(results.costs, _webhook(results.throughput).load.rate),
        *([_queue_drain(results.queue_drain)] if results.queue_drain else []),
    ]
    return "\n\n".join(sections) + "\n"


def _header(settings: Settings) -> str:
    return (
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {_machine()}, commit {_commit()}; "
        f"{settings.load_seconds:g} s of load per server and round, {settings.rounds} rounds, "
        f"cold starts the median of {settings.cold_starts}."
    )


def _throughput(rows: list[Throughput]) -> str:
    empty, naive, webhook, unpublished = rows[:4]
    ratio = webhook.load.rate / empty.load.rate
    met = ratio >= THROUGHPUT_TARGET and webhook.load.rate > naive.load.rate
    return "\n".join(
        [
            "**1. Webhook throughput and latency, one instance** (functions-framework under "
            "gunicorn, 1 worker, THREADS threads, as many concurrent connections; a signed "
            "1-receipt push, acknowledged after the publish is confirmed)",
            "",
            _table(
                [
                    "server",
                    "THREADS",
                    "requests/s",
                    "vs empty",
                    "p50 ms",
                    "p99 ms",
                    "failed",
                    "p50 ms, one at a time",
                    "server CPU ms per request",
                    "vs empty, per CPU-second",
                    "Pub/Sub emulator CPU ms per request",
                ],
                [
                    [
                        row.server,
                        str(row.threads),
                        f"{row.load.rate:,.0f}",
                        f"{row.load.rate / empty.load.rate:.2f}x",
                        _ms(row.load.latencies.p50),
                        _ms(row.load.latencies.p99),
                        str(len(row.load.answers) - len(row.load.ok) + row.load.errors),
                        _ms(row.alone.latencies.p50) if row.alone else "",
                        f"{row.cpu_ms:.2f}",
                        f"{empty.cpu_ms / row.cpu_ms:.2f}x",
                        f"{row.pubsub_cpu_ms:.2f}",
                    ]
                    for row in rows
                ],
            ),
            "",
            f"Target: at least {THROUGHPUT_TARGET}x the empty function and above the naive "
            f"webhook: {_verdict(met)} ({ratio:.2f}x; "
            f"{webhook.load.rate / naive.load.rate:.2f}x the naive webhook). Without Pub/Sub "
            f"the webhook would reach {unpublished.load.rate / empty.load.rate:.2f}x: the rest "
            "of the gap is the Pub/Sub client's work per message. The webhook row and the "
            "THREADS row of the same setting are the same server measured side by side: "
            "their difference is this run's noise. *Per CPU-second*: requests per second of "
            "the server's own CPU time, what one instance would serve on a vCPU of its own "
            f"({webhook.cpu_ms:.2f} ms per request against "
            f"the empty function's {empty.cpu_ms:.2f}); here the load generator and the Pub/Sub "
            "emulator share the machine's cores with it, as in production they would not.",
        ]
    )


def _webhook(rows: list[Throughput]) -> Throughput:
    return rows[2]


def _cold_starts(rows: list[ColdStart]) -> str:
    empty = rows[0].seconds
    webhook = next(row for row in rows if row.function == WEBHOOK.target).seconds
    return "\n".join(
        [
            "**2. Cold start** (process start to the first successful response; subscribers "
            "answer a real push, which writes to Firestore)",
            "",
            _table(
                ["function", "seconds", "vs empty"],
                [
                    [row.function, f"{row.seconds:.2f}", f"{row.seconds / empty:.2f}x"]
                    for row in rows
                ],
            ),
            "",
            f"Target: the webhook at most {COLD_START_TARGET}x the empty function: "
            f"{_verdict(webhook / empty <= COLD_START_TARGET)} ({webhook / empty:.2f}x).",
        ]
    )


def _costs(rows: list[Cost]) -> str:
    one_commit = all(row.commits == 1 for row in rows)
    return "\n".join(
        [
            "**3. Cost per payload, counted** (from the recorder's and the webhook's logs)",
            "",
            _table(
                [
                    "payload",
                    "Firestore reads",
                    "writes",
                    "commits",
                    "writes per receipt",
                    "publishes",
                    "deliveries",
                    "invocations",
                    "Pub/Sub billed bytes",
                ],
                [
                    [
                        row.payload,
                        str(row.reads),
                        str(row.writes),
                        str(row.commits),
                        f"{row.writes / row.receipts:.2f}",
                        str(row.publishes),
                        str(row.deliveries),
                        str(row.invocations),
                        f"{row.pubsub_bytes:,}",
                    ]
                    for row in rows
                ],
            ),
            "",
            f"Target: one commit per payload: {_verdict(one_commit)}.",
        ]
    )


def _drain(rows: list[Drain]) -> str:
    plain = rows[0]
    return "\n".join(
        [
            "**4. End-to-end drain** (payloads of 10 receipts; until every receipt is persisted)",
            "",
            _table(
                ["path", "receipts", "seconds", "receipts/s", "vs plain loop"],
                [
                    [
                        row.path,
                        f"{row.receipts:,}",
                        f"{row.seconds:.1f}",
                        f"{row.receipts / row.seconds:,.0f}",
                        f"{row.seconds / plain.seconds:.2f}x the time",
                    ]
                    for row in rows
                ],
            ),
        ]
    )


def _queue_drain(rows: list[QueueDrain]) -> str:
    ceiling, pulled = rows
    persisted = pulled.persisted_seconds or float("inf")
    ratio = ceiling.seconds / persisted
    return "\n".join(
        [
            "**6. Chat App SMQ queue drain** (one status report per queue message, each from a "
            "stand-in of its own; the ceiling only receives and deletes, with as many threads "
            "as the puller's most pollers per queue)",
            "",
            _table(
                ["path", "messages", "queue empty, s", "persisted, s", "messages/s", "publishes"],
                [
                    [
                        row.path,
                        f"{row.messages:,}",
                        f"{row.seconds:.1f}",
                        "" if row.persisted_seconds is None else f"{row.persisted_seconds:.1f}",
                        f"{row.messages / (row.persisted_seconds or row.seconds):,.0f}",
                        f"{row.publishes:,}" if row.publishes else "",
                    ]
                    for row in rows
                ],
            ),
            "",
            f"Target: persisted at least {QUEUE_DRAIN_TARGET}x the ceiling's rate: "
            f"{_verdict(ratio >= QUEUE_DRAIN_TARGET)} ({ratio:.2f}x; the queue alone emptied at "
            f"{ceiling.seconds / pulled.seconds:.2f}x). CPU seconds used meanwhile, on the same "
            "two cores: "
            + ", ".join(f"{name} {used:.1f}" for name, used in pulled.cpu_seconds.items())
            + ".",
        ]
    )


def _cost_model(rows: list[Cost], webhook_rate: float) -> str:
    # A saturated webhook instance bills 1/rate seconds of its CPU and memory per request; a
    # request alone on an instance bills Cloud Run's minimum of 100 ms (every function here
    # has the webhook's 1 vCPU and 512 MiB).
    memory_gib = int(str(WEBHOOK.settings["memory"]).removesuffix("Mi")) / 1024
    instance_second = float(WEBHOOK.settings["cpu"]) * prices.VCPU_SECOND
    instance_second += memory_gib * prices.GIB_SECOND
    table_rows = []
    for row in rows:
        operations = [
            row.reads * prices.FIRESTORE_READ + row.writes * prices.FIRESTORE_WRITE,
            row.pubsub_bytes * prices.PUBSUB_PER_BYTE,
            row.invocations * prices.INVOCATION,
        ]
        saturated = instance_second / webhook_rate
        alone = row.invocations * prices.MINIMUM_BILLED_SECONDS * instance_second
        per_million = [part * 1_000_000 / row.receipts for part in [*operations, saturated, alone]]
        totals = (sum(per_million[:4]), sum(per_million[:3]) + per_million[4])
        table_rows.append(
            [row.payload, *(f"{p:,.2f}" for p in per_million), *(f"**{t:,.2f}**" for t in totals)]
        )
    return "\n".join(
        [
            "**5. Cost model, USD per million receipts** (counted operations times list prices "
            f"read on {prices.READ_PRICES_ON}; see `tools/bench/prices.py`)",
            "",
            _table(
                [
                    "payload",
                    "Firestore",
                    "Pub/Sub",
                    "invocations",
                    "webhook compute, saturated",
                    "compute, every request alone",
                    "total, busy",
                    "total, quiet",
                ],
                table_rows,
            ),
            "",
            f"Firestore: multi-region ${prices.FIRESTORE_READ * 100_000:.2f} per 100k reads, "
            f"${prices.FIRESTORE_WRITE * 100_000:.2f} per 100k writes. Pub/Sub: "
            f"${prices.PUBSUB_PER_BYTE * 2**40:.0f} per TiB, "
            f"{prices.PUBSUB_MINIMUM_BYTES:,} bytes at least per publish and per push. "
            f"Invocations: ${prices.INVOCATION * 1_000_000:.2f} per million. Compute: "
            f"${prices.VCPU_SECOND:.6f} per vCPU-s and ${prices.GIB_SECOND:.7f} per GiB-s of a "
            f"{WEBHOOK.settings['cpu']} vCPU, {WEBHOOK.settings['memory']}B instance; "
            "*busy*: the webhook instance saturated at the measured "
            "requests/s (the recorder's compute is left out: not measured per instance); "
            "*quiet*: every invocation alone on its instance, billed Cloud Run's 100 ms minimum.",
        ]
    )


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1000:.1f}"


def _verdict(met: bool) -> str:
    return "**met**" if met else "**missed**"


def _machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(
                line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores of {model}, Python {platform.python_version()}"


def _commit() -> str:
    result = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or "unknown"
