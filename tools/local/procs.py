"""Child processes that are started in their own process group and stopped by that id."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import requests


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
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            # A new session makes the child a process-group leader: stopping the group by its
            # id stops the child and its own children (gcloud forks java) and nothing else.
            self._process = subprocess.Popen(
                self._command,
                env=dict(self._environment()),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
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
        self.thaw()
        self._signal_group(signal.SIGKILL)
        self._reap(timeout=15)

    def freeze(self) -> None:
        """SIGSTOP: the server keeps its state and its connections but answers nothing."""
        self._signal_group(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal_group(signal.SIGCONT)

    def stop(self, timeout: float = 15) -> None:
        if self._process is None:
            return
        self.thaw()  # a frozen process cannot act on SIGTERM
        self._signal_group(signal.SIGTERM)
        if not self._reap(timeout):
            self._signal_group(signal.SIGKILL)
            self._reap(timeout)

    def _signal_group(self, sig: signal.Signals) -> None:
        if self._process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, sig)

    def _reap(self, timeout: float) -> bool:
        assert self._process is not None
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        # The group may outlive its leader (java under gcloud): wait for it to empty.
        pgid = self._process.pid
        try:
            wait_until(lambda: not _group_alive(pgid), timeout, f"{self.name} to exit")
        except TimeoutError:
            return False
        self._process = None
        return True


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU time of the live processes of a process group, from /proc (Linux)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # The command name (field 2) may hold spaces: the fields after its ")" are fixed.
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:  # field 5, the process group
                ticks += int(fields[11]) + int(fields[12])  # fields 14 and 15, utime and stime
    return ticks / os.sysconf("SC_CLK_TCK")
