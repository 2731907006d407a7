"""A consumer of the change stream, as a business runs one: an HTTP endpoint that a Pub/Sub
push subscription delivers to, and the stream's JSON Schema every event is checked against."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from google.api_core.exceptions import NotFound
from google.cloud.pubsub_v1 import SubscriberClient
from jsonschema import Draft202012Validator

from tools.local.stack import LocalStack

SCHEMA = Path(__file__).resolve().parents[1] / "docs" / "changes.v1.schema.json"


@cache
def _validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def validate(event: dict[str, Any]) -> None:
    """Raises jsonschema.ValidationError unless the event is a valid change (version 1)."""
    _validator().validate(event)


@dataclass(frozen=True)
class Pushed:
    event: dict[str, Any]
    attributes: dict[str, str]
    message_id: str
    publish_time: datetime


class ChangeConsumer:
    """Collects every event pushed to it, in arrival order, and answers 204 (acknowledged)."""

    def __init__(self, stack: LocalStack, name: str) -> None:
        self._stack = stack
        self._lock = threading.Lock()
        self._pushed: list[Pushed] = []
        consumer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                envelope = json.loads(self.rfile.read(length))
                message = envelope["message"]
                pushed = Pushed(
                    json.loads(base64.b64decode(message["data"])),
                    dict(message.get("attributes") or {}),
                    str(message["messageId"]),
                    datetime.fromisoformat(message["publishTime"]),
                )
                with consumer._lock:
                    consumer._pushed.append(pushed)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:  # quiet: the test reads what it got
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._subscriber = SubscriberClient()
        self.subscription = self._subscriber.subscription_path(stack.settings.project, name)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def start(self) -> ChangeConsumer:
        self._thread.start()
        project = self._stack.settings.project
        with contextlib.suppress(NotFound):  # left by an earlier run
            self._subscriber.delete_subscription(subscription=self.subscription)
        self._subscriber.create_subscription(
            request={
                "name": self.subscription,
                "topic": f"projects/{project}/topics/{self._stack.settings.changes_topic}",
                "push_config": {"push_endpoint": self.url},
                "ack_deadline_seconds": 10,
            }
        )
        return self

    def stop(self) -> None:
        with contextlib.suppress(NotFound):
            self._subscriber.delete_subscription(subscription=self.subscription)
        self._subscriber.close()
        self._server.shutdown()
        self._server.server_close()

    def pushed(self) -> list[Pushed]:
        with self._lock:
            return list(self._pushed)

    def events(self) -> list[dict[str, Any]]:
        return [each.event for each in self.pushed()]
