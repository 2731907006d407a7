"""Receipt metrics from message documents (pure): counts, rates and latency percentiles.

A message document holds everything known about one message once, however many times its
receipts arrived and in whatever order (the recorder keeps the first time of each status and
never lowers the status), so counting documents counts each message once.

Definitions, per message, by the day of its `firstTime`:
- delivered: a DELIVERED receipt, or a READ (which implies it); read: a READ receipt;
  read rate = read / delivered.
- time to read: READ time - DELIVERED time; time to deliver: DELIVERED time - send time,
  where the send time is known. A negative duration (clocks of different senders) is left out
  and counted as out of order.
- user messages: what users said (not typing or sign-ins); agent READ latency: the agent's
  READ receipt time - the message's create time.
- percentiles by nearest rank: p50 of 1, 2, 3, 4 is 2.
- failures by error code, each with the provider's description of it (Chat App's
  errorDescription) where one was stored: the most frequent one for that code.

Documents hold what providers sent, so any field may have any type. A value the metrics show
(agent, provider, error code and description) becomes a `label`; a time that is not a time
counts as absent.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Any

from shared.core.events import AGENT, USER, USER_MESSAGE_KINDS
from shared.core.read_receipts import FAILED, FIELD, PENDING, SENT
from shared.core.records import FIRST_TIME

# The fields `MessageFacts.of` reads: the report's projection, so nothing else is fetched.
FIELDS = (
    "provider",
    "agent",
    "direction",
    "kind",
    FIRST_TIME,
    "sentTime",
    "deliveredTime",
    "readTime",
    "failedTime",
    "errorCode",
    "errorDescription",
    "createTime",
    f"{FIELD}.state",
    f"{FIELD}.sentTime",
)
NO_AGENT = "(none)"
NO_PROVIDER = "unknown"
UNKNOWN_ERROR = "(no code)"
LABEL_LIMIT = 200  # characters: a label is a table cell or a chart's tick, not a document


def label(value: Any, limit: int = LABEL_LIMIT) -> str:
    """Any stored value as one line of plain text that means only itself.

    Strings stay as they are and other types are written as JSON (131026, {"a": 1}), so
    different values keep different labels. Characters that a terminal, a file or a reader
    would act on rather than show (control characters such as ESC, line breaks, lone
    surrogates, which UTF-8 cannot encode, and bidirectional overrides) are written as Python
    escapes (\\x1b, \\ud800, \\u202e). Values longer than `limit` are cut, with an ellipsis.
    Markup (rich's [/bold], matplotlib's $\\foo$, HTML) is left to each renderer to show as text.
    """
    text = value if isinstance(value, str) else _json(value)
    if len(text) > limit:
        text = text[: limit - 1] + "\N{HORIZONTAL ELLIPSIS}"
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def _json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    except (TypeError, ValueError):  # keys of mixed types cannot be sorted
        return repr(value)


def _label_or(value: Any, absent: str) -> str:
    return absent if value is None or value == "" else label(value)


def _time(value: Any) -> datetime | None:
    """A stored time, or None for anything else (subtracting it would fail)."""
    return value if isinstance(value, datetime) and value.tzinfo is not None else None


@dataclass(frozen=True)
class MessageFacts:
    """What the metrics need from one message document."""

    provider: str
    agent: str
    direction: str
    first_time: datetime
    user_message: bool = False
    sent: datetime | None = None
    delivered: datetime | None = None
    read: datetime | None = None
    failed: datetime | None = None
    error_code: str = UNKNOWN_ERROR
    error_description: str = ""
    created: datetime | None = None
    agent_read_state: str | None = None
    agent_read_time: datetime | None = None

    @classmethod
    def of(cls, document: Mapping[str, Any]) -> MessageFacts | None:
        """None for a document the metrics cannot place in time (recorded before firstTime)."""
        first_time = _time(document.get(FIRST_TIME))
        if first_time is None:
            return None
        agent_read = document.get(FIELD)
        if not isinstance(agent_read, Mapping):
            agent_read = {}
        kind = document.get("kind")
        state = agent_read.get("state")
        return cls(
            provider=_label_or(document.get("provider"), NO_PROVIDER),
            agent=_label_or(document.get("agent"), NO_AGENT),
            direction=str(document.get("direction")),
            first_time=first_time,
            user_message=isinstance(kind, str) and kind in USER_MESSAGE_KINDS,
            sent=_time(document.get("sentTime")),
            delivered=_time(document.get("deliveredTime")),
            read=_time(document.get("readTime")),
            failed=_time(document.get("failedTime")),
            error_code=_label_or(document.get("errorCode"), UNKNOWN_ERROR),
            error_description=_label_or(document.get("errorDescription"), ""),
            created=_time(document.get("createTime")) or first_time,
            agent_read_state=state if isinstance(state, str) else None,
            agent_read_time=_time(agent_read.get("sentTime")),
        )


@dataclass(frozen=True)
class Distribution:
    """Durations in seconds, sorted."""

    values: tuple[float, ...] = ()

    @classmethod
    def of(cls, values: Iterable[float]) -> Distribution:
        return cls(tuple(sorted(values)))

    @property
    def count(self) -> int:
        return len(self.values)

    def percentile(self, p: float) -> float | None:
        if not self.values:
            return None
        return self.values[max(0, math.ceil(p / 100 * len(self.values)) - 1)]

    @property
    def p50(self) -> float | None:
        return self.percentile(50)

    @property
    def p90(self) -> float | None:
        return self.percentile(90)

    @property
    def p99(self) -> float | None:
        return self.percentile(99)


@dataclass(frozen=True)
class Metrics:
    sent: int = 0
    delivered: int = 0
    read: int = 0
    failed: int = 0
    time_to_deliver: Distribution = Distribution()
    time_to_read: Distribution = Distribution()
    out_of_order: int = 0
    user_messages: int = 0
    agent_reads_sent: int = 0
    agent_reads_failed: int = 0
    agent_reads_pending: int = 0
    agent_read_latency: Distribution = Distribution()
    failures: Mapping[str, int] = field(default_factory=dict)  # by error code, most first
    error_descriptions: Mapping[str, str] = field(default_factory=dict)  # codes that have one

    @property
    def read_rate(self) -> float | None:
        return self.read / self.delivered if self.delivered else None


@dataclass
class Tally:
    """Metrics accumulated one message at a time, so a long window streams."""

    counts: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    descriptions: dict[str, Counter[str]] = field(default_factory=dict)  # by error code
    durations: dict[str, list[float]] = field(default_factory=dict)

    def add(self, facts: MessageFacts) -> None:
        if facts.direction == AGENT:
            self._agent_message(facts)
        elif facts.direction == USER and facts.user_message:
            self._user_message(facts)

    def _agent_message(self, facts: MessageFacts) -> None:
        self.counts["sent"] += facts.sent is not None
        self.counts["delivered"] += facts.delivered is not None or facts.read is not None
        self.counts["read"] += facts.read is not None
        if facts.failed is not None:
            self.counts["failed"] += 1
            self.failures[facts.error_code] += 1
            if facts.error_description:
                seen = self.descriptions.setdefault(facts.error_code, Counter())
                seen[facts.error_description] += 1
        self._duration("time_to_deliver", facts.sent, facts.delivered)
        self._duration("time_to_read", facts.delivered, facts.read)

    def _user_message(self, facts: MessageFacts) -> None:
        self.counts["user_messages"] += 1
        state = facts.agent_read_state
        self.counts["agent_reads_sent"] += state == SENT
        self.counts["agent_reads_failed"] += state == FAILED
        self.counts["agent_reads_pending"] += state == PENDING
        if state == SENT:
            self._duration("agent_read_latency", facts.created, facts.agent_read_time)

    def _duration(self, name: str, start: datetime | None, end: datetime | None) -> None:
        if start is None or end is None:
            return
        seconds = (end - start).total_seconds()
        if seconds < 0:
            self.counts["out_of_order"] += 1
        else:
            self.durations.setdefault(name, []).append(seconds)

    def metrics(self) -> Metrics:
        count, duration = self.counts.__getitem__, self._distribution
        return Metrics(
            sent=count("sent"),
            delivered=count("delivered"),
            read=count("read"),
            failed=count("failed"),
            time_to_deliver=duration("time_to_deliver"),
            time_to_read=duration("time_to_read"),
            out_of_order=count("out_of_order"),
            user_messages=count("user_messages"),
            agent_reads_sent=count("agent_reads_sent"),
            agent_reads_failed=count("agent_reads_failed"),
            agent_reads_pending=count("agent_reads_pending"),
            agent_read_latency=duration("agent_read_latency"),
            failures=dict(_most_first(self.failures)),
            error_descriptions={
                code: _most_first(seen)[0][0] for code, seen in self.descriptions.items()
            },
        )

    def _distribution(self, name: str) -> Distribution:
        return Distribution.of(self.durations.get(name, ()))


def _most_first(counts: Counter[str]) -> list[tuple[str, int]]:
    """Most frequent first, ties in text order: the same documents always read the same,
    whatever order the query streamed them in."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


Agent = tuple[str, str]  # (provider, agent)


@dataclass
class Breakdown:
    """One window's metrics: in all, per (provider, agent), and per day."""

    timezone: tzinfo
    total: Tally = field(default_factory=Tally)
    agents: dict[Agent, Tally] = field(default_factory=dict)
    days: dict[date, Tally] = field(default_factory=dict)

    def add(self, facts: MessageFacts) -> None:
        day = facts.first_time.astimezone(self.timezone).date()
        for tally in (
            self.total,
            self.agents.setdefault((facts.provider, facts.agent), Tally()),
            self.days.setdefault(day, Tally()),
        ):
            tally.add(facts)


def breakdown(documents: Iterable[Mapping[str, Any]], timezone: tzinfo) -> Breakdown:
    result = Breakdown(timezone)
    for document in documents:
        facts = MessageFacts.of(document)
        if facts is not None:
            result.add(facts)
    return result
