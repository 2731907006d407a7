"""The benchmark's Markdown report: every figure beside its baseline, and the targets."""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tools.bench import firestore_reader, latency, prices, stream
from tools.bench.latency import Latency
from tools.bench.measure import ColdStart, Cost, Drain, Settings, Throughput
from tools.bench.queues import QueueDrain
from tools.topology import ROOT, WEBHOOK

THROUGHPUT_TARGET = 0.8  # of the empty function's requests/s
COLD_START_TARGET = 1.5  # times the empty function's
QUEUE_DRAIN_TARGET = 0.5  # of the receive-and-delete loop's messages/s, persisted
ONE_RECEIPT_BUSY_TARGET = 3.50  # USD per million one-receipt payloads, on a busy instance
# Counted on main at baa2772, before a receipt was recorded on its message: the receipt, its
# message and the conversation's lastActivityTime, each read first.
BEFORE_ONE_RECEIPT = Cost(
    payload="before (baa2772)",
    receipts=1,
    reads=3,
    writes=3,
    commits=1,
    publishes=1,
    deliveries=1,
    invocations=2,
    pubsub_bytes=2000,
)


@dataclass(frozen=True)
class Results:
    settings: Settings
    throughput: list[Throughput]
    cold_starts: list[ColdStart]
    costs: list[Cost]
    drain: list[Drain]
    latency: Latency
    queue_drain: list[QueueDrain] = field(default_factory=list)
    stream: stream.Stream | None = None


def markdown(results: Results) -> str:
    sections = [
        _header(results.settings),
        _throughput(results.throughput),
        _cold_starts(results.cold_starts),
        _costs(results.costs),
        _drain(results.drain),
        _cost_model(results.costs, _webhook(results.throughput).load.rate),
        *([_queue_drain(results.queue_drain)] if results.queue_drain else []),
        _latency(results.latency),
        *(
            [_stream(results.stream, results.costs, _webhook(results.throughput).load.rate)]
            if results.stream
            else []
        ),
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
    empty = rows[0]
    webhook = next(row for row in rows if row.function == WEBHOOK.target)
    ratio = webhook.seconds / empty.seconds
    return "\n".join(
        [
            "**2. Cold start** (process start to the first successful response: the webhook "
            "answers a signed push, which it publishes; subscribers answer a real push, which "
            "writes to Firestore)",
            "",
            _table(
                ["function", "seconds", "vs empty", "CPU seconds", "vs empty, CPU"],
                [
                    [
                        row.function,
                        f"{row.seconds:.2f}",
                        f"{row.seconds / empty.seconds:.2f}x",
                        f"{row.cpu_seconds:.2f}",
                        f"{row.cpu_seconds / empty.cpu_seconds:.2f}x",
                    ]
                    for row in rows
                ],
            ),
            "",
            f"Target: the webhook at most {COLD_START_TARGET}x the empty function: "
            f"{_verdict(ratio <= COLD_START_TARGET)} ({ratio:.2f}x; "
            f"{webhook.cpu_seconds / empty.cpu_seconds:.2f}x in CPU time, which the machine's "
            "other work does not stretch).",
        ]
    )


def _costs(rows: list[Cost]) -> str:
    ones = [row for row in rows if row.receipts == 1]
    one_each = all(row.reads <= 1 and row.writes <= 1 for row in ones)
    n_writes = all(row.writes <= row.receipts and row.commits == 1 for row in rows)
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
            "Targets: a one-receipt payload costs at most 1 document write and at most 1 "
            f"document read: {_verdict(one_each)} (at most "
            f"{max(row.writes for row in ones)} and {max(row.reads for row in ones)}); an "
            f"n-receipt payload at most n writes and one commit: {_verdict(n_writes)}.",
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
    table_rows = []
    for row in rows:
        parts, busy, quiet = _per_million(row, webhook_rate)
        table_rows.append(
            [row.payload, *(f"{p:,.2f}" for p in parts), f"**{busy:,.2f}**", f"**{quiet:,.2f}**"]
        )
    ones = [(row, *_per_million(row, webhook_rate)[1:]) for row in rows if row.receipts == 1]
    dearest, busy, quiet = max(ones, key=lambda one: one[1])
    _, before_busy, before_quiet = _per_million(BEFORE_ONE_RECEIPT, webhook_rate)
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
            f"Target: at most ${ONE_RECEIPT_BUSY_TARGET:.2f} per million one-receipt payloads, "
            f"busy: {_verdict(busy <= ONE_RECEIPT_BUSY_TARGET)} (${busy:.2f} for "
            f"{dearest.payload}, the dearest; quiet, ${quiet:.2f}).",
            "",
            _table(
                ["one-receipt payload", "Firestore reads", "writes", "total, busy", "total, quiet"],
                [
                    [
                        "before: receipt, message and conversation (main at baa2772)",
                        str(BEFORE_ONE_RECEIPT.reads),
                        str(BEFORE_ONE_RECEIPT.writes),
                        f"{before_busy:,.2f}",
                        f"{before_quiet:,.2f}",
                    ],
                    [
                        "now: the receipt on its message",
                        str(dearest.reads),
                        str(dearest.writes),
                        f"{busy:,.2f}",
                        f"{quiet:,.2f}",
                    ],
                ],
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
            "*quiet*: every invocation alone on its instance, billed Cloud Run's 100 ms minimum. "
            "*Before*: the operations counted on main before receipts moved onto their "
            "messages, priced the same way in this run.",
        ]
    )


def _per_million(row: Cost, webhook_rate: float) -> tuple[list[float], float, float]:
    """USD per million receipts: Firestore, Pub/Sub, invocations, the webhook's compute when
    saturated, compute with every request alone; then the busy and the quiet totals."""
    # A saturated webhook instance bills 1/rate seconds of its CPU and memory per request; a
    # request alone on an instance bills Cloud Run's minimum of 100 ms (every function here
    # has the webhook's 1 vCPU and 512 MiB).
    memory_gib = int(str(WEBHOOK.settings["memory"]).removesuffix("Mi")) / 1024
    instance_second = float(WEBHOOK.settings["cpu"]) * prices.VCPU_SECOND
    instance_second += memory_gib * prices.GIB_SECOND
    operations = [
        row.reads * prices.FIRESTORE_READ + row.writes * prices.FIRESTORE_WRITE,
        row.pubsub_bytes * prices.PUBSUB_PER_BYTE,
        row.invocations * prices.INVOCATION,
    ]
    saturated = instance_second / webhook_rate
    alone = row.invocations * prices.MINIMUM_BILLED_SECONDS * instance_second
    parts = [part * 1_000_000 / row.receipts for part in [*operations, saturated, alone]]
    return parts, sum(parts[:4]), sum(parts[:3]) + parts[4]


def _latency(result: Latency) -> str:
    probe, steady, settings = result.probe, result.steady, result.settings
    lone_floor, floor = result.lone_floor.distribution, result.floor.distribution
    lone, loaded = result.lone, steady.paths
    rows = [
        ("floor: a publish until its push arrives", result.lone_floor, result.floor),
        ("webhook: a request until its 200", lone.acknowledged, loaded.acknowledged),
        ("receipt: its request until readable in Firestore", lone.receipt, loaded.receipt),
        ("user message: its request until the agent READ arrives", lone.read, loaded.read),
        ("the reader: a write of its own until seen", result.reader, None),
    ]
    table_rows = []
    for name, one_at_a_time, at_load in rows:
        alone = one_at_a_time.distribution
        at_rate = at_load.distribution if at_load else None
        table_rows.append(
            [
                name,
                _ms(alone.p50),
                _ms(alone.p99),
                _times(alone.p50, lone_floor.p50),
                _ms(at_rate.p50) if at_rate else "",
                _ms(at_rate.p99) if at_rate else "",
                f"{_times(at_rate.p50, floor.p50)} / {_times(at_rate.p99, floor.p99)}"
                if at_rate
                else "",
                f"{alone.count:,} / {at_rate.count:,}" if at_rate else f"{alone.count:,}",
                str(one_at_a_time.missing + (at_load.missing if at_load else 0)),
            ]
        )
    in_flight = (
        f"{probe.in_flight:,} in flight when the last was sent, "
        f"{probe.in_flight / probe.rate:.1f} s of load"
    )
    if probe.kept_up:
        steady_because = f"it kept up ({in_flight}), so the steady load offered the same rate"
    else:
        steady_because = (
            f"it fell behind ({in_flight}): it completed {probe.throughput:.0f} payloads/s, "
            f"{probe.receipts_per_second:.0f} of them receipts, so the steady load offered "
            f"{latency.SUSTAINABLE_SHARE:.0%} of that"
        )
    receipts = probe.receipts_per_second
    per_receipt = result.push_concurrency / receipts if receipts else 0.0
    cpu_rows = [
        [name, f"{probe.cpu[name]:.2f}", f"{steady.cpu.get(name, 0.0):.2f}"] for name in probe.cpu
    ]
    cpu_rows.append(
        ["all of the machine", f"{sum(probe.cpu.values()):.2f}", f"{sum(steady.cpu.values()):.2f}"]
    )
    return "\n".join(
        [
            "**7. End-to-end latency** (RCS Business Messaging through the local stack: a "
            "DELIVERED receipt from the webhook's request until a reader in another process "
            "can read it in Firestore; a user message from its request until the agent READ "
            "arrives at the RBM API stand-in; the floor: the Pub/Sub emulator's own push, from "
            "a publish until it reaches an endpoint that does nothing)",
            "",
            _table(
                [
                    "path",
                    "one at a time: p50 ms",
                    "p99 ms",
                    "p50 vs floor",
                    f"at {steady.rate:g}/s: p50 ms",
                    "p99 ms",
                    "p50 / p99 vs floor",
                    "samples",
                    "missing",
                ],
                table_rows,
            ),
            "",
            f"*Load*: first {probe.rate:g} payloads/s for {settings.probe_seconds:g} s from an "
            f"open loop (one user message in {latency.USER_MESSAGE_EVERY}, the others receipts, "
            f"each from a user of its own): {steady_because}, {steady.rate:g}/s for "
            f"{settings.load_seconds:g} s: it {'kept up' if steady.kept_up else 'fell behind'} "
            f"({steady.in_flight:,} in flight when the last was sent). The generator sent "
            f"{steady.sent_rate:.1f}/s, each send at most {_ms(steady.lateness.p99)} ms late "
            "(p99), and the floor was offered the same rate. *The limit*: the emulator kept "
            f"at most {result.push_concurrency} pushes in flight to one subscription "
            f"({latency.HELD_MESSAGES} messages published at once to an endpoint that holds "
            f"each {latency.HOLD_SECONDS * 1000:.0f} ms), so a subscription delivers "
            f"{result.push_concurrency} / (its subscriber's time per message) a second: "
            f"{probe.receipts_per_second:.0f} receipts/s is {per_receipt * 1000:.0f} ms per "
            "receipt in the recorder, its Firestore read and commit on the emulator included. "
            "Pub/Sub itself pushes as many as the subscriber's instances take. *The floor*: "
            "the emulator pushes in cycles, and an idle subscription's message waits up to "
            f"~{latency.PUSH_CYCLE_SECONDS * 1000:.0f} ms for the next, which is most of the "
            "floor and of each path; lone samples start after pauses spread over one cycle. "
            "*The reader* reads the documents it waits for in one batch read every "
            f"{firestore_reader.POLL_INTERVAL * 1000:g} ms (not a snapshot listener: on the "
            "emulator one made each write cost ~30-60 ms of its CPU at 150 writes/s), so it "
            "adds at most one batch read to a latency; its own row is that, with the write. "
            "Latencies are also given as multiples of the floor measured in the same run: the "
            "machine's other work moves them together.",
            "",
            "CPU, in cores, while sending (the machine has "
            f"{os.cpu_count()}; *rest of the machine* is other work on it):",
            "",
            _table(
                ["process", f"at {probe.rate:g}/s", f"at {steady.rate:g}/s"],
                cpu_rows,
            ),
        ]
    )


def _stream(result: stream.Stream, costs: list[Cost], webhook_rate: float) -> str:
    busy = {row.payload: _per_million(row, webhook_rate)[1] for row in costs}
    rows = [
        [
            row.payload,
            str(row.events),
            str(row.requests),
            f"{row.event_bytes / row.events:,.0f}" if row.events else "",
            f"{row.billable_bytes:,}",
            f"{row.usd_per_million_receipts:,.3f}",
            f"{busy[row.payload]:,.2f}" if row.payload in busy else "",
            f"{busy[row.payload] + row.usd_per_million_receipts:,.2f}"
            if row.payload in busy
            else "",
        ]
        for row in result.costs
    ]
    dearest = max(
        (row for row in result.costs if row.receipts == 1),
        key=lambda row: row.usd_per_million_receipts,
    )
    added = dearest.usd_per_million_receipts
    event, floor = result.latency.event.distribution, result.latency.floor.distribution
    return "\n".join(
        [
            "**8. Change stream** (docs/change-stream.md: the events the recorder published "
            "for each payload of section 3, sent alone and pulled from a subscription of the "
            "bench's own; publish requests as the recorder counted them)",
            "",
            _table(
                [
                    "payload",
                    "events",
                    "publish requests",
                    "bytes per event",
                    "billed bytes: publish + a push per event",
                    "stream, USD per million receipts",
                    "total, busy (section 5)",
                    "busy, with the stream",
                ],
                rows,
            ),
            "",
            f"Target: the stream adds at most ${stream.TARGET:.2f} per million one-receipt "
            f"payloads to the busy figure: {_verdict(added <= stream.TARGET)} (${added:.3f} for "
            f"{dearest.payload}, the dearest). Priced at ${prices.PUBSUB_PER_BYTE * 2**40:.0f} "
            f"per TiB, at least {prices.PUBSUB_MINIMUM_BYTES:,} bytes per publish request and "
            "per push: one subscriber takes each event in a push of its own (a pull takes "
            "several at once, for less); each further subscriber adds its pushes again.",
            "",
            _table(
                [
                    "path, one at a time",
                    "p50 ms",
                    "p99 ms",
                    "p50 / p99 vs floor",
                    "samples",
                    "missing",
                ],
                [
                    [
                        "a receipt's webhook request until its event is pushed to a consumer",
                        _ms(event.p50),
                        _ms(event.p99),
                        f"{_times(event.p50, floor.p50)} / {_times(event.p99, floor.p99)}",
                        f"{event.count:,}",
                        str(result.latency.event.missing),
                    ],
                    [
                        "floor: a publish until its push arrives",
                        _ms(floor.p50),
                        _ms(floor.p99),
                        "",
                        f"{floor.count:,}",
                        str(result.latency.floor.missing),
                    ],
                ],
            ),
            "",
            "RCS Business Messaging DELIVERED receipts, each from a user of its own, through "
            "the webhook, Pub/Sub and the recorder, whose publish the consumer's push "
            "subscription then delivers: two pushes of the emulator's, against the floor's one.",
        ]
    )


def _times(value: float | None, floor: float | None) -> str:
    return f"{value / floor:.1f}x" if value is not None and floor else ""


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
