"""A circuit breaker on publishing to Pub/Sub, for a puller whose every receive must be
published before it is deleted: while Pub/Sub fails, receiving more would only hand the same
messages out again and again (a queue counts each hand-out toward parking them)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from shared.adapters.publisher import PublishFailed
from shared.core import polling

log = logging.getLogger(__name__)


class PublishCircuitBreaker:
    """Closed while Pub/Sub confirms publishes. Once one fails it opens, and no poller
    receives until a probe (an empty batch, which the recorder records as nothing) is
    confirmed: one poller probes, with backoff, while the others wait."""

    def __init__(self, probe: Callable[[], object], clock: Callable[[], float] = time.time):
        self._probe = probe
        self._clock = clock
        self._changed = threading.Condition()
        self._failures = 0
        self._next_probe = 0.0
        self._probing = False

    def open(self) -> None:
        """A publish failed: stop receiving until a probe is confirmed."""
        with self._changed:
            if not self._failures:
                self._failures = 1
                self._next_probe = self._clock() + polling.backoff(1)

    def wait_closed(self, until: float) -> bool:
        """True once Pub/Sub is usable; False if it is not by `until` (epoch seconds)."""
        while True:
            with self._changed:
                while self._failures and not self._probe_is_mine():
                    now = self._clock()
                    if now >= until:
                        return False
                    wake = until if self._probing else min(until, self._next_probe)
                    self._changed.wait(max(0.0, wake - now))
                if not self._failures:
                    return True
            self._try_probe()

    def _probe_is_mine(self) -> bool:
        """Caller holds the lock: claims the next probe when it is due and nobody probes."""
        if self._probing or self._clock() < self._next_probe:
            return False
        self._probing = True
        return True

    def _try_probe(self) -> None:
        try:
            self._probe()
            confirmed = True
        except PublishFailed:
            confirmed = False
        with self._changed:
            self._probing = False
            self._failures = 0 if confirmed else self._failures + 1
            self._next_probe = self._clock() + polling.backoff(self._failures)
            self._changed.notify_all()
        log.log(
            logging.INFO if confirmed else logging.WARNING,
            "Pub/Sub probe %s",
            "confirmed: receiving again" if confirmed else "failed: not receiving",
        )
