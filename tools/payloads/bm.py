"""Business Messages webhook payloads as Google sends them, signed; for the demo and tests."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import requests

from shared.core import credentials
from shared.core.ingress import parse_json
from shared.providers import bm
from shared.providers.bm import webhook as bm_webhook
from shared.providers.bm.redaction import redacted
from tools.payloads.contract import Sample, WebhookRequest, first_secret

AGENT = "brands/demo-brand/agents/demo-agent"


def rfc3339(at: datetime | None = None) -> str:
    """The time as Google writes it; now when no time is given."""
    return (at or datetime.now(UTC)).isoformat().replace("+00:00", "Z")


def _envelope(conversation_id: str, at: datetime | None = None, **body: Any) -> dict[str, Any]:
    return {
        "agent": AGENT,
        "conversationId": conversation_id,
        "customAgentId": "demo-custom-agent",
        "requestId": str(uuid.uuid4()),
        "sendTime": rfc3339(at),
        **body,
    }


def message_name(conversation_id: str, message_id: str) -> str:
    return f"conversations/{conversation_id}/messages/{message_id}"


def user_text(
    conversation_id: str, message_id: str, text: str, at: datetime | None = None, **context: Any
) -> dict[str, Any]:
    return _envelope(
        conversation_id,
        at,
        message={
            "messageId": message_id,
            "name": message_name(conversation_id, message_id),
            "text": text,
            "createTime": rfc3339(at),
        },
        context={
            "entryPoint": "PLACESHEET",
            "placeId": "ChIJj61dQgK6j4AR4GeTYWZsKWw",
            "resolvedLocale": "en",
            "userInfo": {"displayName": "Demo User", "userDeviceLocale": "en-GB"},
            **context,
        },
    )


def suggestion_response(
    conversation_id: str, message_id: str, postback: str, text: str
) -> dict[str, Any]:
    return _envelope(
        conversation_id,
        suggestionResponse={
            "message": message_name(conversation_id, message_id),
            "postbackData": postback,
            "createTime": rfc3339(),
            "text": text,
            "suggestionType": "REPLY",
        },
    )


def user_event(conversation_id: str, kind: str, **fields: Any) -> dict[str, Any]:
    """authenticationResponse, userStatus, surveyResponse, ... (or a kind yet unknown)."""
    return _envelope(conversation_id, None, **{kind: {"createTime": rfc3339(), **fields}})


def user_status(conversation_id: str, **status: Any) -> dict[str, Any]:
    return user_event(conversation_id, "userStatus", **status)


def receipts(
    conversation_id: str, *entries: tuple[str, str], at: datetime | None = None
) -> dict[str, Any]:
    """entries: (agent message id, receiptType). Receipt payloads carry no requestId."""
    document = _envelope(
        conversation_id,
        at,
        receipts={
            "receipts": [
                {"message": message_name(conversation_id, message_id), "receiptType": receipt_type}
                for message_id, receipt_type in entries
            ],
            "createTime": rfc3339(at),
        },
    )
    del document["requestId"]
    return document


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def signed_headers(body: bytes, key: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        bm_webhook.SIGNATURE_HEADER: credentials.hmac_sha512_header(body, key),
    }


def post_signed(
    url: str, body: bytes, key: str, session: requests.Session | None = None
) -> requests.Response:
    headers = signed_headers(body, key)
    return (session or requests).post(url, data=body, headers=headers, timeout=30)


class _ContractRequests:
    """Business Messages for the providers' contract suite."""

    name = bm.NAME
    local_env: Mapping[str, str] = MappingProxyType(
        {"BM_SIGNING_KEY": "local-signing-key", "BM_CLIENT_TOKEN": "local-client-token"}
    )

    def receipt(self, env: Mapping[str, str], tag: str) -> Sample:
        conversation_id, message_id = f"contract-{tag}", f"{tag}-m"
        body = encode(receipts(conversation_id, (message_id, "DELIVERED")))
        headers = signed_headers(body, first_secret(env, "BM_SIGNING_KEY"))
        return Sample(WebhookRequest("/", body, headers), conversation_id, message_id)

    def forged(self, env: Mapping[str, str], request: WebhookRequest) -> WebhookRequest:
        return replace(request, headers=signed_headers(request.body, "not-the-signing-key"))

    def unauthenticated(self, env: Mapping[str, str], request: WebhookRequest) -> WebhookRequest:
        return replace(request, headers={"Content-Type": "application/json"})

    def malformed(self, env: Mapping[str, str]) -> WebhookRequest | None:
        return None  # a signed body that is not JSON is accepted, and parked with its reason

    def published(self, body: bytes) -> bytes:
        return redacted(parse_json(body)) or body


CONTRACT_REQUESTS = _ContractRequests()
