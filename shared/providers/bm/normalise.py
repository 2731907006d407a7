"""Business Messages payloads as the product's own events (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from shared.core.events import (
    MALFORMED,
    NOT_JSON,
    REJECTED_RECEIPT,
    UNKNOWN_KIND,
    Parked,
    Payload,
    StatusReport,
    UserMessage,
    parked_whole,
    payload_key,
)
from shared.core.ingress import parse_json
from shared.core.times import parse_rfc3339
from shared.providers.bm import NAME, READABLE_KINDS, SCALE, UNKNOWN, kind_of
from shared.providers.bm.redaction import redacted

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


def normalise(raw: bytes, attributes: Mapping[str, str], received: datetime) -> list[Payload]:
    """One payload: a Business Messages body is about one conversation."""
    return [normalise_one(raw)]


def normalise_one(raw: bytes) -> Payload:
    document = parse_json(raw)
    # A sign-in published before the webhook redacted it keeps its identity, not its code.
    stored = redacted(document) or raw
    base = Payload(
        provider=NAME, kind=kind_of(document), key=payload_key(raw), scale=SCALE, raw=stored
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
    )
    body = document[base.kind]
    if base.kind == "receipts":
        return _receipts(common, body)
    try:
        user_message = _user_message(common, base.kind, body, document.get("context"))
    except ValueError as problem:
        return parked_whole(common, MALFORMED, str(problem))
    return replace(common, user_messages=(user_message,))


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
            parked.append(Parked(REJECTED_RECEIPT, problem, index))
        else:
            message_id = _message_id(entry["message"], common.conversation_id)
            assert message_id is not None
            reports.append(
                StatusReport(message_id, entry["receiptType"], receipt_time, index=index)
            )
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
