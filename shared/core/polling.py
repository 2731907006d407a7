"""When a scheduled queue puller polls, waits, renews and stops (pure).

Cloud Scheduler starts a run every period and never two runs of one job at once: a run
still going delays the next. So a run long-polls until shortly before the next run is due
(its own schedule time, sent in X-CloudScheduler-ScheduleTime, plus the period), then
publishes and deletes what its last polls received in the hand-over left. The queue is
watched by one run at a time, all the time but for that hand-over.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from shared.core.config import Env

SCHEDULE_TIME_HEADER = "X-CloudScheduler-ScheduleTime"
# The Cloud Scheduler job runs the puller every minute ("* * * * *").
DEFAULT_PERIOD_SECONDS = 60.0
# Time kept after the last poll to publish and delete what it received: a healthy publish
# and delete take milliseconds, and a slower one only delays the next run, never doubles it.
LONGEST_HANDOVER_SECONDS = 2.0
# An empty queue costs at most one receive a second, even when it answers at once.
SHORTEST_EMPTY_POLL_SECONDS = 1.0
LONGEST_BACKOFF_SECONDS = 30.0
# Renew temporary credentials this long before they expire (at most half their lifetime).
RENEW_EARLY_SECONDS = 120.0
# Distinct problems one run reports at most: its log line stays short.
PROBLEMS_KEPT = 10


@dataclass(frozen=True)
class Schedule:
    period: float  # seconds between two scheduled runs

    @classmethod
    def from_env(cls, env: Env) -> Schedule:
        return cls(env.number("RUN_PERIOD_SECONDS", DEFAULT_PERIOD_SECONDS, minimum=1))

    @property
    def handover(self) -> float:
        return min(LONGEST_HANDOVER_SECONDS, self.period / 5)

    def stop_polling_at(self, schedule_time: str | None, now: float) -> float:
        """When this run stops polling, in epoch seconds.

        The schedule time counts only when it is this run's own: not in the future, and
        recent enough for the run to still have time to poll. A run started by hand, or
        one the scheduler delayed by more than that, polls for a whole period from now.
        """
        start = _epoch(schedule_time)
        if start is None or not now - self.period + self.handover < start <= now + 1:
            start = now
        return start + self.period - self.handover


def _epoch(rfc3339: str | None) -> float | None:
    if not rfc3339:
        return None
    try:
        parsed = datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.timestamp() if parsed.tzinfo is not None else None


def poll_wait(remaining: float, longest: int) -> int | None:
    """The whole seconds a receive may wait for messages; None when the run must stop."""
    if remaining <= 0:
        return None
    return min(longest, math.floor(remaining))


def rest_after_empty(asked_at: float, wait: int, now: float) -> float:
    """How long to pause after an empty answer: a queue may answer at once, before the wait
    it was given, and a poller must not then ask again in a tight loop."""
    return max(0.0, asked_at + max(wait, SHORTEST_EMPTY_POLL_SECONDS) - now)


def backoff(failures: int) -> float:
    """Seconds before trying again after this many failures in a row (1 s, 2 s, 4 s, ...)."""
    return min(LONGEST_BACKOFF_SECONDS, 2.0 ** max(0, failures - 1))


def pollers_change(received: int, batch_size: int, active: int, most: int) -> int:
    """+1 when a full batch says a backlog waits and there is room for another poller; -1
    when an empty answer finds more than one poller on the queue. An idle queue thus
    costs one waiting receive at a time, and a busy one gets up to `most` at once."""
    if received >= batch_size and active < most:
        return 1
    if received == 0 and active > 1:
        return -1
    return 0


def renew_at(issued_at: float, expires_at: float) -> float:
    """When to renew credentials valid from issued_at to expires_at (epoch seconds)."""
    return expires_at - min(RENEW_EARLY_SECONDS, max(0.0, expires_at - issued_at) / 2)


@dataclass(frozen=True)
class PullReport:
    """What one run of a queue puller did: counts for the log, and what went wrong."""

    counts: Mapping[str, int] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    @classmethod
    def combined(cls, reports: Iterable[PullReport]) -> PullReport:
        counts: Counter[str] = Counter()
        problems: list[str] = []
        for report in reports:
            counts.update(report.counts)
            problems += report.problems
        return cls(dict(counts), tuple(problems))


class PullTally:
    """A run's counts and problems, added to by every poller of every queue at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._problems: dict[str, None] = {}

    def add(self, **counts: int) -> None:
        with self._lock:
            self._counts.update(counts)

    def problem(self, description: str) -> None:
        with self._lock:
            if len(self._problems) < PROBLEMS_KEPT:
                self._problems[description] = None

    def report(self) -> PullReport:
        with self._lock:
            return PullReport(dict(self._counts), tuple(self._problems))
