"""The faults tests script into the stand-in: error answers, slow answers, refused deletes.

Each scripted fault is used up by the first call it applies to. The services ask here before
they answer; queue names are resolved by the caller.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from tools.standins.alibaba.wire import Refusal


@dataclass(frozen=True)
class _ScriptedError:
    operations: frozenset[str]
    queue_name: str | None
    status: int
    code: str
    message: str

    def applies_to(self, operation: str, queue_name: str | None) -> bool:
        return operation in self.operations and self.queue_name in (None, queue_name)


@dataclass(frozen=True)
class _Delay:
    seconds: float
    operation: str | None

    def applies_to(self, operation: str) -> bool:
        return self.operation in (None, operation)


class FaultScript:
    def __init__(self, stopping: threading.Event) -> None:
        self._stopping = stopping  # set when the stand-in stops: a delay ends at once
        self._lock = threading.Lock()
        self._errors: deque[_ScriptedError] = deque()
        self._delays: deque[_Delay] = deque()
        self._rejected_deletes: dict[str, str] = {}

    def fail_next(
        self,
        operations: frozenset[str],
        queue_name: str | None,
        count: int,
        status: int,
        code: str,
        message: str,
    ) -> None:
        """The next `count` calls of these operations (on this queue, or any) are refused."""
        with self._lock:
            self._errors.extend(
                _ScriptedError(operations, queue_name, status, code, message) for _ in range(count)
            )

    def delay_next(self, seconds: float, count: int, operation: str | None) -> None:
        with self._lock:
            self._delays.extend(_Delay(seconds, operation) for _ in range(count))

    def reject_deletes(self, keys: Iterable[str], code: str) -> None:
        """The next delete of each message id or receipt handle fails with code, once."""
        with self._lock:
            for key in keys:
                self._rejected_deletes[key] = code

    def raise_scripted(self, operation: str, queue_name: str | None) -> None:
        """Raises the first scripted error for this call, if any, using it up."""
        with self._lock:
            for scripted in self._errors:
                if scripted.applies_to(operation, queue_name):
                    self._errors.remove(scripted)
                    raise Refusal(scripted.status, scripted.code, scripted.message)

    def wait_out_delay(self, operation: str) -> None:
        with self._lock:
            delay = next((d for d in self._delays if d.applies_to(operation)), None)
            if delay is not None:
                self._delays.remove(delay)
        if delay is not None:
            self._stopping.wait(delay.seconds)  # the stand-in playing a slow service

    def rejected_delete(self, message_id: str, handle: str) -> str | None:
        """The error code a delete of this message is scripted to fail with, used up."""
        with self._lock:
            return self._rejected_deletes.pop(message_id, None) or self._rejected_deletes.pop(
                handle, None
            )
