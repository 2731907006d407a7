"""A loopback stand-in for Meta's Graph API: WhatsApp's mark-as-read.

`POST /{version}/{phone_number_id}/messages` with `{"messaging_product": "whatsapp",
"status": "read", "message_id": <wamid>}` and `Authorization: Bearer <token>`, checked as
Meta documents it and answered as Meta does:
- a missing or wrong token: 401 `{"error": {"message", "type": "OAuthException", "code": 190,
  "fbtrace_id"}}`;
- a version the API does not serve: 400 code 2500 (unknown path components);
- a phone number id the token may not use: 400 code 100, subcode 33 (no such object);
- a body that is not JSON or not the documented request: 400 code 100; a message id that is
  no message the number received: 400 code 131009 (parameter value is not valid);
- otherwise 200 `{"success": true}`: the message and every earlier message of its
  conversation (phone number id + user) are read, as WhatsApp marks them.

Messages are known once `received` (or `received_body`, from a webhook body) names them, in
order. Faults can be scripted for the next calls: a Meta error code (rate limits 4, 80007,
130429 as HTTP 400; 131009; 190 as 401) or an HTTP status of 500 and up.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from tools.standins.loopback import LoopbackServer, send_json

CALLS_PATH = "/_standin/calls"
# Where a test or the demo tells the stand-in what Meta delivered: a webhook body it posted.
RECEIVED_PATH = "/_standin/received"
DEFAULT_VERSIONS = frozenset(f"v{major}.0" for major in range(20, 28))
RATE_LIMIT_CODES = frozenset({4, 80007, 130429})

_MESSAGES_PATH = re.compile(r"/(?P<version>[^/]+)/(?P<phone_number_id>[^/]+)/messages")
_REQUEST_FIELDS = frozenset({"messaging_product", "status", "message_id", "typing_indicator"})
_TITLES = {
    4: "Application request limit reached",
    80007: "Rate limit issues",
    130429: "Rate limit hit",
    131009: "Parameter value is not valid",
    131000: "Something went wrong",
    2: "Service temporarily unavailable",
}


@dataclass(frozen=True)
class GraphCall:
    """One mark-as-read call as the stand-in saw and answered it."""

    version: str
    phone_number_id: str
    message_id: str | None
    status: int
    code: int | None  # Meta's error code, None for a success
    injected: bool = False


@dataclass(frozen=True)
class Reply:
    status: int
    document: dict[str, Any]


class GraphApiStandIn(LoopbackServer):
    """The Graph API's mark-as-read on a loopback port.

    access_token: the one bearer token accepted.
    phone_number_ids: the business numbers the token may use; None accepts any.
    versions: the API versions served.
    """

    def __init__(
        self,
        access_token: str = "local-whatsapp-access-token",  # noqa: S107 -- a stand-in's
        *,
        phone_number_ids: Iterable[str] | None = None,
        versions: Iterable[str] = DEFAULT_VERSIONS,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.access_token = access_token
        self.versions = frozenset(versions)
        self._numbers = None if phone_number_ids is None else frozenset(phone_number_ids)
        self._changed = threading.Condition()
        self._calls: list[GraphCall] = []
        self._faults: deque[int] = deque()
        # (phone number id, user) -> its messages in the order received, and those read.
        self._conversations: dict[tuple[str, str], list[str]] = {}
        self._where: dict[tuple[str, str], tuple[str, str]] = {}  # (number, wamid) -> conv.
        self._read: set[tuple[str, str]] = set()  # (phone number id, wamid)
        super().__init__(_handler_for(self), host, port)

    # --- the world the API answers from -------------------------------------------------

    def received(self, phone_number_id: str, user: str, *message_ids: str) -> None:
        """The business number received these messages from the user, in this order."""
        with self._changed:
            conversation = self._conversations.setdefault((phone_number_id, user), [])
            for message_id in message_ids:
                if (phone_number_id, message_id) not in self._where:
                    conversation.append(message_id)
                    self._where[(phone_number_id, message_id)] = (phone_number_id, user)

    def received_body(self, body: bytes) -> None:
        """Every user message of a WhatsApp webhook body, as received by its number."""
        document = json.loads(body)
        for entry in document.get("entry", []):
            for change in entry.get("changes", []):
                value = change.get("value") or {}
                number = str((value.get("metadata") or {}).get("phone_number_id"))
                for message in value.get("messages") or []:
                    user = message.get("from") or message.get("from_user_id")
                    self.received(number, user, message["id"])

    def fail_next(self, *faults: int) -> None:
        """The next calls answer these: a Meta error code, or an HTTP status from 500 to 599."""
        with self._changed:
            self._faults.extend(faults)

    # --- what happened ------------------------------------------------------------------

    def calls(self) -> list[GraphCall]:
        with self._changed:
            return list(self._calls)

    def read_messages(self, phone_number_id: str, user: str) -> list[str]:
        """The conversation's messages that are read, in the order received."""
        with self._changed:
            conversation = self._conversations.get((phone_number_id, user), [])
            return [m for m in conversation if (phone_number_id, m) in self._read]

    def unread_messages(self, phone_number_id: str, user: str) -> list[str]:
        with self._changed:
            conversation = self._conversations.get((phone_number_id, user), [])
            return [m for m in conversation if (phone_number_id, m) not in self._read]

    def wait_for(self, ready: Callable[[list[GraphCall]], bool], timeout: float) -> list[GraphCall]:
        """Blocks until `ready(calls)` holds or the deadline passes (TimeoutError)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not ready(list(self._calls)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"waited {timeout}s for the calls; calls: {self._calls}")
                self._changed.wait(remaining)
            return list(self._calls)

    def summary(self) -> dict[str, Any]:
        return {"calls": [vars(call) for call in self.calls()]}

    # --- the contract -------------------------------------------------------------------

    def mark_read(self, path: str, authorization: str | None, body: bytes) -> Reply:
        match = _MESSAGES_PATH.fullmatch(path.split("?", 1)[0])
        if match is None:
            return _error(400, 2500, "Unknown path components", "OAuthException")
        version, number = match["version"], match["phone_number_id"]
        request = _json_object(body)
        message_id = request.get("message_id") if request is not None else None
        call = GraphCall(
            version, number, message_id if isinstance(message_id, str) else None, 0, None
        )
        if authorization != f"Bearer {self.access_token}":
            reply = _error(
                401, 190, "Invalid OAuth access token - Cannot parse access token", "OAuthException"
            )
            return self._record(call, reply)
        with self._changed:
            fault = self._faults.popleft() if self._faults else None
        if fault is not None:
            return self._record(call, _fault(fault), injected=True)
        return self._record(call, self._answer(call, request))

    def _answer(self, call: GraphCall, request: dict[str, Any] | None) -> Reply:
        if call.version not in self.versions:
            return _error(400, 2500, f"Unknown path components: /{call.version}", "OAuthException")
        if self._numbers is not None and call.phone_number_id not in self._numbers:
            message = (
                f"Unsupported post request. Object with ID '{call.phone_number_id}' does not "
                "exist, cannot be loaded due to missing permissions, or does not support this "
                "operation."
            )
            return _error(400, 100, message, "GraphMethodException", subcode=33)
        problem = _request_problem(request)
        if problem is not None:
            return _error(400, 100, f"(#100) {problem}", "OAuthException")
        with self._changed:
            where = self._where.get((call.phone_number_id, call.message_id or ""))
            if where is None:
                return _error(
                    400, 131009, "(#131009) Parameter value is not valid", "OAuthException"
                )
            conversation = self._conversations[where]
            upto = conversation.index(call.message_id or "") + 1
            self._read.update((call.phone_number_id, m) for m in conversation[:upto])
        return Reply(200, {"success": True})

    def _record(self, call: GraphCall, reply: Reply, *, injected: bool = False) -> Reply:
        error = reply.document.get("error")
        code = error.get("code") if isinstance(error, dict) else None
        with self._changed:
            self._calls.append(
                GraphCall(
                    call.version,
                    call.phone_number_id,
                    call.message_id,
                    reply.status,
                    code,
                    injected,
                )
            )
            self._changed.notify_all()
        return reply


def _request_problem(request: dict[str, Any] | None) -> str | None:
    if request is None:
        return "The request body is not a JSON object"
    unknown = sorted(set(request) - _REQUEST_FIELDS)
    if unknown:
        return f"Param {unknown[0]} is not a valid parameter"
    if request.get("messaging_product") != "whatsapp":
        return "The parameter messaging_product is required and must be whatsapp"
    if request.get("status") != "read":
        return "Param status must be read"
    if not isinstance(request.get("message_id"), str) or not request["message_id"]:
        return "The parameter message_id is required"
    return None


def _fault(fault: int) -> Reply:
    if fault == 190:
        return _error(
            401, 190, "Error validating access token: Session has expired", "OAuthException"
        )
    if 500 <= fault <= 599:  # an HTTP status; anything else is a Meta error code
        code = 131000 if fault == 500 else 2
        return _error(fault, code, _TITLES[code], "OAuthException")
    return _error(
        400, fault, f"(#{fault}) {_TITLES.get(fault, 'scripted failure')}", "OAuthException"
    )


def _error(status: int, code: int, message: str, kind: str, subcode: int | None = None) -> Reply:
    error: dict[str, Any] = {
        "message": message,
        "type": kind,
        "code": code,
        "fbtrace_id": secrets.token_urlsafe(15),
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return Reply(status, {"error": error})


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _handler_for(standin: GraphApiStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == RECEIVED_PATH:
                standin.received_body(body)
                send_json(self, 200, {"received": True})
                return
            reply = standin.mark_read(self.path, self.headers.get("Authorization"), body)
            send_json(self, reply.status, reply.document)

        def do_GET(self) -> None:
            if self.path == CALLS_PATH:
                send_json(self, 200, standin.summary())
            else:
                send_json(
                    self,
                    400,
                    _error(400, 2500, "Unknown path components", "OAuthException").document,
                )

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the tests read calls, not access logs

    return Handler
