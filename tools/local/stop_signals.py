"""Ctrl-C and SIGTERM as the local tools take them.

The first SIGINT or SIGTERM raises in the main thread, wherever it is, so the clean-up runs;
any after it is ignored. That is all the handler does. One that takes a lock (`Event.set()`)
deadlocks when the signal lands while the main thread holds that lock in `Event.wait()`, and a
second signal is the rule, not the exception: GNU make forwards the SIGTERM it gets to its
child, which got its own from the same killpg.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequested(BaseException):
    """Raised by the first stop signal; a BaseException, so `except Exception` lets it through."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _RaiseOnce:
    """The handler: a plain flag, and a raise the first time."""

    def __init__(self) -> None:
        self.stopping = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping:
            return  # a repeat, or the stop is already under way
        self.stopping = True
        raise StopRequested(signum)


@contextlib.contextmanager
def stopping_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """Runs `stop` after the block however the block ends, the first SIGINT or SIGTERM
    included: the process then exits with 128 + the signal's number, as a shell reports a
    signal. Nothing interrupts `stop`: signals are ignored from then on."""
    handler = _RaiseOnce()
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)
    interrupted = False
    try:
        yield
    except StopRequested as request:
        interrupted = True
        raise SystemExit(128 + request.signum) from None
    finally:
        handler.stopping = True
        stop()
        if not interrupted:  # a process stopped by a signal ignores the others until it exits
            for sig, previous_handler in previous.items():
                signal.signal(sig, previous_handler)
