"""What the stand-in's two services share: an answer, a refusal, and the log of calls."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Both services refuse a request whose time is further than this from their own clock.
ALLOWED_CLOCK_SKEW_SECONDS = 15 * 60


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str | None
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


class Refusal(Exception):
    """An error answer: the HTTP status, Alibaba's error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Call:
    operation: str
    queue_name: str | None
    status: int
    error_code: str | None
    signature_method: str | None = None  # token calls only: ACS3-HMAC-SHA256 or HMAC-SHA1


class CallLog:
    """Every call either service answered, in order: what tests read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[Call] = []

    def record(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)

    def matching(self, operation: str | None, queue_name: str | None) -> list[Call]:
        with self._lock:
            return [
                call
                for call in self._calls
                if operation in (None, call.operation) and queue_name in (None, call.queue_name)
            ]


def json_answer(status: int, document: Mapping[str, Any]) -> Answer:
    return Answer(status, "application/json;charset=utf-8", json.dumps(document).encode())


def request_id() -> str:
    return str(uuid.uuid4()).upper()
