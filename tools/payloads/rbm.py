"""RCS Business Messaging webhook requests as Google sends them, signed; for tests, the demo
and the bench.

Each event is a JSON object (UserMessage, UserEvent, ServerEvent, AgentLaunchEvent) that
Google base64-encodes into `message.data` of a Pub/Sub-push-shaped envelope, one event per
request. `X-Goog-Signature` is base64 of HMAC-SHA512, keyed with the webhook's clientToken,
over the base64-DECODED `message.data`: never over the raw request body.

The builders return the decoded event as a plain dict, so a test can bend it before
`envelope()` wraps it. Ids and times are parameters for deterministic tests; their defaults
look like Google's: E.164 numbers, agent ids with "@rbm.goog", RFC 3339 times with
nanoseconds, numeric Pub/Sub message ids.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal

import requests

from shared.providers.rbm import NAME
from shared.providers.rbm.envelope import canonical
from shared.providers.rbm.normalise import conversation_id
from tools.payloads.contract import Sample, WebhookRequest, first_secret

AGENT_ID = "receipts-demo-agent"  # the bare id that the API's agentId parameter takes
AGENT = f"{AGENT_ID}@rbm.goog"  # the id as every payload writes it
USER_PHONE = "+447700900123"  # Ofcom's drama range: never a real subscriber
SUBSCRIPTION = "projects/rbm-demo-partner/subscriptions/rbm-demo-webhook"
PROJECT_NUMBER = "123456789012"
SIGNATURE_HEADER = "X-Goog-Signature"
LAUNCH_EVENT_TYPE = "agent_launch_event"

UserEventType = Literal["DELIVERED", "READ", "IS_TYPING", "SUBSCRIBE", "UNSUBSCRIBE"]
ServerEventType = Literal["TTL_EXPIRATION_REVOKED", "TTL_EXPIRATION_REVOKE_FAILED"]
LaunchState = Literal["UNLAUNCHED", "PENDING", "LAUNCHED", "REJECTED", "SUSPENDED"]
SuggestionType = Literal["REPLY", "ACTION", "UNKNOWN"]

# Only these user events name the agent's message they are about.
_EVENTS_WITH_MESSAGE = frozenset({"DELIVERED", "READ"})


# --- times and ids ----------------------------------------------------------------------


def rfc3339_nanos(at: datetime | None = None) -> str:
    """A time as RBM's payloads write it: UTC, 'Z', nine fractional digits; now by default."""
    if at is None:
        seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
        whole = datetime.fromtimestamp(seconds, UTC)
    else:
        whole = at.astimezone(UTC).replace(microsecond=0)
        nanos = at.microsecond * 1000
    return f"{whole:%Y-%m-%dT%H:%M:%S}.{nanos:09d}Z"


def publish_time(at: datetime | None = None) -> str:
    """A time as Pub/Sub's envelope writes it: trailing zeros trimmed ('...:21.88Z')."""
    moment = (at or datetime.now(UTC)).astimezone(UTC)
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    return f"{moment:%Y-%m-%dT%H:%M:%S}" + (f".{fraction}" if fraction else "") + "Z"


def pubsub_message_id() -> str:
    """Pub/Sub's message ids are decimal strings of about 17 digits."""
    return str(10**16 + secrets.randbelow(9 * 10**16))


def client_id() -> str:
    """An id assigned by the user's RCS client (messageId, eventId): opaque to the agent."""
    return "Ms" + secrets.token_urlsafe(16)


# --- user messages ----------------------------------------------------------------------


def _user_message(
    content: Mapping[str, Any],
    phone: str,
    message_id: str | None,
    at: datetime | None,
    agent: str,
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "senderPhoneNumber": phone,
        "messageId": message_id or client_id(),
        "sendTime": rfc3339_nanos(at),
        "agentId": agent,
        **content,
        **extra,
    }


def text_message(
    text: str,
    *,
    phone: str = USER_PHONE,
    message_id: str | None = None,
    at: datetime | None = None,
    agent: str = AGENT,
    **extra: Any,
) -> dict[str, Any]:
    """A typed message. `extra` adds fields such as richMessageClassification (US traffic)."""
    return _user_message({"text": text}, phone, message_id, at, agent, extra)


def suggestion_response(
    postback_data: str,
    text: str,
    *,
    kind: SuggestionType = "REPLY",
    phone: str = USER_PHONE,
    message_id: str | None = None,
    at: datetime | None = None,
    agent: str = AGENT,
    **extra: Any,
) -> dict[str, Any]:
    """The user tapped a suggested reply or action the agent sent."""
    content = {"suggestionResponse": {"postbackData": postback_data, "text": text, "type": kind}}
    return _user_message(content, phone, message_id, at, agent, extra)


def location_message(
    latitude: float,
    longitude: float,
    *,
    phone: str = USER_PHONE,
    message_id: str | None = None,
    at: datetime | None = None,
    agent: str = AGENT,
    **extra: Any,
) -> dict[str, Any]:
    content = {"location": {"latitude": latitude, "longitude": longitude}}
    return _user_message(content, phone, message_id, at, agent, extra)


def file_info(
    file_name: str, mime_type: str, size: int, object_id: str | None = None
) -> dict[str, Any]:
    """A FileInfo: where RBM stored a file the user sent."""
    stored = object_id or f"{uuid.uuid4()}/{secrets.token_hex(32)}"
    return {
        "mimeType": mime_type,
        "fileSizeBytes": size,
        "fileUri": f"https://storage.googleapis.com/rbm-user-files/{stored}",
        "fileName": file_name,
    }


def file_message(
    payload: Mapping[str, Any] | None = None,
    *,
    thumbnail: Mapping[str, Any] | None = None,
    phone: str = USER_PHONE,
    message_id: str | None = None,
    at: datetime | None = None,
    agent: str = AGENT,
    **extra: Any,
) -> dict[str, Any]:
    """A file (by default a photo of a receipt, with its thumbnail; thumbnail is optional)."""
    if payload is None:
        payload = file_info("receipt.jpg", "image/jpeg", 248_731)
        if thumbnail is None:
            thumbnail = file_info("receipt_thumb.jpg", "image/jpeg", 9_312)
    user_file: dict[str, Any] = {"payload": dict(payload)}
    if thumbnail is not None:
        user_file = {"thumbnail": dict(thumbnail), **user_file}
    return _user_message({"userFile": user_file}, phone, message_id, at, agent, extra)


# --- events -----------------------------------------------------------------------------


def user_event(
    event_type: UserEventType,
    message_id: str | None = None,
    *,
    phone: str = USER_PHONE,
    event_id: str | None = None,
    at: datetime | None = None,
    agent: str = AGENT,
) -> dict[str, Any]:
    """An event on the user's device. DELIVERED and READ name the agent's message."""
    if (event_type in _EVENTS_WITH_MESSAGE) != (message_id is not None):
        raise ValueError(f"{event_type}: messageId only and always on DELIVERED and READ")
    event: dict[str, Any] = {
        "senderPhoneNumber": phone,
        "eventType": event_type,
        "eventId": event_id or client_id(),
    }
    if message_id is not None:
        event["messageId"] = message_id
    return {**event, "sendTime": rfc3339_nanos(at), "agentId": agent}


def server_event(
    event_type: ServerEventType,
    message_id: str,
    *,
    phone: str = USER_PHONE,
    event_id: str | None = None,
    at: datetime | None = None,
    agent: str = AGENT,
) -> dict[str, Any]:
    """The agent's message outlived its TTL. Server events say phoneNumber, not sender."""
    return {
        "phoneNumber": phone,
        "agentId": agent,
        "messageId": message_id,
        "eventType": event_type,
        "eventId": event_id or str(uuid.uuid4()),
        "sendTime": rfc3339_nanos(at),
    }


def agent_launch_event(
    new_state: LaunchState,
    old_state: LaunchState = "PENDING",
    *,
    region_id: str = "/v1/regions/fi-rcs",
    comment: str = "",
    event_id: str | None = None,
    at: datetime | None = None,
    agent: str = AGENT,
) -> dict[str, Any]:
    """The agent's launch state changed in one region (a carrier approved, rejected, ...)."""
    bare = agent.removesuffix("@rbm.goog")
    return {
        "eventId": event_id or f"{bare}/{uuid.uuid4()}",
        "agentId": agent,
        "botDisplayName": "Receipts Demo",
        "brandId": "6f1c2d0e-4b1a-4c55-9a8e-0d1f2a3b4c5d",
        "brandDisplayName": "Demo Brand",
        "regionId": region_id,
        "oldLaunchState": old_state,
        "newLaunchState": new_state,
        "actingParty": "rbm-support@google.com",
        "comment": comment,
        "sendTime": rfc3339_nanos(at),
    }


def launch_attributes(
    event: Mapping[str, Any], project_number: str = PROJECT_NUMBER
) -> dict[str, str]:
    """The Pub/Sub attributes a launch event comes with; `type` tells it from user events."""
    return {
        "business_id": str(event.get("agentId", AGENT)),
        "event_type": str(event.get("newLaunchState", "")),
        "product": "RBM",
        "project_number": project_number,
        "type": LAUNCH_EVENT_TYPE,
    }


# --- the request ------------------------------------------------------------------------


def encode_data(event: Mapping[str, Any]) -> bytes:
    """The bytes Google base64-encodes into message.data, and signs."""
    return json.dumps(event).encode()


def envelope(
    event: Mapping[str, Any] | bytes,
    *,
    attributes: Mapping[str, str] | None = None,
    message_id: str | None = None,
    published: datetime | None = None,
    subscription: str = SUBSCRIPTION,
) -> dict[str, Any]:
    """The Pub/Sub-push-shaped body around one event (or around any bytes, for hostile
    tests). A launch event gets its attributes unless `attributes` says otherwise."""
    data = event if isinstance(event, bytes) else encode_data(event)
    if attributes is None and not isinstance(event, bytes) and "newLaunchState" in event:
        attributes = launch_attributes(event)
    pubsub_id = message_id or pubsub_message_id()
    at = publish_time(published)
    message: dict[str, Any] = {}
    if attributes:
        message["attributes"] = dict(attributes)
    # Both spellings, as Pub/Sub push writes them.
    message |= {
        "data": base64.b64encode(data).decode(),
        "messageId": pubsub_id,
        "message_id": pubsub_id,
        "publishTime": at,
        "publish_time": at,
    }
    return {"message": message, "subscription": subscription}


def encode(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document).encode()


def push(event: Mapping[str, Any] | bytes, **envelope_fields: Any) -> bytes:
    """The request body for one event: envelope() then encode()."""
    return encode(envelope(event, **envelope_fields))


def data_of(body: bytes) -> bytes:
    """The decoded message.data of a request body: what the signature covers."""
    return base64.b64decode(json.loads(body)["message"]["data"], validate=True)


def decode(body: bytes) -> Any:
    """The event a request body carries."""
    return json.loads(data_of(body))


def signature(data: bytes, client_token: str) -> str:
    """X-Goog-Signature for these bytes: base64 (standard, padded) of HMAC-SHA512."""
    digest = hmac.new(client_token.encode(), data, hashlib.sha512).digest()
    return base64.b64encode(digest).decode()


def signed_headers(body: bytes, client_token: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature(data_of(body), client_token),
    }


def post_signed(
    url: str, body: bytes, token: str, session: requests.Session | None = None
) -> requests.Response:
    """POSTs an envelope body signed with the webhook's clientToken, as Google does."""
    headers = signed_headers(body, token)
    return (session or requests).post(url, data=body, headers=headers, timeout=30)


def handshake(client_token: str, secret: str) -> bytes:
    """The verification request sent when the webhook is configured (no message key)."""
    return json.dumps({"clientToken": client_token, "secret": secret}).encode()


def post_handshake(
    url: str, client_token: str, secret: str, session: requests.Session | None = None
) -> requests.Response:
    """Whether Google signs the handshake is undocumented; this sends it unsigned."""
    headers = {"Content-Type": "application/json"}
    body = handshake(client_token, secret)
    return (session or requests).post(url, data=body, headers=headers, timeout=30)


class _ContractRequests:
    """RCS Business Messaging for the providers' contract suite."""

    name = NAME
    local_env: Mapping[str, str] = MappingProxyType({"RBM_CLIENT_TOKEN": "local-rbm-client-token"})

    def receipt(self, env: Mapping[str, str], tag: str) -> Sample:
        phone = "+44" + str(int(hashlib.sha256(tag.encode()).hexdigest(), 16))[:10]
        body = encode(envelope(user_event("DELIVERED", f"{tag}-m", phone=phone)))
        headers = signed_headers(body, first_secret(env, "RBM_CLIENT_TOKEN"))
        return Sample(
            WebhookRequest("/rbm", body, headers), conversation_id(AGENT_ID, phone), f"{tag}-m"
        )

    def forged(self, env: Mapping[str, str], request: WebhookRequest) -> WebhookRequest:
        return replace(request, headers=signed_headers(request.body, "not-the-client-token"))

    def unauthenticated(self, env: Mapping[str, str], request: WebhookRequest) -> WebhookRequest:
        return replace(request, headers={"Content-Type": "application/json"})

    def malformed(self, env: Mapping[str, str]) -> WebhookRequest | None:
        body = b'{"message": {"data": "not base64!"}}'
        token = first_secret(env, "RBM_CLIENT_TOKEN")
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature(body, token)}
        return WebhookRequest("/rbm", body, headers)

    def published(self, body: bytes) -> bytes:
        return canonical(data_of(body))


CONTRACT_REQUESTS = _ContractRequests()
