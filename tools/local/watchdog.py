"""Ends every process this Python process started once it is gone, however it died (SIGKILL too).

The first process a tool starts also starts a watchdog: a small process in a session of its own
(out of reach of the Ctrl-C or the killpg meant for its owner), which ignores SIGINT, SIGTERM
and SIGHUP and waits on a pipe only its owner holds open. Every process the owner starts
carries the owner's token in its environment, and whatever it forks (gcloud's java, gunicorn's
workers) inherits it. When the pipe closes, because the owner exited or was killed, the watchdog
ends the process group of every live process that carries the token: SIGTERM, then SIGKILL.

Marks rather than a list of pids: nothing to register (so no moment when a started process is
not yet known), and a recycled pid never carries the token.

Standard library only, so that it starts fast and depends on nothing that could fail.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

from tools.local.groups import PROC, end_groups, pids, process_stat

OWNER_VARIABLE = "RECEIPT_PIPELINE_OWNER"
_ROOT = Path(__file__).resolve().parents[2]


def marked(environ: bytes, token: str) -> bool:
    """Whether a /proc/<pid>/environ (NUL-separated) carries this owner's token."""
    return f"{OWNER_VARIABLE}={token}".encode() in environ.split(b"\0")


def owned_groups(token: str) -> set[int]:
    """The process groups of the live processes that carry `token`."""
    groups = set()
    for pid in pids():
        try:
            environ = (PROC / str(pid) / "environ").read_bytes()
        except OSError:  # gone, or not ours to read
            continue
        stat = process_stat(pid)
        if stat is not None and stat.alive and marked(environ, token):
            groups.add(stat.pgid)
    return groups


class _Watchdog:
    """This process's watchdog, started with the first process it starts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._token: str | None = None
        self._process: subprocess.Popen[bytes] | None = None  # kept: no "still running" warning
        self._write_end: int | None = None  # held open, never written to

    def mark(self) -> dict[str, str]:
        with self._lock:
            if self._token is None:
                self._token = self._start()
            elif self._process is not None and self._process.poll() is not None:
                # It only ever exits after its owner: no process may start unwatched.
                raise RuntimeError(f"the watchdog exited with {self._process.returncode}")
            return {OWNER_VARIABLE: self._token}

    def _start(self) -> str:
        token = f"{os.getpid()}-{uuid.uuid4().hex}"
        # The write end is not inheritable: it closes when this process ends, and only then.
        read_end, self._write_end = os.pipe()
        # Not marked itself: the watchdog of an owner's own owner must leave it be.
        environment = {k: v for k, v in os.environ.items() if k != OWNER_VARIABLE}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tools.local.watchdog", token],
            stdin=read_end,
            stdout=subprocess.DEVNULL,
            cwd=_ROOT,
            env={**environment, "PYTHONPATH": str(_ROOT)},
            start_new_session=True,
        )
        os.close(read_end)
        return token


_WATCHDOG = _Watchdog()


def owner_mark() -> dict[str, str]:
    """The environment entry that puts a process in this process's care (starts the watchdog)."""
    return _WATCHDOG.mark()


def main() -> None:
    token = sys.argv[1]
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # only the owner's end may end the watchdog
    while os.read(sys.stdin.fileno(), 4096):
        pass  # nothing is ever written: this returns at the owner's end
    if not owned_groups(token):
        return  # the owner stopped everything itself, as it should
    left = end_groups(lambda: owned_groups(token))
    owner = token.split("-")[0]
    print(
        f"watchdog: process {owner} is gone and left processes running: "
        + (f"could not end the process groups {sorted(left)}" if left else "ended them"),
        file=sys.stderr,
        flush=True,
    )


if __name__ == "__main__":
    main()
