"""`make bench` in a tiny configuration, so the benchmark cannot rot. Counts are asserted;
timings are not (they belong to `make bench`, as ratios, never to a test)."""

import pytest

from tools.bench import measure
from tools.bench.report import markdown
from tools.bench.run import benchmark
from tools.local.stack import LocalStack

pytestmark = pytest.mark.integration


def test_the_benchmark_runs_and_counts_one_commit_per_payload(stack: LocalStack) -> None:
    results = benchmark(stack, measure.TINY)

    assert [row.server for row in results.throughput] == [
        "empty function (ceiling)",
        "naive webhook (each publish alone)",
        "webhook",
        "webhook, publish confirmed at once (no Pub/Sub)",
    ]
    assert all(row.load.ok and not row.load.errors for row in results.throughput)
    assert all(row.alone and row.alone.ok for row in results.throughput)
    assert all(row.cpu_seconds > 0 for row in results.throughput)  # the server's own CPU
    webhook = results.throughput[2]
    assert webhook.pubsub_cpu_seconds > 0  # the emulator took its publishes
    assert [row.function for row in results.cold_starts] == [
        "empty",
        "webhook",
        "record_events",
        "agent_read_receipts",
        "drain_spool",
        "pull_queues",
    ]
    by_payload = {row.payload: row for row in results.costs}
    for n in (1, 3, 10):
        for provider in ("Business Messages", "Chat App"):
            row = by_payload[measure.payload_name(provider, n)]
            # each receipt onto its message: one read and one write per receipt, one commit
            assert (row.reads, row.writes, row.commits) == (n, n, 1)
            assert (row.publishes, row.deliveries, row.invocations) == (1, 1, 2)
    assert [row.receipts for row in results.drain] == [100, 100]
    ceiling, pulled = results.queue_drain
    assert (ceiling.messages, pulled.messages) == (100, 100)  # every one deleted and persisted
    assert pulled.persisted_seconds is not None
    assert 100 / 16 <= pulled.publishes < 100  # queue messages batched into Pub/Sub messages

    report = markdown(results)
    headings = ("**1. Webhook", "**2. Cold start", "**3. Cost", "**4. End-to-end", "**5. Cost")
    for heading in (*headings, "**6. Chat App SMQ queue drain"):
        assert heading in report
    assert "Target: one commit per payload: **met**" in report
