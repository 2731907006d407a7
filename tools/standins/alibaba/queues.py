"""The Chat App receipt queues, and the MNS (SMQ) queue REST contract, version 2015-06-06.

Each call is checked as MNS checks it: the Date, the version, the `MNS` signature made with
credentials the token service issued, and their security-token. A receive long-polls, hides
what it hands out for the visibility timeout and shows it again with a new receipt handle;
messages are deleted one by one or in batches.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import uuid
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from email.message import Message
from email.utils import parsedate_to_datetime
from typing import Any, TypeAlias
from urllib.parse import unquote

from tools.standins.alibaba.faults import FaultScript
from tools.standins.alibaba.token_service import StsCredentials, TokenService
from tools.standins.alibaba.wire import (
    ALLOWED_CLOCK_SKEW_SECONDS,
    Answer,
    Call,
    CallLog,
    Refusal,
)

MNS_VERSION = "2015-06-06"
MNS_NAMESPACE = "http://mns.aliyuncs.com/doc/v1/"
MAX_MESSAGES_PER_CALL = 16
MAX_WAIT_SECONDS = 30
MAX_VISIBILITY_TIMEOUT_SECONDS = 43200
DEFAULT_PRIORITY = 8
EXPIRED_STS_MESSAGE = "The security token you provided has expired."

# The operations, as the stand-in names them in its call log and fault scripts.
RECEIVE_MESSAGE = "ReceiveMessage"
BATCH_RECEIVE_MESSAGE = "BatchReceiveMessage"
DELETE_MESSAGE = "DeleteMessage"
BATCH_DELETE_MESSAGE = "BatchDeleteMessage"
CHANGE_MESSAGE_VISIBILITY = "ChangeMessageVisibility"
RECEIVES = frozenset({RECEIVE_MESSAGE, BATCH_RECEIVE_MESSAGE})

_MNS_AUTHORIZATION = re.compile(r"MNS (?P<key_id>[^:\s]+):(?P<signature>\S+)")
_INVALID_HANDLE = "The receipt handle you provide is not valid."
_NO_MESSAGE = "Message not exist."
_FORBIDDEN = "The OwnerId that your Access Key Id associated to is forbidden for this operation."

JsonDocument: TypeAlias = Mapping[str, Any] | list[Any]


@dataclass(frozen=True)
class QueueCounts:
    visible: int
    in_flight: int
    deleted: int


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


class Queues:
    def __init__(
        self,
        names: Mapping[str, str],  # MessageType -> queue name
        tokens: TokenService,
        faults: FaultScript,
        calls: CallLog,
        stopping: threading.Event,  # set when the stand-in stops: long polls end at once
        visibility_timeout_seconds: float,
        polling_wait_seconds: int,
        expiry_error_code: str,
    ) -> None:
        self.names = dict(names)
        self._tokens = tokens
        self._faults = faults
        self._calls = calls
        self._stopping = stopping
        self._visibility_timeout_seconds = visibility_timeout_seconds
        self._polling_wait_seconds = polling_wait_seconds
        self._expiry_error_code = expiry_error_code
        self._queues = {name: _Queue(name, kind) for kind, name in self.names.items()}
        self._changed = threading.Condition()
        self._sequence = 0

    def resolve(self, queue: str) -> str:
        """A queue name, or the MessageType whose queue it is."""
        return self.names.get(queue, queue)

    def holds(self, queue: str) -> bool:
        return self.resolve(queue) in self._queues

    def stop(self) -> None:
        with self._changed:
            self._changed.notify_all()  # long polls see the stopping event now

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
            target = self._queues[self.resolve(queue)]
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
            messages = self._queues[self.resolve(queue)].messages
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
            return self._queues[self.resolve(queue)].pollers

    def expire_visibility(self, queue: str | None = None) -> None:
        """Every message in flight becomes visible now, as if its visibility timeout ran out."""
        now = time.time()
        with self._changed:
            for target in self._pick(queue):
                for message in target.messages:
                    if message.in_flight(now):
                        message.visible_at = now
            self._changed.notify_all()

    def answer(
        self, method: str, target: str, queue_name: str, headers: Message, body: bytes
    ) -> Answer:
        params = _query_as_sent(target)
        operation = _queue_operation(method, params)
        self._faults.wait_out_delay(operation)
        try:
            credentials = self._authenticate_mns(method, target, headers, body)
            with self._changed:
                queue = self._queues.get(queue_name)
            if queue is None:
                raise Refusal(404, "QueueNotExist", "The queue name you provided is not exist.")
            if credentials.queue_name != queue_name:
                raise Refusal(403, "AccessDenied", _FORBIDDEN)
            self._faults.raise_scripted(operation, queue_name)
            answer = self._perform(operation, queue, params, body)
        except Refusal as refusal:
            self._calls.record(Call(operation, queue_name, refusal.status, refusal.code))
            return mns_error(refusal, headers)
        self._calls.record(Call(operation, queue_name, answer.status, None))
        return answer

    def _authenticate_mns(
        self, method: str, target: str, headers: Message, body: bytes
    ) -> StsCredentials:
        if headers.get("x-mns-version") != MNS_VERSION:
            raise Refusal(400, "InvalidArgument", f"x-mns-version must be {MNS_VERSION}.")
        date = headers.get("x-mns-date") or headers.get("Date")
        if not date:
            raise Refusal(400, "MissingDateHeader", "Date header is required.")
        try:
            sent = parsedate_to_datetime(date)
        except (TypeError, ValueError):
            raise Refusal(400, "InvalidDateHeader", "The Date header format is invalid.") from None
        if sent.tzinfo is None:
            raise Refusal(400, "InvalidDateHeader", "The Date header format is invalid.")
        # The error-code table says 408 TimeExpired; the signing page says only "400".
        if abs(sent.timestamp() - time.time()) > ALLOWED_CLOCK_SKEW_SECONDS:
            raise Refusal(408, "TimeExpired", "The http request you sent is expired.")
        authorization = headers.get("Authorization")
        if not authorization:
            raise Refusal(400, "MissingAuthorizationHeader", "Authorization header is required.")
        match = _MNS_AUTHORIZATION.fullmatch(authorization)
        if match is None:
            raise Refusal(
                400, "InvalidAuthorizationHeader", "The Authorization header format is invalid."
            )
        credentials, expired = self._tokens.credentials(match["key_id"])
        if credentials is None:
            raise Refusal(403, "InvalidAccessKeyId", "The AccessKey Id you provided is not exist.")
        if headers.get("security-token") != credentials.security_token:
            raise Refusal(
                403, "AccessDenied", "The security-token is missing or not this AccessKey's."
            )
        content_md5 = headers.get("Content-MD5") or ""
        if content_md5 and content_md5 not in _content_md5_forms(body):
            raise Refusal(400, "InvalidDegist", "The Content-MD5 you specified is invalid.")
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
            raise Refusal(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        if expired or time.time() >= credentials.expires_at:
            raise Refusal(403, self._expiry_error_code, EXPIRED_STS_MESSAGE)
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
        raise Refusal(400, "InvalidRequestURL", f"The stand-in does not serve {operation}.")

    def _receive(self, queue: _Queue, params: dict[str, str], batch: bool) -> Answer:
        wanted = _bounded(params, "numOfMessages", 1, MAX_MESSAGES_PER_CALL) if batch else 1
        wait = _bounded(params, "waitseconds", 0, MAX_WAIT_SECONDS, self._polling_wait_seconds)
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
                    raise Refusal(404, "MessageNotExist", _NO_MESSAGE)
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
        message.visible_at = now + self._visibility_timeout_seconds
        self._renew_handle(queue, message)
        return message

    def _renew_handle(self, queue: _Queue, message: _QueueMessage) -> None:
        # Shaped like Alibaba's (1-<base64 of digits and dashes>): no '+' or '/' to escape.
        detail = f"{message.sequence}-{message.dequeue_count}-{secrets.randbelow(10**12)}"
        handle = "1-" + base64.b64encode(detail.encode("ascii")).decode("ascii")
        message.receipt_handle = handle
        queue.handles[handle] = message

    def _delete(self, queue: _Queue, handle: str) -> Refusal | None:
        """Caller holds the lock. A handle is good only until its message's NextVisibleTime."""
        message = queue.handles.get(handle)
        if message is not None and message.deleted:
            return Refusal(404, "MessageNotExist", _NO_MESSAGE)
        if (
            message is None
            or message.receipt_handle != handle
            or not message.in_flight(time.time())
        ):
            return Refusal(400, "ReceiptHandleError", _INVALID_HANDLE)
        scripted = self._faults.rejected_delete(message.message_id, handle)
        if scripted is not None:
            return Refusal(400, scripted, _INVALID_HANDLE)
        message.deleted = True
        return None

    def _batch_delete(self, queue: _Queue, body: bytes) -> Answer:
        handles = _receipt_handles(body)
        if not 1 <= len(handles) <= MAX_MESSAGES_PER_CALL:
            raise Refusal(
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
                raise Refusal(400, "ReceiptHandleError", _INVALID_HANDLE)
            message.visible_at = time.time() + seconds
            self._renew_handle(queue, message)
            root = ElementTree.Element("ChangeVisibility", xmlns=MNS_NAMESPACE)
            ElementTree.SubElement(root, "ReceiptHandle").text = message.receipt_handle
            ElementTree.SubElement(root, "NextVisibleTime").text = str(_ms(message.visible_at))
            self._changed.notify_all()
        return _xml_answer(200, root)

    def _pick(self, queue: str | None) -> Iterator[_Queue]:
        return (
            iter(self._queues.values())
            if queue is None
            else iter([self._queues[self.resolve(queue)]])
        )

    def _find(self, message_id: str) -> _QueueMessage:
        for queue in self._queues.values():
            for message in queue.messages:
                if message.message_id == message_id:
                    return message
        raise KeyError(message_id)


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


def _json_bytes(document: JsonDocument) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _ms(epoch_seconds: float) -> int:
    return int(epoch_seconds * 1000)


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
        raise Refusal(400, code, f"{name} is required.")
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
        raise Refusal(
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
        raise Refusal(400, "MalformedXML", "The XML you provided was not well-formed.") from None
    if _local_name(root.tag) != "ReceiptHandles":
        raise Refusal(400, "InvalidArgument", "The root element must be ReceiptHandles.")
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


def mns_error(refusal: Refusal, headers: Message) -> Answer:
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
