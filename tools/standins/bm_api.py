"""A loopback stand-in for the Business Messages API and Google's OAuth token endpoint.

It honours the real contract: the service-account key it issues points `token_uri` at it,
google-auth's real JWT-bearer flow signs an assertion that it verifies with the key's
public half (audience, scope; see google_oauth.py), and PATCH .../receipt needs a token it
issued with the businessmessages scope. Failures can be scripted per message to play outages.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

from shared.providers.bm.read_receipts import SCOPE
from tools.standins.google_oauth import ServiceAccountTokens
from tools.standins.loopback import LoopbackServer, send_json

RECEIPT_PATH = re.compile(
    r"/v1/conversations/(?P<conversation>[^/]+)/messages/(?P<message>[^/]+)/receipt"
)
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


@dataclass(frozen=True)
class ReceiptCall:
    conversation_id: str
    message_id: str
    status: int


class BusinessMessagesStandIn(LoopbackServer):
    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, tokens: ServiceAccountTokens | None = None
    ) -> None:
        self.tokens = tokens or ServiceAccountTokens()
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[int]] = defaultdict(deque)
        self._stalls: dict[str, float] = {}
        self.calls: list[ReceiptCall] = []
        super().__init__(_handler_for(self), host, port)

    @property
    def token_grants(self) -> int:
        return self.tokens.grants

    @property
    def token_uri(self) -> str:
        return f"{self.endpoint}/token"

    def write_key(self, path: Path) -> Path:
        """A service-account key file, as the Google Cloud console would download it."""
        path.write_text(json.dumps(self.tokens.key_info(self.token_uri)))
        path.chmod(0o600)
        return path

    def script(self, message_id: str, statuses: list[int]) -> None:
        """The next receipts for message_id answer these statuses, then 200 again."""
        with self._lock:
            self._scripts[message_id].extend(statuses)

    def stall(self, message_id: str, seconds: float) -> None:
        """The next receipt for message_id hangs, then fails (503), as a gateway timing out."""
        with self._lock:
            self._stalls[message_id] = seconds

    def heal(self, message_id: str) -> None:
        """Drops what is left of message_id's script: the API answers 200 again."""
        with self._lock:
            self._scripts.pop(message_id, None)

    def accepted(self) -> list[ReceiptCall]:
        with self._lock:
            return [call for call in self.calls if call.status == 200]

    def calls_for(self, message_id: str) -> list[ReceiptCall]:
        with self._lock:
            return [call for call in self.calls if call.message_id == message_id]

    # --- the contract -----------------------------------------------------------------

    def grant_token(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        return self.tokens.grant(form, required_scope=None)

    def update_receipt(
        self, path: str, authorization: str | None, body: bytes
    ) -> tuple[int, dict[str, Any]]:
        match = RECEIPT_PATH.fullmatch(path)
        if match is None:
            return _google_error(404)
        conversation_id, message_id = unquote(match["conversation"]), unquote(match["message"])
        with self._lock:
            stall = self._stalls.pop(message_id, None)
        if stall is not None:
            time.sleep(stall)  # the stand-in playing a hung API, not a synchronisation
            with self._lock:
                self.calls.append(ReceiptCall(conversation_id, message_id, 503))
            return _google_error(503)
        with self._lock:
            authorised = SCOPE in (self.tokens.scopes_of(authorization) or ())
            script = self._scripts.get(message_id)
            status = script.popleft() if script else 200
        if not authorised:
            status = 401
        else:
            try:
                request = json.loads(body)
            except ValueError:
                request = None
            if not isinstance(request, dict) or request.get("receiptType") != "READ":
                status = 400
        with self._lock:
            self.calls.append(ReceiptCall(conversation_id, message_id, status))
        if status != 200:
            return _google_error(status)
        name = f"conversations/{conversation_id}/messages/{message_id}/receipt"
        return 200, {"name": name, "receiptType": "READ"}

    def summary(self) -> dict[str, Any]:
        with self._lock:
            calls = [vars(call) for call in self.calls]
        return {"calls": calls, "tokenGrants": self.token_grants}


def _google_error(status: int) -> tuple[int, dict[str, Any]]:
    name = _STATUS_NAMES.get(status, "UNKNOWN")
    return status, {"error": {"code": status, "message": f"stand-in {name}", "status": name}}


def _handler_for(standin: BusinessMessagesStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path != "/token":
                self._reply(*_google_error(404))
                return
            form = parse_qs(self._body().decode(errors="replace"))
            self._reply(*standin.grant_token(form))

        def do_PATCH(self) -> None:
            self._reply(
                *standin.update_receipt(self.path, self.headers.get("Authorization"), self._body())
            )

        def do_GET(self) -> None:
            if self.path == "/_standin/calls":
                self._reply(200, standin.summary())
            else:
                self._reply(*_google_error(404))

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _reply(self, status: int, document: dict[str, Any]) -> None:
            send_json(self, status, document)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the tests read calls, not access logs

    return Handler
