"""A loopback stand-in for the RCS Business Messaging API's agent events and Google's OAuth
token endpoint.

`POST /v1/phones/{E.164}/agentEvents?eventId={UUID}&agentId={id}` is checked as the RBM
reference documents it (phones.agentEvents.create): a bearer token from the token endpoint,
the rcsbusinessmessaging scope, a bare agent id, an RFC 4122 eventId, a READ naming the
user's messageId; 404 NOT_FOUND for a user without RCS, 403 PERMISSION_DENIED for an
unlaunched agent and a non-tester; a reused eventId is ignored. The token endpoint is the
real JWT-bearer flow: the service-account key it writes points `token_uri` here, and it
verifies the assertion google-auth signs with that key.

Where Google documents nothing, the choice is explicit and can be switched (see
`RbmApiStandIn.__init__`): what a reused eventId answers, whether a wrong scope fails at the
token endpoint or at the API. Failures (429, 5xx, slow answers) can be scripted for the
next calls or for one (phone, messageId).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from tools.standins.google_oauth import ServiceAccountTokens
from tools.standins.loopback import LoopbackServer

SCOPE = "https://www.googleapis.com/auth/rcsbusinessmessaging"
AGENT_SUFFIX = "@rbm.goog"
EVENT_TYPES = frozenset({"READ", "IS_TYPING"})
TOKEN_PATH = "/token"  # noqa: S105 - a URL path, not a secret
CALLS_PATH = "/_standin/calls"

DuplicateAnswer = Literal["same", "conflict"]
ScopeCheck = Literal["api", "token"]

_AGENT_EVENTS_PATH = re.compile(r"/v1/phones/(?P<phone>[^/]+)/agentEvents")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
# AgentEvent's fields; name and sendTime are output only but still known to the parser.
_AGENT_EVENT_FIELDS = frozenset({"eventType", "messageId", "name", "sendTime"})
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


@dataclass(frozen=True)
class Stall:
    """A slow answer: the call waits `seconds`, then answers `then`, or, when `then` is None,
    goes on as usual, so a client that timed out has in fact created the event."""

    seconds: float
    then: int | None = None


Outcome = int | Stall


@dataclass(frozen=True)
class AgentEventCall:
    """One agentEvents.create call as the stand-in saw and answered it."""

    phone: str
    agent_id: str | None
    event_id: str | None
    event_type: str | None
    message_id: str | None
    received: float  # time.monotonic() on arrival (on Linux one clock for every process)
    status: int
    duplicate: bool = False
    injected: bool = False


@dataclass(frozen=True)
class Reply:
    status: int
    document: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()


class RbmApiStandIn(LoopbackServer):
    """phones.agentEvents.create and a token endpoint on a loopback port.

    duplicate_answer: what a reused eventId of the same agent answers. Google documents only
        that the platform ignores it. "same" (default): 200 with the body of the first
        answer; "conflict": 409 ALREADY_EXISTS. Either way the call is recorded with
        duplicate=True and nothing is sent to the user again.
    scope_check: where a token without the rcsbusinessmessaging scope fails. "api" (default,
        as Google's APIs do): the token is issued and the call answers 403 PERMISSION_DENIED
        (ACCESS_TOKEN_SCOPE_INSUFFICIENT); "token": the token endpoint refuses it (400
        invalid_scope), which google-auth raises as a RefreshError.
    agents: bare agent ids the partner owns; None accepts any id. An unknown id answers 403,
        as an agentId the platform cannot look up does.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        duplicate_answer: DuplicateAnswer = "same",
        scope_check: ScopeCheck = "api",
        agents: Iterable[str] | None = None,
        tokens: ServiceAccountTokens | None = None,
    ) -> None:
        self.duplicate_answer: DuplicateAnswer = duplicate_answer
        self.scope_check: ScopeCheck = scope_check
        self.tokens = tokens or ServiceAccountTokens()
        self._changed = threading.Condition()
        self._closing = threading.Event()
        self._calls: list[AgentEventCall] = []
        self._stalling = 0
        self._agents = None if agents is None else frozenset(agents)
        self._unlaunched: dict[str, frozenset[str]] = {}  # agent id -> its testers
        self._no_rcs: set[str] = set()
        self._first_answers: dict[tuple[str, str], dict[str, Any]] = {}
        self._next: deque[Outcome] = deque()
        self._scripts: dict[tuple[str, str], deque[Outcome]] = defaultdict(deque)
        super().__init__(_handler_for(self), host, port)

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def token_uri(self) -> str:
        return f"{self.endpoint}{TOKEN_PATH}"

    def stop(self) -> None:
        self._closing.set()  # ends any stall at once
        super().stop()

    def write_key(self, path: Path) -> Path:
        """The service-account key file whose token_uri is this stand-in."""
        path.write_text(json.dumps(self.tokens.key_info(self.token_uri)))
        path.chmod(0o600)
        return path

    # --- the world the API answers from -------------------------------------------------

    def without_rcs(self, *phones: str) -> None:
        """These users have no RCS: agent events to them answer 404 NOT_FOUND."""
        with self._changed:
            self._no_rcs.update(phones)

    def unlaunch(self, agent_id: str, testers: Iterable[str] = ()) -> None:
        """The agent is not launched: only its testers can be reached, others answer 403."""
        with self._changed:
            self._unlaunched[agent_id] = frozenset(testers)

    def fail_next(self, *outcomes: Outcome) -> None:
        """The next calls, whoever they are for, answer these (a status or a Stall)."""
        with self._changed:
            self._next.extend(outcomes)

    def fail_for(self, phone: str, message_id: str, *outcomes: Outcome) -> None:
        """The next READs of this user message answer these, then the API behaves again."""
        with self._changed:
            self._scripts[(phone, message_id)].extend(outcomes)

    def heal(self) -> None:
        """Drops every scripted failure not yet used."""
        with self._changed:
            self._next.clear()
            self._scripts.clear()

    # --- what happened ------------------------------------------------------------------

    def calls(self) -> list[AgentEventCall]:
        with self._changed:
            return list(self._calls)

    def accepted(self) -> list[AgentEventCall]:
        """Calls answered 200, duplicates included."""
        return [call for call in self.calls() if call.status == 200]

    def delivered(self) -> list[AgentEventCall]:
        """Events the user's device would see: accepted and not a reused eventId."""
        return [call for call in self.accepted() if not call.duplicate]

    def calls_for(self, phone: str, message_id: str | None = None) -> list[AgentEventCall]:
        return [
            call
            for call in self.calls()
            if call.phone == phone and (message_id is None or call.message_id == message_id)
        ]

    def wait_for(
        self, ready: Callable[[list[AgentEventCall]], bool], timeout: float
    ) -> list[AgentEventCall]:
        """Blocks until `ready(calls)` holds or the deadline passes (TimeoutError)."""
        self._wait(lambda: ready(list(self._calls)), timeout, "the calls")
        return self.calls()

    def wait_for_stall(self, timeout: float) -> None:
        """Blocks until a call is held by a Stall, so a test knows the client is waiting."""
        self._wait(lambda: self._stalling > 0, timeout, "a stalled call")

    def _wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not done():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"waited {timeout}s for {what}; calls: {self._calls}")
                self._changed.wait(remaining)

    def summary(self) -> dict[str, Any]:
        return {
            "calls": [vars(call) for call in self.calls()],
            "tokenGrants": self.tokens.grants,
        }

    # --- the contract -------------------------------------------------------------------

    def grant_token(self, form: dict[str, list[str]]) -> Reply:
        status, document = self.tokens.grant(form, SCOPE if self.scope_check == "token" else None)
        return Reply(status, document)

    def create_agent_event(self, target: str, authorization: str | None, body: bytes) -> Reply:
        received = time.monotonic()
        url = urlsplit(target)
        match = _AGENT_EVENTS_PATH.fullmatch(url.path)
        if match is None:
            return _error(404, "The requested URL was not found on this server.")
        # Parsed leniently first: every call is recorded, refused ones included, and a
        # scripted failure must hit whatever the request holds.
        phone = unquote(match["phone"])  # a path keeps '+' literal; '%2B' decodes to it
        query = parse_qs(url.query, keep_blank_values=True)
        request = _json_object(body)
        call = AgentEventCall(
            phone=phone,
            agent_id=_single(query, "agentId"),
            event_id=_single(query, "eventId"),
            event_type=_text(request.get("eventType")) if request is not None else None,
            message_id=_text(request.get("messageId")) if request is not None else None,
            received=received,
            status=0,
        )
        scopes = self.tokens.scopes_of(authorization)
        if scopes is None:
            return self._record(call, _unauthenticated(missing=not authorization))
        if SCOPE not in scopes:
            return self._record(call, _insufficient_scope())
        outcome = self._take_outcome(phone, call.message_id)
        if isinstance(outcome, Stall):
            self._stall(outcome.seconds)
            outcome = outcome.then
        if outcome is not None:
            return self._record(call, _error(outcome, "scripted failure"), injected=True)
        reply, duplicate = self._answer(call, request, query)
        return self._record(call, reply, duplicate=duplicate)

    def _answer(
        self,
        call: AgentEventCall,
        request: dict[str, Any] | None,
        query: dict[str, list[str]],
    ) -> tuple[Reply, bool]:
        """The API's answer, and whether the call reused an eventId (so was ignored)."""
        problem = self._request_problem(call, request, query)
        if problem is not None:
            return problem, False
        assert call.agent_id is not None  # _request_problem refused a missing one
        key = (call.agent_id, call.event_id) if call.event_id is not None else None
        # One critical section: two concurrent calls with one eventId make one event.
        with self._changed:
            first = self._first_answers.get(key) if key is not None else None
            if first is not None:
                if self.duplicate_answer == "conflict":
                    return _error(409, "Requested entity already exists"), True
                return Reply(200, first), True
            testers = self._unlaunched.get(call.agent_id)
            if testers is not None and call.phone not in testers:
                message = "The agent is not launched and the user is not one of its testers."
                return _error(403, message), False
            if call.phone in self._no_rcs:
                return _error(404, "The user is not RCS enabled."), False
            event_id = call.event_id or str(uuid.uuid4())
            document: dict[str, Any] = {
                "name": f"phones/{call.phone}/agentEvents/{event_id}",
                "eventType": call.event_type,
                "sendTime": _rfc3339_nanos(),
            }
            if call.message_id:
                document["messageId"] = call.message_id
            if key is not None:
                self._first_answers[key] = document
            return Reply(200, document), False

    def _request_problem(
        self,
        call: AgentEventCall,
        request: dict[str, Any] | None,
        query: dict[str, list[str]],
    ) -> Reply | None:
        if request is None:
            return _error(400, "Invalid JSON payload received: the body is not a JSON object.")
        unknown = sorted(set(request) - _AGENT_EVENT_FIELDS)
        if unknown:
            return _error(400, f'Invalid JSON payload received. Unknown name "{unknown[0]}".')
        if any(len(values) > 1 for values in query.values()):
            return _error(400, "A query parameter was given more than once.")
        agent_problem = self._agent_problem(call.agent_id)
        if agent_problem is not None:
            return agent_problem
        if not _E164.fullmatch(call.phone):
            return _error(400, f"phones/{call.phone} is not a phone number in E.164 format.")
        if call.event_id is not None and not _is_rfc4122_uuid(call.event_id):
            return _error(400, "eventId must be a UUID as defined in RFC 4122.")
        if call.event_type not in EVENT_TYPES:
            return _error(400, f"Invalid value at 'agent_event.event_type': {call.event_type!r}")
        if call.event_type == "READ" and not call.message_id:
            return _error(400, "A READ event requires the messageId of the user's message.")
        return None

    def _agent_problem(self, agent_id: str | None) -> Reply | None:
        if not agent_id:
            # What the API answered a call without agentId (rbm-api-examples issue #24).
            return _error(
                403,
                "There was an error looking up the RBM agent (ID: null) that corresponds to "
                "the Google Cloud Platform (GCP) project you're authenticating with.",
            )
        if agent_id.endswith(AGENT_SUFFIX):
            # Assumed: payloads carry the suffix, the API parameter is the bare id.
            return _error(400, f"agentId is the bare agent id, without {AGENT_SUFFIX}.")
        if self._agents is not None and agent_id not in self._agents:
            return _error(403, f"There was an error looking up the RBM agent (ID: {agent_id}).")
        return None

    def _stall(self, seconds: float) -> None:
        with self._changed:
            self._stalling += 1
            self._changed.notify_all()
        try:
            self._closing.wait(seconds)  # the stand-in playing a slow API; stop() ends it
        finally:
            with self._changed:
                self._stalling -= 1

    def _take_outcome(self, phone: str, message_id: str | None) -> Outcome | None:
        with self._changed:
            if self._next:
                return self._next.popleft()
            script = self._scripts.get((phone, message_id or ""))
            return script.popleft() if script else None

    def _record(
        self, call: AgentEventCall, reply: Reply, *, duplicate: bool = False, injected: bool = False
    ) -> Reply:
        with self._changed:
            self._calls.append(
                replace(call, status=reply.status, duplicate=duplicate, injected=injected)
            )
            self._changed.notify_all()
        return reply


def _error(status: int, message: str) -> Reply:
    name = _STATUS_NAMES.get(status, "UNKNOWN")
    return Reply(status, {"error": {"code": status, "message": message, "status": name}})


def _unauthenticated(*, missing: bool) -> Reply:
    what = "is missing required" if missing else "had invalid"
    reply = _error(
        401,
        f"Request {what} authentication credential. Expected OAuth 2 access token, "
        "login cookie or other valid authentication credential.",
    )
    challenge = 'Bearer realm="https://accounts.google.com/"'
    if not missing:
        challenge += ', error="invalid_token"'
    return Reply(401, reply.document, (("WWW-Authenticate", challenge),))


def _insufficient_scope() -> Reply:
    document = _error(403, "Request had insufficient authentication scopes.").document
    document["error"]["details"] = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
            "domain": "googleapis.com",
            "metadata": {"service": "rcsbusinessmessaging.googleapis.com"},
        }
    ]
    return Reply(403, document)


def _is_rfc4122_uuid(text: str) -> bool:
    if not _UUID_TEXT.fullmatch(text):
        return False
    return uuid.UUID(text).variant == uuid.RFC_4122


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(body) if body else {}
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _single(query: dict[str, list[str]], name: str) -> str | None:
    """A query parameter's value; empty counts as absent, as for a proto3 string."""
    values = query.get(name) or [""]
    return values[0] or None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _rfc3339_nanos() -> str:
    seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
    return f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%dT%H:%M:%S}.{nanos:09d}Z"


def _handler_for(standin: RbmApiStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self._body()
            if self.path == TOKEN_PATH:
                self._reply(standin.grant_token(parse_qs(body.decode(errors="replace"))))
            else:
                authorization = self.headers.get("Authorization")
                self._reply(standin.create_agent_event(self.path, authorization, body))

        def do_GET(self) -> None:
            if self.path == CALLS_PATH:
                self._reply(Reply(200, standin.summary()))
            else:
                self._reply(_error(404, "The requested URL was not found on this server."))

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _reply(self, reply: Reply) -> None:
            body = json.dumps(reply.document).encode()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(body)))
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a stall outlived its timeout)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the tests read calls, not access logs

    return Handler
