"""Dybaseapi's `QueryTokenForMnsQueue` (POP RPC, version 2017-05-25): checks the caller's
AccessKey signature, in both forms Alibaba documents, and issues expiring STS credentials for
the queue of one MessageType.

ACS3-HMAC-SHA256 headers are what the official `alibabacloud-dybaseapi20170525` client sends
by default; HMAC-SHA1 in the query is what it sends with `signature_algorithm="v2"`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import string
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email.message import Message
from typing import Any
from urllib.parse import parse_qsl, quote

from tools.standins.alibaba.faults import FaultScript
from tools.standins.alibaba.wire import (
    ALLOWED_CLOCK_SKEW_SECONDS,
    Answer,
    Call,
    CallLog,
    Refusal,
    json_answer,
    request_id,
)

DYBASEAPI_VERSION = "2017-05-25"
DYBASEAPI_ACTION = "QueryTokenForMnsQueue"
# Dybaseapi writes ExpireTime as China Standard Time with no zone in the string.
CHINA_STANDARD_TIME = timezone(timedelta(hours=8))
ALIBABA_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
ACS3_HMAC_SHA256 = "ACS3-HMAC-SHA256"
RPC_HMAC_SHA1 = "HMAC-SHA1"

_ALPHANUMERIC = string.ascii_letters + string.digits


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


class TokenService:
    def __init__(
        self,
        access_key_id: str,
        access_key_secret: str,
        queue_names: Mapping[str, str],  # MessageType -> queue name
        token_lifetime_seconds: float,
        faults: FaultScript,
        calls: CallLog,
    ) -> None:
        self._access_key_id = access_key_id
        self._access_key_secret = access_key_secret
        self._queue_names = queue_names
        self._token_lifetime_seconds = token_lifetime_seconds
        self._faults = faults
        self._calls = calls
        self._lock = threading.Lock()
        self._credentials: dict[str, StsCredentials] = {}
        self._expired_key_ids: set[str] = set()
        self._nonces: set[str] = set()
        self._issued: list[StsCredentials] = []

    @property
    def issued(self) -> list[StsCredentials]:
        with self._lock:
            return list(self._issued)

    def issue(self, message_type: str) -> StsCredentials:
        """What a successful token call would return, without the call."""
        with self._lock:
            return self._issue(message_type)

    def expire_all(self) -> None:
        """Every token issued so far is expired from now on."""
        with self._lock:
            self._expired_key_ids.update(self._credentials)

    def credentials(self, key_id: str) -> tuple[StsCredentials | None, bool]:
        """The credentials issued with this AccessKey id, if any, and whether they were
        expired by hand (`expire_all`)."""
        with self._lock:
            return self._credentials.get(key_id), key_id in self._expired_key_ids

    def answer(self, method: str, target: str, headers: Message, body: bytes) -> Answer:
        self._faults.wait_out_delay(DYBASEAPI_ACTION)
        params = _form(target.partition("?")[2])
        if (headers.get("Content-Type") or "").startswith("application/x-www-form-urlencoded"):
            params.update(_form(body.decode("utf-8", errors="replace")))
        signature_method: str | None = None
        queue_name: str | None = params.get("QueueName")
        try:
            signature_method = self._authenticate(method, target, headers, body, params)
            self._faults.raise_scripted(DYBASEAPI_ACTION, None)
            message_type = params.get("MessageType")
            if not message_type:
                raise Refusal(
                    400, "MissingMessageType", "MessageType is mandatory for this action."
                )
            known = self._queue_names.get(message_type)
            if known is None or queue_name not in (None, known):
                # Assumed: a business refusal is a 200 whose Code is not OK, as Alibaba's
                # communications APIs answer and the Alicom demos check.
                raise Refusal(
                    200,
                    "InvalidParameter",
                    f"No queue {queue_name!r} for MessageType {message_type!r}.",
                )
            credentials = self.issue(message_type)
            queue_name = credentials.queue_name
            success_body: dict[str, Any] = {
                "RequestId": request_id(),
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
            self._calls.record(Call(DYBASEAPI_ACTION, queue_name, 200, None, signature_method))
            return json_answer(200, success_body)
        except Refusal as refusal:
            self._calls.record(
                Call(DYBASEAPI_ACTION, queue_name, refusal.status, refusal.code, signature_method)
            )
            return json_answer(
                refusal.status,
                {
                    "RequestId": request_id(),
                    "HostId": headers.get("Host") or "dybaseapi.aliyuncs.com",
                    "Code": refusal.code,
                    "Message": refusal.message,
                },
            )

    def _authenticate(
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
            raise Refusal(400, "MissingSignature", "Signature is mandatory for this action.")
        if action != DYBASEAPI_ACTION or version != DYBASEAPI_VERSION:
            raise Refusal(
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
            raise Refusal(
                400,
                "IncompleteSignature",
                "The request signature does not conform to Aliyun standards.",
            )
        if credential != self._access_key_id:
            raise Refusal(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
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
            raise Refusal(
                400, "IncompleteSignature", f"SignedHeaders must include {sorted(required)}."
            )
        payload_hash = hashlib.sha256(body).hexdigest()
        if headers.get("x-acs-content-sha256") != payload_hash:
            raise Refusal(
                400, "SignatureDoesNotMatch", "x-acs-content-sha256 is not the body's SHA-256."
            )
        path, _, query = target.partition("?")
        signed_values = {name: ",".join(headers.get_all(name) or []) for name in signed_names}
        expected = acs3_signature(
            self._access_key_secret,
            method,
            path,
            parse_qsl(query, keep_blank_values=True),
            signed_values,
            payload_hash,
        )
        if not hmac.compare_digest(expected, signature):
            raise Refusal(
                400,
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation.",
            )

    def _check_rpc_v2(self, method: str, params: dict[str, str]) -> None:
        if (
            params.get("SignatureMethod") != RPC_HMAC_SHA1
            or params.get("SignatureVersion") != "1.0"
        ):
            raise Refusal(
                400, "InvalidSignatureMethod", "Only HMAC-SHA1 signature version 1.0 is supported."
            )
        if params.get("AccessKeyId") != self._access_key_id:
            raise Refusal(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        signed = {name: value for name, value in params.items() if name != "Signature"}
        expected = rpc_v2_signature(self._access_key_secret, method, signed)
        if not hmac.compare_digest(expected, params["Signature"]):
            raise Refusal(
                400,
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation.",
            )

    def _check_timestamp(self, stamp: str | None) -> None:
        try:
            sent = datetime.strptime(stamp or "", "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise Refusal(
                400, "InvalidTimeStamp.Format", "Specified time stamp is not valid."
            ) from None
        if abs(sent.timestamp() - time.time()) > ALLOWED_CLOCK_SKEW_SECONDS:
            raise Refusal(
                400, "InvalidTimeStamp.Expired", "Specified time stamp or date header is expired."
            )

    def _check_nonce(self, nonce: str | None) -> None:
        with self._lock:
            if not nonce or nonce in self._nonces:
                raise Refusal(
                    400, "SignatureNonceUsed", "Specified signature nonce was used already."
                )
            self._nonces.add(nonce)

    def _issue(self, message_type: str) -> StsCredentials:
        """Caller holds the lock."""
        now = time.time()
        # ExpireTime has whole seconds: the token ends exactly at the second it names.
        expires_at = float(math.floor(now + self._token_lifetime_seconds))
        credentials = StsCredentials(
            access_key_id="STS." + "".join(secrets.choice(_ALPHANUMERIC) for _ in range(24)),
            access_key_secret="".join(secrets.choice(_ALPHANUMERIC) for _ in range(44)),
            security_token="CAIS" + base64.b64encode(secrets.token_bytes(180)).decode("ascii"),
            message_type=message_type,
            queue_name=self._queue_names[message_type],
            create_time=china_standard_time(now),
            expire_time=china_standard_time(expires_at),
            expires_at=expires_at,
        )
        self._credentials[credentials.access_key_id] = credentials
        self._issued.append(credentials)
        return credentials


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


def _form(text: str) -> dict[str, str]:
    return dict(parse_qsl(text, keep_blank_values=True))
