"""Google Business Messages: handshake, signature, and normalising payloads.

The webhook half (parse_json, handshake, signature_valid, describe) stays import-light;
the subscriber half (normalise, read_receipt_target) builds the product's own events.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from shared import routing
from shared.config import Env
from shared.events import (
    MALFORMED,
    NOT_JSON,
    REJECTED_RECEIPT,
    UNKNOWN_KIND,
    Parked,
    Payload,
    StatusReport,
    StatusScale,
    UserMessage,
    parked_whole,
    payload_key,
)
from shared.ingress import Incoming, Publish, Reply, parse_json
from shared.times import parse_rfc3339

log = logging.getLogger(__name__)

PROVIDER = "bm"
SIGNATURE_HEADER = "X-Goog-Signature"
SIGNATURE_BYTES = hashlib.sha512().digest_size

KINDS = (
    "message",
    "receipts",
    "suggestionResponse",
    "authenticationResponse",
    "userStatus",
    "surveyResponse",
)
UNKNOWN = "unknown"
# User messages that carry a message name, and so get the agent's READ receipt.
READABLE_KINDS = frozenset({"message", "suggestionResponse"})

SCALE = StatusScale({"DELIVERED": 1, "READ": 2})

_MESSAGE_NAME = re.compile(r"conversations/(?P<conversation>[^/]+)/messages/(?P<message>[^/]+)")
_IMAGE_URL_PREFIX = "https://storage.googleapis.com/"
_CONTEXT_FIELDS = (
    "customContext",
    "entryPoint",
    "placeId",
    "nearPlaceId",
    "resolvedLocale",
    "userInfo",
    "widget",
)
_SURVEY_FIELDS = (
    "survey",
    "rating",
    "feedback",
    "surveyQuestionId",
    "questionResponseText",
    "questionResponsePostbackData",
    "questionType",
    "questionIndex",
    "totalQuestionCount",
    "surveyTriggerSource",
)


# --- webhook half ---------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    signing_keys: tuple[str, ...]
    client_token: str


def config_from_env(env: Env) -> Config | None:
    """Business Messages is on when its keys are configured; then both are required."""
    if not env.present("BM_SIGNING_KEY", "BM_CLIENT_TOKEN"):
        return None
    return Config(env.secrets("BM_SIGNING_KEY"), env.required("BM_CLIENT_TOKEN"))


def receive(request: Incoming, config: Config) -> Reply | Publish:
    """Answers the handshake, refuses what is not signed, and hands the rest off unchanged."""
    document = parse_json(request.body)
    shake = handshake(document)
    if shake is not None:
        if not token_matches(shake.client_token, config.client_token):
            log.warning("refused a webhook handshake with a wrong clientToken")
            return Reply(403, {"error": "clientToken does not match"})
        log.info("answered the webhook verification handshake")
        return Reply(200, shake.secret)
    if not signature_valid(
        request.body, request.headers.get(SIGNATURE_HEADER), config.signing_keys
    ):
        log.warning("rejected a request without a valid signature", extra={"status": 401})
        return Reply(401, {"error": "missing or invalid X-Goog-Signature"})
    description = describe(document)
    return Publish(
        topic_key=description.topic_key,
        attributes=description.attributes,
        accepted={"status": "accepted"},
        refused=Reply(503, {"error": "event could not be stored, retry later"}),
    )


@dataclass(frozen=True)
class Handshake:
    client_token: str
    secret: str


def handshake(document: Any) -> Handshake | None:
    """The webhook verification request: a JSON object of exactly clientToken and secret."""
    if (
        isinstance(document, dict)
        and document.keys() == {"clientToken", "secret"}
        and isinstance(document["clientToken"], str)
        and isinstance(document["secret"], str)
    ):
        return Handshake(document["clientToken"], document["secret"])
    return None


def token_matches(offered: str, expected: str) -> bool:
    return hmac.compare_digest(offered.encode(), expected.encode())


def signature_valid(body: bytes, header: str | None, keys: Iterable[str]) -> bool:
    """base64(HMAC-SHA512(key, raw body)) against every configured key, in constant time."""
    if not header:
        return False
    try:
        offered = base64.b64decode(header.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(offered) != SIGNATURE_BYTES:
        return False
    matches = [hmac.compare_digest(offered, sign(body, key)) for key in keys]
    return any(matches)


def sign(body: bytes, key: str) -> bytes:
    return hmac.new(key.encode(), body, hashlib.sha512).digest()


def signature_header(body: bytes, key: str) -> str:
    """What Google sends in X-Goog-Signature; used by the demo and the tests."""
    return base64.b64encode(sign(body, key)).decode()


def kind_of(document: Any) -> str:
    if isinstance(document, dict):
        for kind in KINDS:
            if kind in document:
                return kind
    return UNKNOWN


def topic_key(kind: str) -> str:
    return routing.READABLE if kind in READABLE_KINDS else routing.EVENTS


def describe(document: Any) -> routing.Description:
    kind = kind_of(document)
    fields = document if isinstance(document, dict) else {}
    return routing.Description(
        kind=kind,
        topic_key=topic_key(kind),
        attributes=routing.attributes(
            provider=PROVIDER,
            kind=kind,
            conversationId=fields.get("conversationId"),
            requestId=fields.get("requestId"),
        ),
    )


# --- subscriber half ------------------------------------------------------------------


def normalise(raw: bytes) -> Payload:
    document = parse_json(raw)
    base = Payload(
        provider=PROVIDER, kind=kind_of(document), key=payload_key(raw), scale=SCALE, raw=raw
    )
    if not isinstance(document, dict):
        return parked_whole(base, NOT_JSON, "body is not a JSON object")
    if base.kind == UNKNOWN:
        return parked_whole(base, UNKNOWN_KIND, "no known Business Messages event kind")
    conversation_id = document.get("conversationId")
    if not isinstance(conversation_id, str) or not conversation_id:
        return parked_whole(base, MALFORMED, "conversationId is missing")
    request_id = document.get("requestId")
    send_time = parse_rfc3339(document.get("sendTime"))
    agent = document.get("agent")
    common = replace(
        base,
        conversation_id=conversation_id,
        agent=agent if isinstance(agent, str) and agent else None,
        conversation=_present(agent=agent, customAgentId=document.get("customAgentId")),
        request_id=request_id if isinstance(request_id, str) and request_id else None,
        send_time=send_time,
        raw=raw,
    )
    body = document[base.kind]
    if base.kind == "receipts":
        return _receipts(common, body)
    try:
        user_message = _user_message(common, base.kind, body, document.get("context"))
    except ValueError as problem:
        return parked_whole(common, MALFORMED, str(problem))
    return replace(common, user_messages=(user_message,))


def read_receipt_target(raw: bytes) -> tuple[str, str] | None:
    """(conversationId, messageId) of a user message the agent should mark READ."""
    payload = normalise(raw)
    if payload.kind not in READABLE_KINDS or not payload.user_messages:
        return None
    assert payload.conversation_id is not None
    return payload.conversation_id, payload.user_messages[0].message_id


def _present(**values: Any) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value not in (None, "", {}, [])}


def _message_id(name: Any, conversation_id: str) -> str | None:
    if not isinstance(name, str):
        return None
    match = _MESSAGE_NAME.fullmatch(name)
    if match is None or match["conversation"] != conversation_id:
        return None
    return match["message"]


def _receipts(common: Payload, body: Any) -> Payload:
    entries = body.get("receipts") if isinstance(body, dict) else None
    if not isinstance(entries, list) or not entries:
        return parked_whole(common, MALFORMED, "receipts.receipts is not a non-empty list")
    assert common.conversation_id is not None
    receipt_time = parse_rfc3339(body.get("createTime")) or common.send_time
    reports: list[StatusReport] = []
    parked: list[Parked] = []
    for index, entry in enumerate(entries):
        problem = _receipt_problem(entry, common.conversation_id)
        if problem:
            parked.append(Parked(REJECTED_RECEIPT, problem, index, entry))
        else:
            message_id = _message_id(entry["message"], common.conversation_id)
            assert message_id is not None
            reports.append(StatusReport(message_id, entry["receiptType"], receipt_time))
    return replace(common, receipts=tuple(reports), parked=tuple(parked))


def _receipt_problem(entry: Any, conversation_id: str) -> str | None:
    if not isinstance(entry, dict):
        return "receipt is not an object"
    receipt_type = entry.get("receiptType")
    if receipt_type == "RECEIPT_TYPE_UNSPECIFIED":
        return "receiptType is RECEIPT_TYPE_UNSPECIFIED"
    if not isinstance(receipt_type, str) or receipt_type not in SCALE.ranks:
        return "receiptType is missing or unknown"
    if _message_id(entry.get("message"), conversation_id) is None:
        return "message is not a message name of this conversation"
    return None


def _user_message(common: Payload, kind: str, body: Any, context: Any) -> UserMessage:
    if not isinstance(body, dict):
        raise ValueError(f"{kind} is not an object")
    assert common.conversation_id is not None
    if kind in READABLE_KINDS:
        name = body.get("name") if kind == "message" else body.get("message")
        message_id = _message_id(name, common.conversation_id)
        if message_id is None:
            raise ValueError(f"{kind} has no message name of this conversation")
    else:
        # Kinds without a message of their own: the provider's requestId is the dedupe key.
        message_id = (
            f"request-{common.request_id}" if common.request_id else f"payload-{common.key}"
        )
    return UserMessage(
        message_id=message_id,
        kind=kind,
        create_time=parse_rfc3339(body.get("createTime")) or common.send_time,
        content=_CONTENT[kind](body),
        context=_context(context),
    )


def _context(context: Any) -> dict[str, Any]:
    if not isinstance(context, dict):
        return {}
    return _present(**{name: context.get(name) for name in _CONTEXT_FIELDS})


def _message_content(body: Mapping[str, Any]) -> dict[str, Any]:
    text = body.get("text")
    # Images arrive as a signed Cloud Storage URL in `text`, valid for 7 days.
    is_image = isinstance(text, str) and text.startswith(_IMAGE_URL_PREFIX)
    return _present(text=text, imageUrl=text if is_image else None)


def _suggestion_content(body: Mapping[str, Any]) -> dict[str, Any]:
    return _present(
        text=body.get("text"),
        postbackData=body.get("postbackData"),
        suggestionType=body.get("suggestionType") or body.get("type"),
    )


def _authentication_content(body: Mapping[str, Any]) -> dict[str, Any]:
    # The OAuth authorization code is a credential: record that it came, never the code.
    return _present(
        codeReceived=bool(body.get("code")),
        redirectUri=body.get("redirectUri") or body.get("redirect_uri"),
        errorDetails=body.get("errorDetails"),
    )


def _user_status_content(body: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: _boolean(body[name]) for name in ("isTyping", "requestedLiveAgent") if name in body
    }


def _survey_content(body: Mapping[str, Any]) -> dict[str, Any]:
    return _present(**{name: body.get(name) for name in _SURVEY_FIELDS})


def _boolean(value: Any) -> bool:
    # One guide sends "true" as a string.
    return value is True or (isinstance(value, str) and value.lower() == "true")


_CONTENT = {
    "message": _message_content,
    "suggestionResponse": _suggestion_content,
    "authenticationResponse": _authentication_content,
    "userStatus": _user_status_content,
    "surveyResponse": _survey_content,
}
