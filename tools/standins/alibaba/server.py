"""The stand-in on one loopback port: routes each request to the token service, the queues or
the control path, and gathers what tests script and read.

Another process (`make demo` beside `make local`) enqueues as Alibaba would and reads the
counts over HTTP, under `/_standin/queues/{MessageType or queue}/messages` (POST a JSON
receipt, GET the counts).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from email.message import Message
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote

from tools.standins.alibaba.faults import FaultScript
from tools.standins.alibaba.queues import (
    DEFAULT_PRIORITY,
    EXPIRED_STS_MESSAGE,
    RECEIVES,
    JsonDocument,
    QueueCounts,
    Queues,
    mns_error,
)
from tools.standins.alibaba.token_service import DYBASEAPI_ACTION, StsCredentials, TokenService
from tools.standins.alibaba.wire import Answer, Call, CallLog, Refusal, json_answer
from tools.standins.loopback import LoopbackServer

CHAT_APP_MESSAGE_TYPES = ("ChatAppStatus", "ChatAppInbound", "ChatAppAudit")

_MESSAGES_PATH = re.compile(r"/queues/(?P<queue>[^/?]+)/messages")
_CONTROL_PATH = re.compile(r"/_standin/queues/(?P<queue>[^/?]+)/messages")


class AlibabaStandIn(LoopbackServer):
    """Dybaseapi's token call and the Chat App receipt queues, on one loopback port."""

    def __init__(
        self,
        *,
        access_key_id: str = "LTAI5tStandInAccessKey01",
        access_key_secret: str = "standin-access-key-secret",  # noqa: S107 -- made up, loopback only
        account_uid: str = "1234567890123456",
        message_types: Iterable[str] = CHAT_APP_MESSAGE_TYPES,
        token_lifetime_seconds: float = 3600,
        visibility_timeout_seconds: float = 30,
        polling_wait_seconds: int = 0,
        expiry_error_code: str = "AccessDenied",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        # MNS documents no code of its own for an expired STS token: 403 is all that is sure.
        self.expiry_error_code = expiry_error_code
        # Named as the Chat App console names the queue it creates for each MessageType.
        names = {kind: f"Alicom-Queue-{account_uid}-{kind}" for kind in message_types}
        self._stopping = threading.Event()
        self._calls = CallLog()
        self._faults = FaultScript(self._stopping)
        self._tokens = TokenService(
            access_key_id,
            access_key_secret,
            names,
            token_lifetime_seconds,
            self._faults,
            self._calls,
        )
        self._queues = Queues(
            names,
            self._tokens,
            self._faults,
            self._calls,
            self._stopping,
            visibility_timeout_seconds,
            polling_wait_seconds,
            expiry_error_code,
        )
        super().__init__(_handler_for(self), host, port)

    # --- running ------------------------------------------------------------------------

    @property
    def dybaseapi_endpoint(self) -> str:
        """host:port, as the POP client's Config(endpoint=..., protocol="http") takes it; the
        queue endpoint (`endpoint`) is the same server, as aliyun-mns-sdk's Account takes it."""
        return self.address

    def stop(self) -> None:
        self._stopping.set()
        self._queues.stop()  # long polls end now instead of at their deadline
        super().stop()

    # --- the queues, for tests -------------------------------------------------------------

    @property
    def queue_names(self) -> dict[str, str]:
        """MessageType -> queue name, as the Chat App console shows them."""
        return dict(self._queues.names)

    def queue_name(self, message_type: str) -> str:
        return self._queues.names[message_type]

    def enqueue(
        self, queue: str, receipt: JsonDocument | bytes, priority: int = DEFAULT_PRIORITY
    ) -> str:
        """One message, base64 on the wire as Alibaba sends it: JSON for an object or array,
        the bytes as they are otherwise. queue is a queue name or its MessageType."""
        return self._queues.enqueue(queue, receipt, priority)

    def enqueue_raw(self, queue: str, body: str, priority: int = DEFAULT_PRIORITY) -> str:
        """A message whose body goes on the wire exactly as given (no base64): poison tests."""
        return self._queues.enqueue_raw(queue, body, priority)

    def counts(self, queue: str) -> QueueCounts:
        return self._queues.counts(queue)

    def dequeue_count(self, message_id: str) -> int:
        return self._queues.dequeue_count(message_id)

    def pollers(self, queue: str) -> int:
        """Receives waiting right now for a message on this queue (long polls in progress)."""
        return self._queues.pollers(queue)

    def calls_for(self, operation: str | None = None, queue: str | None = None) -> list[Call]:
        return self._calls.matching(
            operation, None if queue is None else self._queues.resolve(queue)
        )

    @property
    def tokens_issued(self) -> list[StsCredentials]:
        return self._tokens.issued

    def issue_credentials(self, message_type: str) -> StsCredentials:
        """What a successful token call would return, without the call (for other layers' tests)."""
        return self._tokens.issue(message_type)

    # --- faults, for tests -------------------------------------------------------------------

    def expire_tokens(self) -> None:
        """Every token issued so far is expired from now on; new token calls get fresh ones."""
        self._tokens.expire_all()

    def expire_visibility(self, queue: str | None = None) -> None:
        """Every message in flight becomes visible now, as if its visibility timeout ran out."""
        self._queues.expire_visibility(queue)

    def expire_next_receives(self, count: int = 1, queue: str | None = None) -> None:
        """The next receives answer 403 as for an expired token, whatever token they carry."""
        self._fail_next_receives(count, queue, 403, self.expiry_error_code, EXPIRED_STS_MESSAGE)

    def fail_next_receives(
        self,
        count: int = 1,
        queue: str | None = None,
        status: int = 500,
        code: str = "InternalError",
        message: str = "Internal error.",
    ) -> None:
        """The next receives fail at once. status=404, code="MessageNotExist" plays SMQ
        refusing a long poll over its concurrency limit, which it answers without waiting."""
        self._fail_next_receives(count, queue, status, code, message)

    def fail_next_token_calls(
        self, count: int = 1, status: int = 503, code: str = "ServiceUnavailable"
    ) -> None:
        self._faults.fail_next(
            frozenset({DYBASEAPI_ACTION}), None, count, status, code, "The stand-in is down."
        )

    def delay_next(self, seconds: float, count: int = 1, operation: str | None = None) -> None:
        """The next calls (of one operation, or any) are answered only after seconds."""
        self._faults.delay_next(seconds, count, operation)

    def reject_deletes(
        self,
        *,
        message_ids: Iterable[str] = (),
        receipt_handles: Iterable[str] = (),
        code: str = "ReceiptHandleError",
    ) -> None:
        """The next delete of each of these messages (or handles) fails with code, once;
        a batch delete then answers 404 with that handle's <Error> and deletes the rest."""
        self._faults.reject_deletes((*message_ids, *receipt_handles), code)

    def _fail_next_receives(
        self, count: int, queue: str | None, status: int, code: str, message: str
    ) -> None:
        name = None if queue is None else self._queues.resolve(queue)
        self._faults.fail_next(RECEIVES, name, count, status, code, message)

    # --- the contract: one request in, one answer out -----------------------------------------

    def answer(self, method: str, target: str, headers: Message, body: bytes) -> Answer:
        path = target.partition("?")[0]
        if path == "/":
            return self._tokens.answer(method, target, headers, body)
        control = _CONTROL_PATH.fullmatch(path)
        if control is not None:
            return self._answer_control(method, unquote(control["queue"]), body)
        match = _MESSAGES_PATH.fullmatch(path)
        if match is None:
            refusal = Refusal(400, "InvalidRequestURL", "Http request URL format invalid.")
            return mns_error(refusal, headers)
        return self._queues.answer(method, target, unquote(match["queue"]), headers, body)

    def _answer_control(self, method: str, queue: str, body: bytes) -> Answer:
        """For another process: enqueue a receipt (POST its JSON), or read the counts (GET)."""
        if not self._queues.holds(queue):
            return json_answer(404, {"error": f"no queue {queue}"})
        if method == "POST":
            return json_answer(201, {"MessageId": self.enqueue(queue, body)})
        return json_answer(200, vars(self.counts(queue)))


def _handler_for(standin: AlibabaStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # Keep-alive, as both services allow: aliyun-mns-sdk reuses one connection.
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            answer = standin.answer(method, self.path, self.headers, body)
            self.send_response(answer.status)
            for name, value in answer.headers:
                self.send_header(name, value)
            if answer.content_type is not None:
                self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the tests read calls_for(), not access logs

    return Handler
