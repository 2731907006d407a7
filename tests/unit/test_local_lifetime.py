"""The local tools' small parts for stopping what they start, and for the files they leave."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.shell import source_in_bash
from tools.local.groups import end_groups, live_groups, parse_stat
from tools.local.main import shell_assignments, write_private
from tools.local.procs import wait_until
from tools.local.stop_signals import STOP_SIGNALS, stopping_on_signals
from tools.local.watchdog import OWNER_VARIABLE, marked

# --- signals -----------------------------------------------------------------------------


@pytest.fixture
def signal_handlers() -> Iterator[None]:
    """The tests below install handlers in pytest's own process: put pytest's back after."""
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    yield
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def interrupted_by(sig: signal.Signals) -> None:
    os.kill(os.getpid(), sig)
    wait_until(lambda: False, 5, f"{sig.name} to interrupt")  # the handler raises first


@pytest.mark.usefixtures("signal_handlers")
@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_the_first_stop_signal_stops_once_and_nothing_interrupts_the_stop(
    sig: signal.Signals, status: int
) -> None:
    stops = []

    def stop() -> None:
        # What `make local` meets: make forwards a second SIGTERM; an impatient user presses
        # Ctrl-C again.
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)  # the handler would have run by now
        stops.append(sig)

    with pytest.raises(SystemExit) as exited, stopping_on_signals(stop):
        interrupted_by(sig)
    assert exited.value.code == status
    assert stops == [sig]
    os.kill(os.getpid(), signal.SIGTERM)  # still ignored: the process is on its way out
    time.sleep(0.01)


@pytest.mark.usefixtures("signal_handlers")
def test_a_block_that_ends_by_itself_stops_and_restores_the_handlers() -> None:
    before = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    stops = []
    with stopping_on_signals(lambda: stops.append(True)):
        assert signal.getsignal(signal.SIGTERM) is not before[signal.SIGTERM]
    assert stops == [True]
    assert {sig: signal.getsignal(sig) for sig in STOP_SIGNALS} == before


@pytest.mark.usefixtures("signal_handlers")
def test_a_failing_block_is_stopped_and_its_error_kept() -> None:
    stops = []
    with pytest.raises(ZeroDivisionError), stopping_on_signals(lambda: stops.append(True)):
        _ = 1 / 0
    assert stops == [True]


# --- process groups ----------------------------------------------------------------------


def test_a_group_that_ignores_sigterm_gets_sigkill_after_the_grace() -> None:
    # An ignored signal stays ignored across exec: sleep ignores SIGTERM too.
    leader = subprocess.Popen(
        ["sh", "-c", "trap '' TERM; sleep 60 & echo ready; wait"],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert leader.stdout is not None
    assert leader.stdout.readline() == b"ready\n"  # SIGTERM is ignored from now on
    try:
        started = time.monotonic()
        left = end_groups(lambda: {leader.pid} if _alive(leader) else set(), grace=0.5)
        assert left == set()
        assert 0.5 <= time.monotonic() - started < 5
        assert leader.returncode == -signal.SIGKILL
    finally:
        if _alive(leader):
            os.killpg(leader.pid, signal.SIGKILL)
        leader.wait(5)


def _alive(leader: subprocess.Popen[bytes]) -> bool:
    return leader.poll() is None or leader.pid in live_groups()


def test_a_process_name_may_hold_spaces_and_parentheses() -> None:
    text = "4242 (a (b) c) S 1 4240 4240 0 -1 4194560 1 0 0 0 7 3 0 0 20 0 1 0 99 1 1"
    stat = parse_stat(4242, text)
    assert (stat.name, stat.state, stat.ppid, stat.pgid) == ("a (b) c", "S", 1, 4240)
    assert (stat.cpu_ticks, stat.started, stat.alive) == (10, 99, True)
    assert not parse_stat(4242, text.replace(") S ", ") Z ")).alive


def test_only_the_owners_exact_token_marks_a_process() -> None:
    environ = f"PATH=/bin\0{OWNER_VARIABLE}=123-abc\0HOME=/root\0".encode()
    assert marked(environ, "123-abc")
    assert not marked(environ, "123-ab")
    assert not marked(environ, "23-abc")
    assert not marked(b"", "123-abc")


# --- files -------------------------------------------------------------------------------

HOSTILE = {
    "SPACES": "a value with  spaces",
    "QUOTES": """it's "quoted" 'twice'""",
    "DOLLARS": "$HOME ${PATH} $(touch pwned) `touch pwned`",
    "ESCAPES": "back\\slash\\n and a real\nnewline\ttab",
    "STATEMENTS": "x; touch pwned; echo 'y' && exit 1 | cat > pwned",
    "GLOB": "* ? [a-z] ~",
    "EMPTY": "",
    "UNICODE": "café ☕ — ok",
}


def test_the_env_file_sources_back_to_exactly_its_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / "env"
    env_file.write_text(shell_assignments(HOSTILE))
    monkeypatch.chdir(tmp_path)  # where `touch pwned` would land
    assert source_in_bash(env_file, list(HOSTILE)) == list(HOSTILE.values())
    assert not (tmp_path / "pwned").exists()


def test_a_name_that_is_not_a_shell_variable_is_refused() -> None:
    with pytest.raises(ValueError, match="not a shell variable name"):
        shell_assignments({"A=B; touch pwned; C": "x"})


def test_private_files_are_created_0600_whatever_the_umask(tmp_path: Path) -> None:
    stale = tmp_path / "stack.json"
    stale.write_text("left by a killed run")
    stale.chmod(0o644)
    previous = os.umask(0)
    try:
        write_private(stale, '{"signingKey": "s3cret"}')
        write_private(tmp_path / "new" / "env", "A=b\n")
    finally:
        os.umask(previous)
    assert stale.read_text() == '{"signingKey": "s3cret"}'
    assert stale.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "new" / "env").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "stack.json"]  # no temp left
