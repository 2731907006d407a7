"""`make bench`: starts its own local stack, measures, writes and prints the report (to
.local/bench.md and, for a full run, docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tools.bench import latency, measure, queues, stream
from tools.bench.report import Results, markdown, page
from tools.local.stack import LocalStack, StackSettings, running
from tools.topology import ROOT

OUTPUT = ROOT / ".local" / "bench.md"
PAGE = ROOT / "docs" / "benchmarks.md"  # the latest full run, which docs/performance.md links
T = TypeVar("T")


def benchmark(stack: LocalStack, settings: measure.Settings) -> Results:
    measure.create_bench_topics(stack)
    return Results(
        settings=settings,
        throughput=_timed("throughput", measure.throughput, stack, settings),
        cold_starts=_timed("cold starts", measure.cold_starts, stack, settings),
        costs=_timed("counted cost", measure.costs, stack, settings),
        drain=_timed("drain", measure.drain, stack, settings),
        queue_drain=_timed("queue drain", queues.queue_drain, stack, settings),
        latency=_timed("latency", _latencies, stack, settings),
        stream=_timed("change stream", stream.stream, stack, settings),
    )


def _latencies(stack: LocalStack, settings: measure.Settings) -> latency.Latency:
    return latency.latencies(stack, settings.latency)


def _timed(
    section: str,
    measurement: Callable[[LocalStack, measure.Settings], T],
    stack: LocalStack,
    settings: measure.Settings,
) -> T:
    started = time.perf_counter()
    result = measurement(stack, settings)
    print(f"bench: {section} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tiny", action="store_true", help="seconds, not minutes: a smoke run")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--page", type=Path, default=PAGE, help="the docs' page (full runs)")
    arguments = parser.parse_args()
    settings = measure.TINY if arguments.tiny else measure.FULL
    with (
        tempfile.TemporaryDirectory(prefix="bench-") as work_dir,
        running(StackSettings(work_dir=Path(work_dir))) as stack,
    ):
        report = markdown(benchmark(stack, settings))
    # A smoke run's figures stand for nothing: only a full run replaces the page.
    written = publish(report, arguments.output, None if arguments.tiny else arguments.page)
    print(report)
    print(f"(written to {', '.join(str(path) for path in written)})")


def publish(report: str, output: Path, page_path: Path | None) -> list[Path]:
    """The report to `output`, and as the docs' page to `page_path` when given."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report)
    if page_path is None:
        return [output]
    page_path.write_text(page(report))
    return [output, page_path]
