"""A loopback stand-in for the two Alibaba services a Chat App queue puller talks to.

Dybaseapi's `QueryTokenForMnsQueue` (POP RPC, version 2017-05-25) checks the caller's
AccessKey signature, in both forms Alibaba documents: ACS3-HMAC-SHA256 headers (what the
official `alibabacloud-dybaseapi20170525` client sends by default) and HMAC-SHA1 in the query
(what it sends with `signature_algorithm="v2"`). It issues expiring STS credentials for the
queue of one MessageType. The MNS (SMQ) queue REST contract, version 2015-06-06, checks the
Date, the version, the `MNS` signature made with those credentials and their security-token;
it long-polls, hides received messages for a visibility timeout, shows them again with a new
receipt handle, and deletes them one by one or in batches.

Tests script faults (expired tokens, internal errors, slow answers, partial batch deletes)
and read what the queues hold and which calls were made. Another process (`make demo`
beside `make local`) enqueues as Alibaba would and reads the counts over HTTP, under
`/_standin/queues/{MessageType or queue}/messages` (POST a JSON receipt, GET the counts).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import secrets
import string
import threading
import time
import uuid
import xml.etree.ElementTree as ElementTree
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.message import Message
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler
from typing import Any, TypeAlias
from urllib.parse import parse_qsl, quote, unquote

from tools.standins.loopback import LoopbackServer

DYBASEAPI_VERSION = "2017-05-25"
DYBASEAPI_ACTION = "QueryTokenForMnsQueue"
MNS_VERSION = "2015-06-06"
MNS_NAMESPACE = "http://mns.aliyuncs.com/doc/v1/"
CHAT_APP_MESSAGE_TYPES = ("ChatAppStatus", "ChatAppInbound", "ChatAppAudit")
# Dybaseapi writes ExpireTime as China Standard Time with no zone in the string.
CHINA_STANDARD_TIME = timezone(timedelta(hours=8))
ALIBABA_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
ACS3_HMAC_SHA256 = "ACS3-HMAC-SHA256"
RPC_HMAC_SHA1 = "HMAC-SHA1"
MAX_MESSAGES_PER_CALL = 16
MAX_WAIT_SECONDS = 30
MAX_VISIBILITY_TIMEOUT_SECONDS = 43200
ALLOWED_CLOCK_SKEW_SECONDS = 15 * 60
DEFAULT_PRIORITY = 8

# The operations, as the stand-in names them in its call log and fault scripts.
RECEIVE_MESSAGE = "ReceiveMessage"
BATCH_RECEIVE_MESSAGE = "BatchReceiveMessage"
DELETE_MESSAGE = "DeleteMessage"
BATCH_DELETE_MESSAGE = "BatchDeleteMessage"
CHANGE_MESSAGE_VISIBILITY = "ChangeMessageVisibility"
RECEIVES = frozenset({RECEIVE_MESSAGE, BATCH_RECEIVE_MESSAGE})

_MESSAGES_PATH = re.compile(r"/queues/(?P<queue>[^/?]+)/messages")
_CONTROL_PATH = re.compile(r"/_standin/queues/(?P<queue>[^/?]+)/messages")
_MNS_AUTHORIZATION = re.compile(r"MNS (?P<key_id>[^:\s]+):(?P<signature>\S+)")
_INVALID_HANDLE = "The receipt handle you provide is not valid."
_NO_MESSAGE = "Message not exist."
_EXPIRED_STS_MESSAGE = "The security token you provided has expired."
_FORBIDDEN = "The OwnerId that your Access Key Id associated to is forbidden for this operation."
_ALPHANUMERIC = string.ascii_letters + string.digits

JsonDocument: TypeAlias = Mapping[str, Any] | list[Any]


@dataclass(frozen=True)
class StsCredentials:
    """What QueryTokenForMnsQueue hands out: a temporary AccessKey and token for one queue."""

    access_key_id: str
    access_key_secret: str
    security_token: str
    message_type: str
    queue_name: str
    create_time: str
    expire_time: str  # yyyy-MM-dd HH:mm:ss in UTC+8, exactly as on the wire
    expires_at: float  # the same instant in epoch seconds


@dataclass(frozen=True)
class Call:
    operation: str
    queue_name: str | None
    status: int
    error_code: str | None
    signature_method: str | None = None  # token calls only: ACS3-HMAC-SHA256 or HMAC-SHA1


@dataclass(frozen=True)
class QueueCounts:
    visible: int
    in_flight: int
    deleted: int


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str | None
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


class _Refusal(Exception):
    """An error answer: the HTTP status, Alibaba's error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass
class _QueueMessage:
    sequence: int
    message_id: str
    body: str
    priority: int
    enqueue_time_ms: int
    visible_at: float
    dequeue_count: int = 0
    first_dequeue_time_ms: int = 0
    receipt_handle: str | None = None
    deleted: bool = False

    def visible(self, now: float) -> bool:
        return not self.deleted and self.visible_at <= now

    def in_flight(self, now: float) -> bool:
        return not self.deleted and self.visible_at > now


@dataclass
class _Queue:
    name: str
    message_type: str
    messages: list[_QueueMessage] = field(default_factory=list)
    # Every handle ever issued, so a stale one is told apart from garbage.
    handles: dict[str, _QueueMessage] = field(default_factory=dict)
    pollers: int = 0


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
        self.token_lifetime_seconds = token_lifetime_seconds
        self.visibility_timeout_seconds = visibility_timeout_seconds
        self.polling_wait_seconds = polling_wait_seconds
        # MNS documents no code of its own for an expired STS token: 403 is all that is sure.
        self.expiry_error_code = expiry_error_code
        # Named as the Chat App console names the queue it creates for each MessageType.
        queues = [_Queue(f"Alicom-Queue-{account_uid}-{kind}", kind) for kind in message_types]
        self._queues = {queue.name: queue for queue in queues}
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._sequence = 0
        self._credentials: dict[str, StsCredentials] = {}
        self._expired_key_ids: set[str] = set()
        self._nonces: set[str] = set()
        self._scripted_errors: deque[_ScriptedError] = deque()
        self._delays: deque[_Delay] = deque()
        self._rejected_deletes: dict[str, str] = {}
        self._calls: list[Call] = []
        self._issued: list[StsCredentials] = []
        super().__init__(_handler_for(self), host, port)

    # --- running ------------------------------------------------------------------------

    @property
    def dybaseapi_endpoint(self) -> str:
        """host:port, as the POP client's Config(endpoint=..., protocol="http") takes it; the
        queue endpoint (`endpoint`) is the same server, as aliyun-mns-sdk's Account takes it."""
        return self.address

    def stop(self) -> None:
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()  # long polls end now instead of at their deadline
        super().stop()

    # --- the queues, for tests -------------------------------------------------------------

    @property
    def queue_names(self) -> dict[str, str]:
        """MessageType -> queue name, as the Chat App console shows them."""
        return {queue.message_type: queue.name for queue in self._queues.values()}

    def queue_name(self, message_type: str) -> str:
        return self.queue_names[message_type]

    def enqueue(
        self, queue: str, receipt: JsonDocument | bytes, priority: int = DEFAULT_PRIORITY
    ) -> str:
        """One message, base64 on the wire as Alibaba sends it: JSON for an object or array,
        the bytes as they are otherwise. queue is a queue name or its MessageType."""
        raw = receipt if isinstance(receipt, bytes) else _json_bytes(receipt)
        return self.enqueue_raw(queue, base64.b64encode(raw).decode("ascii"), priority)

    def enqueue_raw(self, queue: str, body: str, priority: int = DEFAULT_PRIORITY) -> str:
        """A message whose body goes on the wire exactly as given (no base64): poison tests."""
        with self._changed:
            target = self._queues[self._resolve(queue)]
            self._sequence += 1
            message_id = uuid.uuid4().hex.upper()
            now = time.time()
            target.messages.append(
                _QueueMessage(
                    sequence=self._sequence,
                    message_id=message_id,
                    body=body,
                    priority=priority,
                    enqueue_time_ms=_ms(now),
                    visible_at=now,
                )
            )
            self._changed.notify_all()
        return message_id

    def counts(self, queue: str) -> QueueCounts:
        now = time.time()
        with self._changed:
            messages = self._queues[self._resolve(queue)].messages
            return QueueCounts(
                visible=sum(message.visible(now) for message in messages),
                in_flight=sum(message.in_flight(now) for message in messages),
                deleted=sum(message.deleted for message in messages),
            )

    def dequeue_count(self, message_id: str) -> int:
        with self._changed:
            return self._find(message_id).dequeue_count

    def pollers(self, queue: str) -> int:
        """Receives waiting right now for a message on this queue (long polls in progress)."""
        with self._changed:
            return self._queues[self._resolve(queue)].pollers

    def calls_for(self, operation: str | None = None, queue: str | None = None) -> list[Call]:
        name = None if queue is None else self._resolve(queue)
        with self._changed:
            return [
                call
                for call in self._calls
                if operation in (None, call.operation) and name in (None, call.queue_name)
            ]

    @property
    def tokens_issued(self) -> list[StsCredentials]:
        with self._changed:
            return list(self._issued)

    def issue_credentials(self, message_type: str) -> StsCredentials:
        """What a successful token call would return, without the call (for other layers' tests)."""
        with self._changed:
            return self._issue(message_type)

    # --- faults, for tests -------------------------------------------------------------------

    def expire_tokens(self) -> None:
        """Every token issued so far is expired from now on; new token calls get fresh ones."""
        with self._changed:
            self._expired_key_ids.update(self._credentials)

    def expire_visibility(self, queue: str | None = None) -> None:
        """Every message in flight becomes visible now, as if its visibility timeout ran out."""
        now = time.time()
        with self._changed:
            for target in self._pick(queue):
                for message in target.messages:
                    if message.in_flight(now):
                        message.visible_at = now
            self._changed.notify_all()

    def expire_next_receives(self, count: int = 1, queue: str | None = None) -> None:
        """The next receives answer 403 as for an expired token, whatever token they carry."""
        self._script(RECEIVES, queue, count, 403, self.expiry_error_code, _EXPIRED_STS_MESSAGE)

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
        self._script(RECEIVES, queue, count, status, code, message)

    def fail_next_token_calls(
        self, count: int = 1, status: int = 503, code: str = "ServiceUnavailable"
    ) -> None:
        self._script(
            frozenset({DYBASEAPI_ACTION}), None, count, status, code, "The stand-in is down."
        )

    def delay_next(self, seconds: float, count: int = 1, operation: str | None = None) -> None:
        """The next calls (of one operation, or any) are answered only after seconds."""
        with self._changed:
            self._delays.extend(_Delay(seconds, operation) for _ in range(count))

    def reject_deletes(
        self,
        *,
        message_ids: Iterable[str] = (),
        receipt_handles: Iterable[str] = (),
        code: str = "ReceiptHandleError",
    ) -> None:
        """The next delete of each of these messages (or handles) fails with code, once;
        a batch delete then answers 404 with that handle's <Error> and deletes the rest."""
        with self._changed:
            for key in (*message_ids, *receipt_handles):
                self._rejected_deletes[key] = code

    # --- the contract: one request in, one answer out -----------------------------------------

    def answer(self, method: str, target: str, headers: Message, body: bytes) -> Answer:
        path = target.partition("?")[0]
        if path == "/":
            return self._answer_token_call(method, target, headers, body)
        control = _CONTROL_PATH.fullmatch(path)
        if control is not None:
            return self._answer_control(method, unquote(control["queue"]), body)
        match = _MESSAGES_PATH.fullmatch(path)
        if match is None:
            refusal = _Refusal(400, "InvalidRequestURL", "Http request URL format invalid.")
            return _mns_error(refusal, headers)
        return self._answer_queue_call(method, target, unquote(match["queue"]), headers, body)

    def _answer_control(self, method: str, queue: str, body: bytes) -> Answer:
        """For another process: enqueue a receipt (POST its JSON), or read the counts (GET)."""
        if self._resolve(queue) not in self._queues:
            return _json_answer(404, {"error": f"no queue {queue}"})
        if method == "POST":
            return _json_answer(201, {"MessageId": self.enqueue(queue, body)})
        return _json_answer(200, vars(self.counts(queue)))

    # --- Dybaseapi -----------------------------------------------------------------------------

    def _answer_token_call(self, method: str, target: str, headers: Message, body: bytes) -> Answer:
        self._wait_out_delay(DYBASEAPI_ACTION)
        params = _form(target.partition("?")[2])
        if (headers.get("Content-Type") or "").startswith("application/x-www-form-urlencoded"):
            params.update(_form(body.decode("utf-8", errors="replace")))
        signature_method: str | None = None
        queue_name: str | None = params.get("QueueName")
        try:
            signature_method = self._authenticate_pop(method, target, headers, body, params)
            self._raise_scripted(DYBASEAPI_ACTION, None)
            message_type = params.get("MessageType")
            if not message_type:
                raise _Refusal(
                    400, "MissingMessageType", "MessageType is mandatory for this action."
                )
            with self._changed:
                known = self.queue_names.get(message_type)
                if known is None or queue_name not in (None, known):
                    # Assumed: a business refusal is a 200 whose Code is not OK, as Alibaba's
                    # communications APIs answer and the Alicom demos check.
                    raise _Refusal(
                        200,
                        "InvalidParameter",
                        f"No queue {queue_name!r} for MessageType {message_type!r}.",
                    )
                credentials = self._issue(message_type)
            queue_name = credentials.queue_name
            success_body: dict[str, Any] = {
                "RequestId": _request_id(),
                "Code": "OK",
                "Message": "OK",
                "MessageTokenDTO": {
                    "AccessKeyId": credentials.access_key_id,
                    "AccessKeySecret": credentials.access_key_secret,
                    "SecurityToken": credentials.security_token,
                    "CreateTime": credentials.create_time,
                    "ExpireTime": credentials.expire_time,
                },
            }
            self._record(Call(DYBASEAPI_ACTION, queue_name, 200, None, signature_method))
            return _json_answer(200, success_body)
        except _Refusal as refusal:
            self._record(
                Call(DYBASEAPI_ACTION, queue_name, refusal.status, refusal.code, signature_method)
            )
            return _json_answer(
                refusal.status,
                {
                    "RequestId": _request_id(),
                    "HostId": headers.get("Host") or "dybaseapi.aliyuncs.com",
                    "Code": refusal.code,
                    "Message": refusal.message,
                },
            )

    def _authenticate_pop(
        self, method: str, target: str, headers: Message, body: bytes, params: dict[str, str]
    ) -> str:
        authorization = headers.get("Authorization") or ""
        if authorization.startswith("ACS3-"):
            self._check_acs3(method, target, headers, body, authorization)
            action, version = headers.get("x-acs-action"), headers.get("x-acs-version")
            self._check_timestamp(headers.get("x-acs-date"))
            self._check_nonce(headers.get("x-acs-signature-nonce"))
            signature_method = ACS3_HMAC_SHA256
        elif "Signature" in params:
            self._check_rpc_v2(method, params)
            action, version = params.get("Action"), params.get("Version")
            self._check_timestamp(params.get("Timestamp"))
            self._check_nonce(params.get("SignatureNonce"))
            signature_method = RPC_HMAC_SHA1
        else:
            raise _Refusal(400, "MissingSignature", "Signature is mandatory for this action.")
        if action != DYBASEAPI_ACTION or version != DYBASEAPI_VERSION:
            raise _Refusal(
                404,
                "InvalidAction.NotFound",
                "Specified api is not found, please check your url and method.",
            )
        return signature_method

    def _check_acs3(
        self, method: str, target: str, headers: Message, body: bytes, authorization: str
    ) -> None:
        algorithm, _, fields_text = authorization.partition(" ")
        fields: dict[str, str] = {}
        for part in fields_text.split(","):
            name, _, value = part.strip().partition("=")
            fields[name] = value
        credential, signed, signature = (
            fields.get("Credential"),
            fields.get("SignedHeaders"),
            fields.get("Signature"),
        )
        if algorithm != ACS3_HMAC_SHA256 or not credential or not signed or not signature:
            raise _Refusal(
                400,
                "IncompleteSignature",
                "The request signature does not conform to Aliyun standards.",
            )
        if credential != self.access_key_id:
            raise _Refusal(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        signed_names = signed.split(";")
        # Alibaba: every common header but Authorization must be signed.
        required = {
            "host",
            "x-acs-action",
            "x-acs-version",
            "x-acs-date",
            "x-acs-signature-nonce",
            "x-acs-content-sha256",
        }
        if not required <= set(signed_names):
            raise _Refusal(
                400, "IncompleteSignature", f"SignedHeaders must include {sorted(required)}."
            )
        payload_hash = hashlib.sha256(body).hexdigest()
        if headers.get("x-acs-content-sha256") != payload_hash:
            raise _Refusal(
                400, "SignatureDoesNotMatch", "x-acs-content-sha256 is not the body's SHA-256."
            )
        path, _, query = target.partition("?")
        signed_values = {name: ",".join(headers.get_all(name) or []) for name in signed_names}
        expected = acs3_signature(
            self.access_key_secret,
            method,
            path,
            parse_qsl(query, keep_blank_values=True),
            signed_values,
            payload_hash,
        )
        if not hmac.compare_digest(expected, signature):
            raise _Refusal(
                400,
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation.",
            )

    def _check_rpc_v2(self, method: str, params: dict[str, str]) -> None:
        if (
            params.get("SignatureMethod") != RPC_HMAC_SHA1
            or params.get("SignatureVersion") != "1.0"
        ):
            raise _Refusal(
                400, "InvalidSignatureMethod", "Only HMAC-SHA1 signature version 1.0 is supported."
            )
        if params.get("AccessKeyId") != self.access_key_id:
            raise _Refusal(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        signed = {name: value for name, value in params.items() if name != "Signature"}
        expected = rpc_v2_signature(self.access_key_secret, method, signed)
        if not hmac.compare_digest(expected, params["Signature"]):
            raise _Refusal(
                400,
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation.",
            )

    def _check_timestamp(self, stamp: str | None) -> None:
        try:
            sent = datetime.strptime(stamp or "", "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise _Refusal(
                400, "InvalidTimeStamp.Format", "Specified time stamp is not valid."
            ) from None
        if abs(sent.timestamp() - time.time()) > ALLOWED_CLOCK_SKEW_SECONDS:
            raise _Refusal(
                400, "InvalidTimeStamp.Expired", "Specified time stamp or date header is expired."
            )

    def _check_nonce(self, nonce: str | None) -> None:
        with self._changed:
            if not nonce or nonce in self._nonces:
                raise _Refusal(
                    400, "SignatureNonceUsed", "Specified signature nonce was used already."
                )
            self._nonces.add(nonce)

    def _issue(self, message_type: str) -> StsCredentials:
        """Caller holds the lock."""
        now = time.time()
        # ExpireTime has whole seconds: the token ends exactly at the second it names.
        expires_at = float(math.floor(now + self.token_lifetime_seconds))
        credentials = StsCredentials(
            access_key_id="STS." + "".join(secrets.choice(_ALPHANUMERIC) for _ in range(24)),
            access_key_secret="".join(secrets.choice(_ALPHANUMERIC) for _ in range(44)),
            security_token="CAIS" + base64.b64encode(secrets.token_bytes(180)).decode("ascii"),
            message_type=message_type,
            queue_name=self.queue_names[message_type],
            create_time=china_standard_time(now),
            expire_time=china_standard_time(expires_at),
            expires_at=expires_at,
        )
        self._credentials[credentials.access_key_id] = credentials
        self._issued.append(credentials)
        return credentials

    # --- MNS queues ----------------------------------------------------------------------------

    def _answer_queue_call(
        self, method: str, target: str, queue_name: str, headers: Message, body: bytes
    ) -> Answer:
        params = _query_as_sent(target)
        operation = _queue_operation(method, params)
        self._wait_out_delay(operation)
        try:
            credentials = self._authenticate_mns(method, target, headers, body)
            with self._changed:
                queue = self._queues.get(queue_name)
            if queue is None:
                raise _Refusal(404, "QueueNotExist", "The queue name you provided is not exist.")
            if credentials.queue_name != queue_name:
                raise _Refusal(403, "AccessDenied", _FORBIDDEN)
            self._raise_scripted(operation, queue_name)
            answer = self._perform(operation, queue, params, body)
        except _Refusal as refusal:
            self._record(Call(operation, queue_name, refusal.status, refusal.code))
            return _mns_error(refusal, headers)
        self._record(Call(operation, queue_name, answer.status, None))
        return answer

    def _authenticate_mns(
        self, method: str, target: str, headers: Message, body: bytes
    ) -> StsCredentials:
        if headers.get("x-mns-version") != MNS_VERSION:
            raise _Refusal(400, "InvalidArgument", f"x-mns-version must be {MNS_VERSION}.")
        date = headers.get("x-mns-date") or headers.get("Date")
        if not date:
            raise _Refusal(400, "MissingDateHeader", "Date header is required.")
        try:
            sent = parsedate_to_datetime(date)
        except (TypeError, ValueError):
            raise _Refusal(400, "InvalidDateHeader", "The Date header format is invalid.") from None
        if sent.tzinfo is None:
            raise _Refusal(400, "InvalidDateHeader", "The Date header format is invalid.")
        # The error-code table says 408 TimeExpired; the signing page says only "400".
        if abs(sent.timestamp() - time.time()) > ALLOWED_CLOCK_SKEW_SECONDS:
            raise _Refusal(408, "TimeExpired", "The http request you sent is expired.")
        authorization = headers.get("Authorization")
        if not authorization:
            raise _Refusal(400, "MissingAuthorizationHeader", "Authorization header is required.")
        match = _MNS_AUTHORIZATION.fullmatch(authorization)
        if match is None:
            raise _Refusal(
                400, "InvalidAuthorizationHeader", "The Authorization header format is invalid."
            )
        with self._changed:
            credentials = self._credentials.get(match["key_id"])
            expired = match["key_id"] in self._expired_key_ids
        if credentials is None:
            raise _Refusal(403, "InvalidAccessKeyId", "The AccessKey Id you provided is not exist.")
        if headers.get("security-token") != credentials.security_token:
            raise _Refusal(
                403, "AccessDenied", "The security-token is missing or not this AccessKey's."
            )
        content_md5 = headers.get("Content-MD5") or ""
        if content_md5 and content_md5 not in _content_md5_forms(body):
            raise _Refusal(400, "InvalidDegist", "The Content-MD5 you specified is invalid.")
        expected = mns_signature(
            credentials.access_key_secret,
            method,
            content_md5,
            headers.get("Content-Type") or "",
            date,
            dict(headers.items()),
            target,
        )
        if not hmac.compare_digest(expected, match["signature"]):
            raise _Refusal(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        if expired or time.time() >= credentials.expires_at:
            raise _Refusal(403, self.expiry_error_code, _EXPIRED_STS_MESSAGE)
        return credentials

    def _perform(
        self, operation: str, queue: _Queue, params: dict[str, str], body: bytes
    ) -> Answer:
        if operation in RECEIVES:
            return self._receive(queue, params, batch=operation == BATCH_RECEIVE_MESSAGE)
        if operation == DELETE_MESSAGE:
            with self._changed:
                error = self._delete(
                    queue, _required(params, "ReceiptHandle", "MissingReceiptHandle")
                )
            if error is not None:
                raise error
            return Answer(204, None, b"", _mns_headers())
        if operation == BATCH_DELETE_MESSAGE:
            return self._batch_delete(queue, body)
        if operation == CHANGE_MESSAGE_VISIBILITY:
            return self._change_visibility(queue, params)
        raise _Refusal(400, "InvalidRequestURL", f"The stand-in does not serve {operation}.")

    def _receive(self, queue: _Queue, params: dict[str, str], batch: bool) -> Answer:
        wanted = _bounded(params, "numOfMessages", 1, MAX_MESSAGES_PER_CALL) if batch else 1
        wait = _bounded(params, "waitseconds", 0, MAX_WAIT_SECONDS, self.polling_wait_seconds)
        deadline = time.time() + wait
        with self._changed:
            while True:
                now = time.time()
                ready = sorted(
                    (message for message in queue.messages if message.visible(now)),
                    key=lambda message: (message.priority, message.sequence),
                )[:wanted]
                if ready:
                    received = [self._hand_out(queue, message, now) for message in ready]
                    break
                if now >= deadline or self._stopping.is_set():
                    raise _Refusal(404, "MessageNotExist", _NO_MESSAGE)
                reappearing = [m.visible_at - now for m in queue.messages if m.in_flight(now)]
                queue.pollers += 1
                try:
                    self._changed.wait(min([deadline - now, *reappearing]))
                finally:
                    queue.pollers -= 1
        if batch:
            root = ElementTree.Element("Messages", xmlns=MNS_NAMESPACE)
            for message in received:
                root.append(_message_element(message))
        else:
            root = _message_element(received[0])
            root.set("xmlns", MNS_NAMESPACE)
        return _xml_answer(200, root)

    def _hand_out(self, queue: _Queue, message: _QueueMessage, now: float) -> _QueueMessage:
        message.dequeue_count += 1
        if not message.first_dequeue_time_ms:
            message.first_dequeue_time_ms = _ms(now)
        message.visible_at = now + self.visibility_timeout_seconds
        self._renew_handle(queue, message)
        return message

    def _renew_handle(self, queue: _Queue, message: _QueueMessage) -> None:
        # Shaped like Alibaba's (1-<base64 of digits and dashes>): no '+' or '/' to escape.
        detail = f"{message.sequence}-{message.dequeue_count}-{secrets.randbelow(10**12)}"
        handle = "1-" + base64.b64encode(detail.encode("ascii")).decode("ascii")
        message.receipt_handle = handle
        queue.handles[handle] = message

    def _delete(self, queue: _Queue, handle: str) -> _Refusal | None:
        """Caller holds the lock. A handle is good only until its message's NextVisibleTime."""
        message = queue.handles.get(handle)
        if message is not None and message.deleted:
            return _Refusal(404, "MessageNotExist", _NO_MESSAGE)
        if (
            message is None
            or message.receipt_handle != handle
            or not message.in_flight(time.time())
        ):
            return _Refusal(400, "ReceiptHandleError", _INVALID_HANDLE)
        scripted = self._rejected_deletes.pop(
            message.message_id, None
        ) or self._rejected_deletes.pop(handle, None)
        if scripted is not None:
            return _Refusal(400, scripted, _INVALID_HANDLE)
        message.deleted = True
        return None

    def _batch_delete(self, queue: _Queue, body: bytes) -> Answer:
        handles = _receipt_handles(body)
        if not 1 <= len(handles) <= MAX_MESSAGES_PER_CALL:
            raise _Refusal(
                400,
                "InvalidArgument",
                f"The count of ReceiptHandle should between 1 and {MAX_MESSAGES_PER_CALL}.",
            )
        with self._changed:
            failures = [(handle, self._delete(queue, handle)) for handle in handles]
        errors = ElementTree.Element("Errors", xmlns=MNS_NAMESPACE)
        for handle, failure in failures:
            if failure is not None:
                error = ElementTree.SubElement(errors, "Error")
                ElementTree.SubElement(error, "ErrorCode").text = failure.code
                ElementTree.SubElement(error, "ErrorMessage").text = failure.message
                ElementTree.SubElement(error, "ReceiptHandle").text = handle
        if len(errors) == 0:
            return Answer(204, None, b"", _mns_headers())
        return _xml_answer(404, errors)

    def _change_visibility(self, queue: _Queue, params: dict[str, str]) -> Answer:
        handle = _required(params, "ReceiptHandle", "MissingReceiptHandle")
        _required(params, "VisibilityTimeout", "MissingVisibilityTimeout")
        seconds = _bounded(params, "VisibilityTimeout", 1, MAX_VISIBILITY_TIMEOUT_SECONDS)
        with self._changed:
            message = queue.handles.get(handle)
            if (
                message is None
                or message.receipt_handle != handle
                or not message.in_flight(time.time())
            ):
                raise _Refusal(400, "ReceiptHandleError", _INVALID_HANDLE)
            message.visible_at = time.time() + seconds
            self._renew_handle(queue, message)
            root = ElementTree.Element("ChangeVisibility", xmlns=MNS_NAMESPACE)
            ElementTree.SubElement(root, "ReceiptHandle").text = message.receipt_handle
            ElementTree.SubElement(root, "NextVisibleTime").text = str(_ms(message.visible_at))
            self._changed.notify_all()
        return _xml_answer(200, root)

    # --- bookkeeping ---------------------------------------------------------------------------

    def _resolve(self, queue: str) -> str:
        """A queue name, or the MessageType whose queue it is."""
        return self.queue_names.get(queue, queue)

    def _pick(self, queue: str | None) -> Iterator[_Queue]:
        return (
            iter(self._queues.values())
            if queue is None
            else iter([self._queues[self._resolve(queue)]])
        )

    def _find(self, message_id: str) -> _QueueMessage:
        for queue in self._queues.values():
            for message in queue.messages:
                if message.message_id == message_id:
                    return message
        raise KeyError(message_id)

    def _script(
        self,
        operations: frozenset[str],
        queue: str | None,
        count: int,
        status: int,
        code: str,
        message: str,
    ) -> None:
        name = None if queue is None else self._resolve(queue)
        with self._changed:
            self._scripted_errors.extend(
                _ScriptedError(operations, name, status, code, message) for _ in range(count)
            )

    def _raise_scripted(self, operation: str, queue_name: str | None) -> None:
        with self._changed:
            for scripted in self._scripted_errors:
                if scripted.applies_to(operation, queue_name):
                    self._scripted_errors.remove(scripted)
                    raise _Refusal(scripted.status, scripted.code, scripted.message)

    def _wait_out_delay(self, operation: str) -> None:
        with self._changed:
            delay = next((d for d in self._delays if d.applies_to(operation)), None)
            if delay is not None:
                self._delays.remove(delay)
        if delay is not None:
            self._stopping.wait(delay.seconds)  # the stand-in playing a slow service

    def _record(self, call: Call) -> None:
        with self._changed:
            self._calls.append(call)


# --- the signatures, as Alibaba documents them --------------------------------------------------


def mns_signature(
    secret: str,
    method: str,
    content_md5: str,
    content_type: str,
    date: str,
    headers: Mapping[str, str],
    resource: str,
) -> str:
    """base64(HMAC-SHA1(secret, METHOD\\nContent-MD5\\nContent-Type\\nDate\\n + sorted
    lower-cased x-mns-* headers as name:value\\n + path and query as sent))."""
    mns_headers = sorted(
        (name.lower(), value)
        for name, value in headers.items()
        if name.lower().startswith("x-mns-")
    )
    canonical_headers = "".join(f"{name}:{value}\n" for name, value in mns_headers)
    to_sign = f"{method}\n{content_md5}\n{content_type}\n{date}\n{canonical_headers}{resource}"
    digest = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def acs3_signature(
    secret: str,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    signed_headers: Mapping[str, str],
    payload_sha256: str,
) -> str:
    """Alibaba's V3 signature: HMAC-SHA256 over the SHA-256 of the canonical request."""
    canonical_query = "&".join(
        f"{percent_encode(name)}={percent_encode(value)}" for name, value in sorted(query)
    )
    names = sorted(name.lower() for name in signed_headers)
    values = {name.lower(): value.strip() for name, value in signed_headers.items()}
    canonical_headers = "".join(f"{name}:{values[name]}\n" for name in names)
    canonical_request = "\n".join(
        [method, path or "/", canonical_query, canonical_headers, ";".join(names), payload_sha256]
    )
    to_sign = f"{ACS3_HMAC_SHA256}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"
    return hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


def rpc_v2_signature(secret: str, method: str, params: Mapping[str, str]) -> str:
    """The RPC signature (SignatureVersion 1.0): HMAC-SHA1 with secret + '&' over
    METHOD&%2F&percent-encoded sorted query."""
    canonical = "&".join(
        f"{percent_encode(name)}={percent_encode(value)}" for name, value in sorted(params.items())
    )
    to_sign = f"{method}&{percent_encode('/')}&{percent_encode(canonical)}"
    digest = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def percent_encode(value: str) -> str:
    """RFC 3986: only A-Z a-z 0-9 - _ . ~ stay as they are; a space is %20."""
    return quote(value, safe="~")


def china_standard_time(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, CHINA_STANDARD_TIME).strftime(ALIBABA_TIME_FORMAT)


# --- helpers ------------------------------------------------------------------------------------


def _json_bytes(document: JsonDocument) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _ms(epoch_seconds: float) -> int:
    return int(epoch_seconds * 1000)


def _request_id() -> str:
    return str(uuid.uuid4()).upper()


def _form(text: str) -> dict[str, str]:
    return dict(parse_qsl(text, keep_blank_values=True))


def _query_as_sent(target: str) -> dict[str, str]:
    """Query parameters percent-decoded but with '+' kept: MNS clients send handles unescaped."""
    query = target.partition("?")[2]
    pairs = (item.partition("=") for item in query.split("&") if item)
    return {unquote(name): unquote(value) for name, _, value in pairs}


def _queue_operation(method: str, params: Mapping[str, str]) -> str:
    if method == "GET":
        return BATCH_RECEIVE_MESSAGE if "numOfMessages" in params else RECEIVE_MESSAGE
    if method == "DELETE":
        return DELETE_MESSAGE if "ReceiptHandle" in params else BATCH_DELETE_MESSAGE
    if method == "PUT" and "ReceiptHandle" in params:
        return CHANGE_MESSAGE_VISIBILITY
    return f"{method} messages"


def _required(params: Mapping[str, str], name: str, code: str) -> str:
    value = params.get(name)
    if not value:
        raise _Refusal(400, code, f"{name} is required.")
    return value


def _bounded(
    params: Mapping[str, str], name: str, low: int, high: int, default: int | None = None
) -> int:
    text = params.get(name)
    if text is None and default is not None:
        return default
    try:
        value = int(text or "")
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise _Refusal(
            400, "InvalidArgument", f"The value of {name} should between {low} and {high}."
        )
    return value


def _content_md5_forms(body: bytes) -> set[str]:
    """RFC 1864's base64 of the digest, and the base64 of its hex that aliyun-mns-sdk sends."""
    digest = hashlib.md5(body)  # noqa: S324 -- Content-MD5 is MD5 by definition
    return {
        base64.b64encode(digest.digest()).decode("ascii"),
        base64.b64encode(digest.hexdigest().encode("ascii")).decode("ascii"),
    }


def _receipt_handles(body: bytes) -> list[str]:
    try:
        # Loopback test traffic only; expat (>= 2.4.1, bundled) refuses entity expansion bombs.
        root = ElementTree.fromstring(body)  # noqa: S314
    except ElementTree.ParseError:
        raise _Refusal(400, "MalformedXML", "The XML you provided was not well-formed.") from None
    if _local_name(root.tag) != "ReceiptHandles":
        raise _Refusal(400, "InvalidArgument", "The root element must be ReceiptHandles.")
    return [
        (element.text or "").strip()
        for element in root
        if _local_name(element.tag) == "ReceiptHandle"
    ]


def _local_name(tag: str) -> str:
    return tag.rpartition("}")[2]


def _message_element(message: _QueueMessage) -> ElementTree.Element:
    element = ElementTree.Element("Message")
    md5 = hashlib.md5(message.body.encode("utf-8")).hexdigest().upper()  # noqa: S324 -- MNS's field
    fields = {
        "MessageId": message.message_id,
        "ReceiptHandle": message.receipt_handle or "",
        "MessageBodyMD5": md5,
        "MessageBody": message.body,
        "EnqueueTime": str(message.enqueue_time_ms),
        "NextVisibleTime": str(_ms(message.visible_at)),
        "FirstDequeueTime": str(message.first_dequeue_time_ms),
        "DequeueCount": str(message.dequeue_count),
        "Priority": str(message.priority),
    }
    for tag, text in fields.items():
        ElementTree.SubElement(element, tag).text = text
    return element


def _mns_headers() -> tuple[tuple[str, str], ...]:
    return (("x-mns-request-id", uuid.uuid4().hex.upper()), ("x-mns-version", MNS_VERSION))


def _xml_answer(status: int, root: ElementTree.Element) -> Answer:
    text = ElementTree.tostring(root, encoding="unicode")
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n{text}'.encode()
    return Answer(status, "text/xml;charset=utf-8", body, _mns_headers())


def _mns_error(refusal: _Refusal, headers: Message) -> Answer:
    root = ElementTree.Element("Error", xmlns=MNS_NAMESPACE)
    fields = {
        "Code": refusal.code,
        "Message": refusal.message,
        "RequestId": uuid.uuid4().hex.upper(),
        "HostId": headers.get("Host") or "mns.aliyuncs.com",
    }
    for tag, text in fields.items():
        ElementTree.SubElement(root, tag).text = text
    return _xml_answer(refusal.status, root)


def _json_answer(status: int, document: Mapping[str, Any]) -> Answer:
    return Answer(status, "application/json;charset=utf-8", json.dumps(document).encode())


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
