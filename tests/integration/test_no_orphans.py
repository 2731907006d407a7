"""Nothing the local tools start outlives them: not after Ctrl-C, not after a SIGTERM to
`make local`'s whole process group (GNU make forwards a second one), not after a SIGKILL.

Each test snapshots every descendant of the process it signals (the servers in their own
sessions, gcloud's java, gunicorn's workers, the watchdog), then polls until none is alive.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests.shell import source_in_bash
from tools.local.groups import ProcessStat, descendants, process_stat, signal_group, still_running
from tools.local.main import ENV_FILE, STATE_FILE
from tools.local.procs import free_port, wait_until
from tools.local.stack import LocalStack
from tools.topology import FUNCTIONS, ROOT

pytestmark = pytest.mark.integration

READY_LINE = "Receipt pipeline running locally."
STARTUP_TIMEOUT = 120  # emulators and four servers on two shared cores
GONE_DEADLINE = 15.0  # SIGTERM, 5 s of grace, SIGKILL: well within this
WATCHDOG_ENDED = "is gone and left processes running: ended them"
STACK_VARIABLES = ("GOOGLE_CLOUD_PROJECT", "PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST")


class Started:
    """A process this test started in a session of its own, with its output in a file."""

    def __init__(self, command: Sequence[str], env: dict[str, str], output: Path) -> None:
        self.output = output
        self.command = " ".join(command)
        with output.open("wb") as sink:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._family: list[ProcessStat] = []

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_for(self, line: str, timeout: float = STARTUP_TIMEOUT) -> None:
        def printed() -> bool:
            assert self.process.poll() is None, f"exited early:\n{self.text()}"
            return line in self.text()

        wait_until(printed, timeout, f"{line!r} from {self.command}")

    def family(self) -> list[ProcessStat]:
        """The process and every descendant, remembered for the clean-up."""
        itself = process_stat(self.process.pid)
        assert itself is not None
        self._family = [itself, *descendants(self.process.pid)]
        return self._family

    def end(self) -> None:
        """The clean-up of a failed test: SIGKILL the groups of what is left of the family."""
        for survivor in still_running(self._family):
            signal_group(survivor.pgid, signal.SIGKILL)
        if self.process.poll() is None:
            signal_group(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


Start = Callable[[Sequence[str], dict[str, str]], Started]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """Starts processes in sessions of their own; SIGKILLs whatever of them a test leaves."""
    started: list[Started] = []

    def run(command: Sequence[str], env: dict[str, str]) -> Started:
        process = Started(command, env, tmp_path / f"output-{len(started)}.txt")
        started.append(process)
        return process

    yield run
    for process in started:
        process.end()


def seconds_until_gone(family: list[ProcessStat]) -> float:
    """From now until no process of `family` is alive; fails naming survivors at the deadline."""
    signalled = time.monotonic()
    deadline = signalled + GONE_DEADLINE
    while survivors := still_running(family):
        assert time.monotonic() < deadline, f"alive {GONE_DEADLINE:g} s after: {survivors}"
        time.sleep(0.05)
    return time.monotonic() - signalled


def seconds_to_end(started: Started, sig: signal.Signals, whole_group: bool = True) -> float:
    """Sends `sig` to the process (and its group), and times its whole family's end."""
    family = started.family()
    if whole_group:
        os.killpg(started.process.pid, sig)
    else:
        os.kill(started.process.pid, sig)
    seconds = seconds_until_gone(family)
    print(f"{sig.name}: {len(family)} processes gone {seconds:.2f} s after it")
    return seconds


def environment(local_dir: Path, **variables: str) -> dict[str, str]:
    """This test process's environment without the session stack's emulators (the stack's
    helpers put them in os.environ), plus these variables."""
    inherited = {k: v for k, v in os.environ.items() if k not in STACK_VARIABLES}
    return {
        **inherited,
        "PORT": str(free_port()),
        "RECEIPT_PIPELINE_LOCAL_DIR": str(local_dir),
        **variables,
    }


def sharing_emulators(stack: LocalStack, local_dir: Path) -> dict[str, str]:
    """`make local` on the session stack's emulators, in a project of its own: only its four
    servers start, so it is quick to start again and again."""
    return environment(
        local_dir,
        GOOGLE_CLOUD_PROJECT=f"no-orphans-{uuid.uuid4().hex[:8]}",
        PUBSUB_EMULATOR_HOST=stack.pubsub_host,
        FIRESTORE_EMULATOR_HOST=stack.firestore_host,
    )


@pytest.fixture
def local_dir(tmp_path: Path) -> Path:
    """Where the `make local` under test keeps its files: never a developer's .local."""
    return tmp_path / "local"


MAKE_LOCAL = ["make", "--no-print-directory", "local"]


def test_sigkill_of_make_local_leaves_no_survivor(start: Start, local_dir: Path) -> None:
    """With emulators of its own: gcloud and its java, four servers and their workers."""
    local = start([sys.executable, "-m", "tools.local"], environment(local_dir))
    local.wait_for(READY_LINE)
    names = [p.name for p in local.family()]
    assert names.count("java") == 2
    assert names.count("functions-frame") >= len(FUNCTIONS)

    seconds_to_end(local, signal.SIGKILL, whole_group=False)
    assert local.process.wait(5) == -signal.SIGKILL
    wait_until(lambda: WATCHDOG_ENDED in local.text(), 5, "the watchdog's report")


def test_ctrl_c_on_make_local_ends_everything(start: Start, local_dir: Path) -> None:
    """The terminal sends SIGINT to the whole foreground group: make and its python."""
    local = start(MAKE_LOCAL, environment(local_dir))
    local.wait_for(READY_LINE)
    assert [p.name for p in local.family()].count("java") == 2

    seconds_to_end(local, signal.SIGINT)
    local.process.wait(5)
    assert "stopping everything `make local` started" in local.text()


def test_sigterm_to_make_locals_group_ends_everything_every_time(
    start: Start, stack: LocalStack, local_dir: Path
) -> None:
    """What `timeout`, CI runners and supervisors send. make forwards a second SIGTERM to its
    child while the first is being handled: a race, so it is run several times."""
    for _ in range(5):
        local = start(MAKE_LOCAL, sharing_emulators(stack, local_dir))
        local.wait_for(READY_LINE)
        assert [p.name for p in local.family()].count("functions-frame") >= len(FUNCTIONS)

        seconds_to_end(local, signal.SIGTERM)
        local.process.wait(5)
        assert "stopping everything `make local` started" in local.text()


def test_make_local_writes_its_files_private_and_quoted(
    start: Start, stack: LocalStack, local_dir: Path
) -> None:
    local = start(MAKE_LOCAL, sharing_emulators(stack, local_dir))
    local.wait_for(READY_LINE)
    state_file, env_file = local_dir / STATE_FILE.name, local_dir / ENV_FILE.name
    described = json.loads(state_file.read_text())
    for path in (state_file, env_file):
        assert path.stat().st_mode & 0o777 == 0o600, path
    sourced = source_in_bash(env_file, STACK_VARIABLES)
    assert sourced == [described[name] for name in STACK_VARIABLES]

    seconds_to_end(local, signal.SIGTERM)
    assert not state_file.exists()
    assert not env_file.exists()


# The tools' other owners (`make demo`, `make bench`, pytest running the stack fixture) share
# make local's servers and watchdog; here is one that keeps none of their clean-up code.
OWNER = """
import sys, time
from pathlib import Path
from tools.local.procs import ManagedProcess
port, log_dir = sys.argv[1], Path(sys.argv[2])
# A server that forks, as gcloud forks java: the child stays in the server's group.
server = ManagedProcess(
    "forking-server",
    ["sh", "-c", f"sleep 600 & exec {sys.executable} -m http.server --bind 127.0.0.1 {port}"],
    dict,
    log_dir,
)
server.start(f"http://127.0.0.1:{port}/")
print("serving", flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_an_owner_that_dies_without_stopping_its_servers_leaves_no_survivor(
    start: Start, tmp_path: Path, sig: signal.Signals
) -> None:
    """SIGTERM with its default action, as pytest takes it: no `finally` runs."""
    owner = start(
        [sys.executable, "-c", OWNER, str(free_port()), str(tmp_path)], environment(tmp_path)
    )
    owner.wait_for("serving", timeout=30)
    names = [p.name for p in owner.family()]
    assert "sleep" in names
    assert "sh" not in names  # exec'd into the server

    seconds_to_end(owner, sig, whole_group=False)
    assert owner.process.wait(5) == -sig
    wait_until(lambda: WATCHDOG_ENDED in owner.text(), 5, "the watchdog's report")
