"""Structured JSON logs on stdout, in the shape Cloud Logging parses (severity, message).

Callers pass identifiers only (conversation, message and request ids, kinds, counts):
never secrets, signatures or message text.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

_RESERVED = frozenset(vars(logging.makeLogRecord({})))


class CloudLoggingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _RESERVED})
        if record.exc_info:
            entry["stack_trace"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(CloudLoggingFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class RateLimit(logging.Filter):
    """Lets `burst` records through at once and `per_second` after that; the rest are dropped
    and counted, and the next record let through says how many (`suppressed`).

    For lines an outsider can cause (refused requests): a flood of them must not flood the
    logs, or the bill for them.
    """

    def __init__(
        self, per_second: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self._per_second = per_second
        self._burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()
        self._suppressed = 0
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._per_second)
            self._last = now
            if self._tokens < 1:
                self._suppressed += 1
                return False
            self._tokens -= 1
            if self._suppressed:
                record.suppressed = self._suppressed
                self._suppressed = 0
            return True
