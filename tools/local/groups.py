"""Processes as Linux shows them in /proc, and ending whole process groups.

Standard library only: the watchdog (`tools.local.watchdog`) runs on it alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
# Servers get this long to exit on SIGTERM before SIGKILL: an idle gunicorn or emulator needs
# one or two seconds, and Ctrl-C should still feel immediate.
STOP_GRACE_SECONDS = 5.0
TERM_THEN_KILL = (signal.SIGTERM, signal.SIGKILL)


@dataclass(frozen=True)
class ProcessStat:
    """The fields of /proc/<pid>/stat that the local tools use."""

    pid: int
    name: str  # the executable's name, at most 15 characters
    state: str  # R, S, D, T, Z (a zombie: dead, only waiting to be reaped), ...
    ppid: int
    pgid: int
    cpu_ticks: int  # user + system time
    started: int  # ticks after boot: with the pid, it names one process even if the pid is reused

    @property
    def alive(self) -> bool:
        return self.state not in ("Z", "X")


def parse_stat(pid: int, text: str) -> ProcessStat:
    # The name (field 2) may hold spaces and parentheses: the fields after its last ")" are fixed.
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 1 :].split()
    return ProcessStat(
        pid=pid,
        name=name,
        state=fields[0],  # field 3
        ppid=int(fields[1]),  # field 4
        pgid=int(fields[2]),  # field 5
        cpu_ticks=int(fields[11]) + int(fields[12]),  # fields 14 and 15
        started=int(fields[19]),  # field 22
    )


def process_stat(pid: int) -> ProcessStat | None:
    """None once the process is gone."""
    try:
        return parse_stat(pid, (PROC / str(pid) / "stat").read_text())
    except (OSError, ValueError, IndexError):
        return None


def pids() -> Iterator[int]:
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            yield int(entry.name)


def processes() -> list[ProcessStat]:
    return [stat for pid in pids() if (stat := process_stat(pid)) is not None]


def descendants(pid: int) -> list[ProcessStat]:
    """Every process below `pid`, whatever its session or group."""
    children: dict[int, list[ProcessStat]] = {}
    for stat in processes():
        children.setdefault(stat.ppid, []).append(stat)
    found: list[ProcessStat] = []
    parents = [pid]
    while parents:
        below = [child for parent in parents for child in children.get(parent, [])]
        found += below
        parents = [child.pid for child in below]
    return found


def still_running(snapshot: Sequence[ProcessStat]) -> list[ProcessStat]:
    """Those of `snapshot` that are still alive (the same process, not a reuse of its pid)."""
    return [
        then
        for then in snapshot
        if (now := process_stat(then.pid)) is not None and now.started == then.started and now.alive
    ]


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU time of the processes of a process group."""
    ticks = sum(stat.cpu_ticks for stat in processes() if stat.pgid == pgid)
    return ticks / os.sysconf("SC_CLK_TCK")


def live_groups() -> set[int]:
    """The process groups with a live process in them. A zombie does not count: it is dead, and
    an orphan's waits for init to reap it, which may take a second."""
    return {stat.pgid for stat in processes() if stat.alive}


def signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def end_groups(
    alive: Callable[[], set[int]],
    grace: float = STOP_GRACE_SECONDS,
    signals: Sequence[signal.Signals] = TERM_THEN_KILL,
    interval: float = 0.05,
) -> set[int]:
    """Sends each signal in turn to every group `alive()` names, all at once, and waits up to
    `grace` for them to be gone before the next; returns the groups left at the end.

    Stopping the groups together takes as long as the slowest one, not the sum. `alive` is asked
    again while waiting, so a group that appears meanwhile is signalled too.
    """
    remaining = alive()
    for sig in signals:
        signalled: set[int] = set()
        deadline = time.monotonic() + grace
        while remaining and time.monotonic() < deadline:
            for pgid in remaining - signalled:
                signal_group(pgid, signal.SIGCONT)  # a stopped process cannot act on SIGTERM
                signal_group(pgid, sig)
            signalled |= remaining
            time.sleep(interval)
            remaining = alive()
        if not remaining:
            break
    return remaining
