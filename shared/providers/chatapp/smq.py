"""The two Alibaba services of Chat App's queue mode, as small typed clients on `requests`.

- Dybaseapi `QueryTokenForMnsQueue` (version 2017-05-25), signed ACS3-HMAC-SHA256 with the
  business's AccessKey, as Alibaba's official client signs by default: temporary
  credentials for the queue of one MessageType.
- The SMQ (formerly MNS) queue REST contract, version 2015-06-06, signed with those
  credentials: BatchReceiveMessage (a long poll) and BatchDeleteMessage.

Not the official SDKs (aliyun-mns-sdk, alibabacloud-dybaseapi20170525): the queue SDK sets no
socket timeout over https, reports error codes but not HTTP statuses, loses a whole receive
to one body that is not base64, shares one connection per client across threads, and pulls
in an unused crypto library; the token SDK adds 22 packages and a quarter of a second of
import for a call made about once an hour per queue. Both contracts are a few headers and
one HMAC each; tools/standins/alibaba/, which the official SDKs are tested against,
tests these clients too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import formatdate
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from shared.core.times import from_unix_millis
from shared.providers.chatapp.queue_plan import QueueMessage

TOKEN_ACTION = "QueryTokenForMnsQueue"  # noqa: S105 -- an API's name
DYBASEAPI_VERSION = "2017-05-25"
MNS_VERSION = "2015-06-06"
_MNS = "{http://mns.aliyuncs.com/doc/v1/}"
RECEIVE_BATCH = 16  # messages one receive may ask for, at most
LONGEST_WAIT_SECONDS = 30  # the queue refuses a longer long poll
CONNECT_TIMEOUT_SECONDS = 5.0
# How long an answer may take beyond a receive's own wait: a stalled service must not hold
# a run past its next one.
ANSWER_TIMEOUT_SECONDS = 10.0
# Dybaseapi writes ExpireTime as China Standard Time, with no zone in the string.
CHINA_STANDARD_TIME = timezone(timedelta(hours=8))
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MESSAGE_NOT_EXIST = "MessageNotExist"
UNREADABLE_EXPIRY_SECONDS = 600.0
MESSAGE_KEPT = 160


class AlibabaRefused(Exception):
    """A call not answered as asked: the service's status (0: no answer) and error code."""

    def __init__(self, service: str, status: int, code: str, message: str = "") -> None:
        # Alibaba's own message, cut short: some quote the string they signed at length.
        said = message[:MESSAGE_KEPT]
        super().__init__(f"{service} answered {status or 'nothing'} {code}: {said}".strip(": "))
        self.service = service
        self.status = status
        self.code = code

    @property
    def denied(self) -> bool:
        """The credentials were refused: expired, revoked or wrong."""
        return self.status == 403


@dataclass(frozen=True)
class QueueToken:
    """Temporary credentials for one queue; never logged."""

    access_key_id: str
    access_key_secret: str = field(repr=False)
    security_token: str = field(repr=False)
    issued_at: float  # epoch seconds
    expires_at: float


class TokenClient:
    """QueryTokenForMnsQueue with the business's AccessKey. One per queue: not thread-safe."""

    def __init__(self, endpoint: str, access_key_id: str, access_key_secret: str) -> None:
        self._endpoint = endpoint.rstrip("/")
        self._host = urlsplit(self._endpoint).netloc
        self._key_id = access_key_id
        self._secret = access_key_secret.encode()
        self._session = requests.Session()

    def query(self, message_type: str, queue_name: str) -> QueueToken:
        parameters = {"MessageType": message_type, "QueueName": queue_name}
        query = "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(parameters.items()))
        headers = {
            "host": self._host,
            "x-acs-action": TOKEN_ACTION,
            "x-acs-version": DYBASEAPI_VERSION,
            "x-acs-date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "x-acs-signature-nonce": uuid.uuid4().hex,
            "x-acs-content-sha256": _EMPTY_SHA256,
        }
        headers["Authorization"] = self._authorization(query, headers)
        try:
            answer = self._session.post(
                f"{self._endpoint}/?{query}",
                headers=headers,
                timeout=(CONNECT_TIMEOUT_SECONDS, ANSWER_TIMEOUT_SECONDS),
            )
        except requests.RequestException as error:
            raise AlibabaRefused("Dybaseapi", 0, type(error).__name__) from error
        document = _json_object(answer)
        token = document.get("MessageTokenDTO")
        if answer.status_code != 200 or document.get("Code") != "OK" or not isinstance(token, dict):
            code = str(document.get("Code") or f"HTTP {answer.status_code}")
            message = str(document.get("Message") or "")
            raise AlibabaRefused("Dybaseapi", answer.status_code, code, message)
        issued_at = _china_time(token.get("CreateTime")) or time.time()
        try:
            return QueueToken(
                str(token["AccessKeyId"]),
                str(token["AccessKeySecret"]),
                str(token["SecurityToken"]),
                issued_at,
                # One that cannot be read is renewed within minutes, and on the first 403.
                _china_time(token.get("ExpireTime")) or issued_at + UNREADABLE_EXPIRY_SECONDS,
            )
        except KeyError as error:
            raise AlibabaRefused("Dybaseapi", 200, "IncompleteToken", str(error)) from error

    def _authorization(self, query: str, headers: dict[str, str]) -> str:
        """ACS3-HMAC-SHA256 over the canonical request; every header above is signed."""
        names = sorted(headers)
        canonical_headers = "".join(f"{name}:{headers[name].strip()}\n" for name in names)
        signed = ";".join(names)
        canonical_request = f"POST\n/\n{query}\n{canonical_headers}\n{signed}\n{_EMPTY_SHA256}"
        digest = hashlib.sha256(canonical_request.encode()).hexdigest()
        signature = hmac.new(self._secret, f"ACS3-HMAC-SHA256\n{digest}".encode(), "sha256")
        return (
            f"ACS3-HMAC-SHA256 Credential={self._key_id},SignedHeaders={signed},"
            f"Signature={signature.hexdigest()}"
        )


class QueueClient:
    """One queue's REST client. Its connection serves one thread at a time."""

    def __init__(self, endpoint: str, queue_name: str) -> None:
        self._endpoint = endpoint.rstrip("/")
        self._resource = f"/queues/{queue_name}/messages"
        self._session = requests.Session()

    def receive(self, token: QueueToken, count: int, wait: int) -> list[QueueMessage]:
        """Up to count messages, waiting up to wait seconds for the first; [] when none came."""
        resource = f"{self._resource}?numOfMessages={count}&waitseconds={wait}"
        answer = self._call("GET", resource, token, wait + ANSWER_TIMEOUT_SECONDS)
        if answer.status_code != 200:
            refusal = _refusal(answer)
            if refusal.code == MESSAGE_NOT_EXIST:
                return []
            raise refusal
        return [
            QueueMessage(
                message_id=_text(element, "MessageId"),
                receipt_handle=_text(element, "ReceiptHandle"),
                body=_text(element, "MessageBody"),
                dequeue_count=_count(_text(element, "DequeueCount")),
                enqueue_time=from_unix_millis(_text(element, "EnqueueTime")),
            )
            for element in _xml(answer.content).iter(f"{_MNS}Message")
        ]

    def delete(self, token: QueueToken, handles: list[str]) -> dict[str, str]:
        """Deletes these messages (at most 16); returns the error code of each that failed."""
        root = ElementTree.Element("ReceiptHandles", xmlns=_MNS[1:-1])
        for handle in handles:
            ElementTree.SubElement(root, "ReceiptHandle").text = handle
        body = ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
        answer = self._call("DELETE", self._resource, token, ANSWER_TIMEOUT_SECONDS, body)
        if answer.status_code == 204:
            return {}
        errors = _xml(answer.content)
        if answer.status_code == 404 and errors.tag == f"{_MNS}Errors":
            # A partial failure: one <Error> per handle that was not deleted.
            return {_text(error, "ReceiptHandle"): _text(error, "ErrorCode") for error in errors}
        raise _refusal(answer)

    def _call(
        self, method: str, resource: str, token: QueueToken, timeout: float, body: bytes = b""
    ) -> requests.Response:
        content_type = "text/xml;charset=utf-8" if body else ""
        date = formatdate(usegmt=True)
        # METHOD, Content-MD5 (not sent), Content-Type, Date, the x-mns-* headers, resource.
        to_sign = f"{method}\n\n{content_type}\n{date}\nx-mns-version:{MNS_VERSION}\n{resource}"
        digest = hmac.new(token.access_key_secret.encode(), to_sign.encode(), "sha1").digest()
        headers = {
            "Date": date,
            "x-mns-version": MNS_VERSION,
            "security-token": token.security_token,
            "Authorization": f"MNS {token.access_key_id}:{base64.b64encode(digest).decode()}",
        }
        if content_type:
            headers["Content-Type"] = content_type
        try:
            return self._session.request(
                method,
                self._endpoint + resource,
                data=body or None,
                headers=headers,
                timeout=(CONNECT_TIMEOUT_SECONDS, timeout),
            )
        except requests.RequestException as error:
            raise AlibabaRefused("SMQ", 0, type(error).__name__) from error


def _json_object(answer: requests.Response) -> dict[str, Any]:
    try:
        document = answer.json()
    except ValueError:  # requests' JSONDecodeError is one
        return {}
    return document if isinstance(document, dict) else {}


def _refusal(answer: requests.Response) -> AlibabaRefused:
    try:
        error = _xml(answer.content)
        code, message = _text(error, "Code"), _text(error, "Message")
    except AlibabaRefused:
        code, message = "", ""
    return AlibabaRefused("SMQ", answer.status_code, code or f"HTTP {answer.status_code}", message)


def _xml(content: bytes) -> ElementTree.Element:
    try:
        # The queue service's own answer; expat (>= 2.4.1, bundled) refuses entity bombs.
        return ElementTree.fromstring(content)  # noqa: S314
    except ElementTree.ParseError as error:
        raise AlibabaRefused("SMQ", 0, "MalformedAnswer", str(error)) from error


def _text(element: ElementTree.Element, name: str) -> str:
    return (element.findtext(f"{_MNS}{name}") or "").strip()


def _count(text: str) -> int:
    """DequeueCount; one that cannot be read counts as the first receive."""
    return int(text) if text.isdigit() else 1


def _encode(value: str) -> str:
    """RFC 3986, as Alibaba's signatures want: only A-Z a-z 0-9 - _ . ~ stay as they are."""
    return quote(value, safe="~")


def _china_time(text: object) -> float | None:
    """`yyyy-MM-dd HH:mm:ss` in UTC+8, as epoch seconds."""
    try:
        parsed = datetime.strptime(str(text), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return parsed.replace(tzinfo=CHINA_STANDARD_TIME).timestamp()
