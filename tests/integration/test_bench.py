"""`make bench` in a tiny configuration, so the benchmark cannot rot. Counts are asserted;
timings are not (they belong to `make bench`, as ratios, never to a test)."""

import pytest

from tools.bench import latency, measure
from tools.bench.latency import Load, Samples
from tools.bench.report import Results, markdown
from tools.bench.run import benchmark
from tools.local.stack import LocalStack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def results(stack: LocalStack) -> Results:
    return benchmark(stack, measure.TINY)


def test_the_benchmark_runs_and_counts_one_commit_per_payload(results: Results) -> None:
    assert [row.server for row in results.throughput] == [
        "empty function (ceiling)",
        "naive webhook (each publish alone)",
        "webhook",
        "webhook, publish confirmed at once (no Pub/Sub)",
        "webhook, WhatsApp POSTs (HMAC-SHA256)",
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
    assert all(row.cpu_seconds > 0 for row in results.cold_starts)
    by_payload = {row.payload: row for row in results.costs}
    providers = ("Business Messages", "Chat App", "WhatsApp")
    sizes = [(provider, n) for n in (1, 3, 10) for provider in providers]
    for provider, n in [*sizes, ("RCS Business Messaging", 1)]:
        row = by_payload[measure.payload_name(provider, n)]
        # each receipt onto its message: one read and one write per receipt, one commit
        assert (row.reads, row.writes, row.commits) == (n, n, 1)
        assert (row.publishes, row.deliveries, row.invocations) == (1, 1, 2)
    assert [row.receipts for row in results.drain] == [100, 100]
    ceiling, pulled = results.queue_drain
    assert (ceiling.messages, pulled.messages) == (100, 100)  # every one deleted and persisted
    assert pulled.persisted_seconds is not None
    assert 100 / 16 <= pulled.publishes < 100  # queue messages batched into Pub/Sub messages
    # The change stream: an event per new receipt, all of a delivery's in one publish request.
    assert results.stream is not None
    streamed = {row.payload: row for row in results.stream.costs}
    assert streamed.keys() == by_payload.keys()
    for events in streamed.values():
        assert (events.events, events.requests) == (events.receipts, 1), events
        assert events.billable_bytes >= 1000 * (1 + events.events)  # a publish, a push each

    report = markdown(results)
    headings = ("**1. Webhook", "**2. Cold start", "**3. Cost", "**4. End-to-end", "**5. Cost")
    later = ("**6. Chat App SMQ queue drain", "**7. End-to-end latency", "**8. Change stream")
    for heading in (*headings, *later):
        assert heading in report
    assert "at most 1 document write and at most 1 document read: **met**" in report
    assert "at most n writes and one commit: **met**" in report
    assert "per million one-receipt payloads, busy: **met**" in report
    assert "payloads to the busy figure: **met**" in report


def test_every_latency_sample_completes(results: Results) -> None:
    """Every payload of the tiny latency run, one at a time and from the open loop, reaches
    its end (readable in Firestore, or READ at the API); the floor's messages all arrive."""
    settings, result = measure.TINY.latency, results.latency

    lone = settings.lone_samples
    assert complete(result.reader, lone)
    assert complete(result.lone_floor, lone)
    assert complete(result.lone.acknowledged, 2 * lone)  # a receipt and a user message each
    assert complete(result.lone.receipt, lone)
    assert complete(result.lone.read, lone)
    assert result.push_concurrency >= 1
    assert result.probe.rate == settings.rate
    assert offered_in_full(result.probe, settings.probe_seconds)
    assert offered_in_full(result.steady, settings.load_seconds)
    assert complete(result.floor, round(result.steady.rate * settings.floor_seconds))
    assert set(result.steady.cpu) >= {"webhook", "record_events", "agent_read_receipts"}
    assert results.stream is not None  # a receipt until its change event reaches a consumer
    assert complete(results.stream.latency.event, lone)
    assert complete(results.stream.latency.floor, lone)


def complete(samples: Samples, count: int) -> bool:
    return len(samples.seconds) == count and samples.missing == 0


def offered_in_full(load: Load, seconds: float) -> bool:
    """Every payload sent and answered, every receipt readable and every READ arrived: one
    user message in USER_MESSAGE_EVERY payloads (the first), the others receipts."""
    payloads = round(load.rate * seconds)
    users = len(range(0, payloads, latency.USER_MESSAGE_EVERY))
    return (
        load.payloads == payloads
        and complete(load.paths.acknowledged, payloads)
        and complete(load.paths.receipt, payloads - users)
        and complete(load.paths.read, users)
    )
