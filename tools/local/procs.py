"""Child processes that are started in their own process group and stopped by that id.

Each is also in the care of this process's watchdog (`tools.local.watchdog`), which ends it
should this process die without stopping it.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path

import requests

from tools.local.groups import (
    STOP_GRACE_SECONDS,
    TERM_THEN_KILL,
    end_groups,
    group_cpu_seconds,
    live_groups,
    signal_group,
)
from tools.local.watchdog import owner_mark


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    condition: Callable[[], object], timeout: float, what: str, interval: float = 0.1
) -> object:
    """Polls until condition() is truthy; raises TimeoutError naming what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def answers_http(url: str) -> bool:
    """True once anything answers HTTP at url, whatever the status."""
    try:
        requests.get(url, timeout=1)
    except requests.RequestException:
        return False
    return True


class ManagedProcess:
    """One server process (and whatever it forks), logged to a file."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        environment: Callable[[], Mapping[str, str]],
        log_dir: Path,
    ) -> None:
        self.name = name
        self._command = list(command)
        self._environment = environment  # read at each start: settings may change in between
        self.log_path = log_dir / f"{name}.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, ready_url: str, timeout: float = 60, interval: float = 0.1) -> None:
        self.launch()
        self.await_ready(ready_url, timeout, interval)

    def launch(self) -> None:
        """Starts the process without waiting for it: several can then start at once."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            # A new session makes the child a process-group leader: stopping the group by its
            # id stops the child and its own children (gcloud forks java) and nothing else.
            self._process = subprocess.Popen(
                self._command,
                env={**self._environment(), **owner_mark()},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def await_ready(self, ready_url: str, timeout: float = 60, interval: float = 0.1) -> None:
        wait_until(lambda: self._ready(ready_url), timeout, f"{self.name} at {ready_url}", interval)

    def _ready(self, url: str) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self._process.returncode}; last log lines:\n"
                + self.tail()
            )
        return answers_http(url)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the processes alive in this group."""
        return 0.0 if self._process is None else group_cpu_seconds(self._process.pid)

    def kill(self) -> None:
        """SIGKILL, as a crashed instance: no clean-up runs."""
        stop_all([self], signals=(signal.SIGKILL,))

    def freeze(self) -> None:
        """SIGSTOP: the server keeps its state and its connections but answers nothing."""
        self._signal_group(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal_group(signal.SIGCONT)

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        stop_all([self], grace)

    def _signal_group(self, sig: signal.Signals) -> None:
        if self._process is not None:
            signal_group(self._process.pid, sig)

    def exited(self, live: Collection[int]) -> bool:
        """True once the process and its whole group have exited (java may outlive gcloud);
        `live` is what `live_groups()` found. Reaps the leader."""
        if self._process is None:
            return True
        if self._process.poll() is None or self._process.pid in live:
            return False
        self._process = None
        return True


def stop_all(
    processes: Iterable[ManagedProcess],
    grace: float = STOP_GRACE_SECONDS,
    signals: Sequence[signal.Signals] = TERM_THEN_KILL,
) -> None:
    """Stops these processes' groups together: SIGTERM, then SIGKILL after `grace`. One that
    outlives both stays known, so stopping it can be tried again."""
    running = {pid: p for p in processes if (pid := p.pid) is not None}

    def alive() -> set[int]:
        live = live_groups()
        return {pgid for pgid, process in running.items() if not process.exited(live)}

    end_groups(alive, grace, signals)
