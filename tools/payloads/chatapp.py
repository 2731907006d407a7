"""Alibaba Cloud Chat App batch pushes as Alibaba sends them; for the demo and tests."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any

import requests

from shared.providers import chatapp
from shared.providers.chatapp.normalise import conversation_id
from tools.payloads.contract import Sample, WebhookRequest, first_secret

BUSINESS = "8613800000000"


def now_millis() -> int:
    return int(time.time() * 1000)


def status(
    message_id: str, state: str, user: str, at: int | None = None, **extra: Any
) -> dict[str, Any]:
    """A ChatAppStatus element: the business's message `message_id` to `user` is now `state`."""
    return {
        "MessageId": message_id,
        "From": BUSINESS,
        "To": user,
        "Timestamp": at if at is not None else now_millis(),
        "Status": state,
        "StatusDescription": state.lower(),
        "ConversationType": "service",
        "ConversationId": f"wa-{user}",
        "MsgFrameType": "message",
        "Type": "text",
        "TaskId": "task-1",
        **extra,
    }


def failed(message_id: str, user: str, code: str, description: str) -> dict[str, Any]:
    return status(message_id, "Failed", user, ErrorCode=code, ErrorDescription=description)


def inbound_text(message_id: str, user: str, text: str, at: int | None = None) -> dict[str, Any]:
    return _inbound(message_id, user, "TEXT", text, at)


def inbound_image(message_id: str, user: str, url: str, caption: str = "") -> dict[str, Any]:
    media = {"url": url, "caption": caption, "mimeType": "image/jpeg"}
    return _inbound(message_id, user, "IMAGE", json.dumps(media))


def _inbound(
    message_id: str, user: str, kind: str, message: str, at: int | None = None
) -> dict[str, Any]:
    return {
        "MessageId": message_id,
        "From": user,
        "To": BUSINESS,
        "Timestamp": at if at is not None else now_millis(),
        "DisplayName": "Demo Customer",
        "Type": kind,
        "Message": message,
        "WabaId": "waba-1",
    }


def audit(template: str, language: str, result: str, reason: str = "") -> dict[str, Any]:
    element = {
        "WabaId": "waba-1",
        "TemplateCode": template,
        "Language": language,
        "AuditStatus": result,
    }
    return {**element, "Reason": reason} if reason else element


def encode(events: list[dict[str, Any]]) -> bytes:
    return json.dumps(events).encode()


def push(url: str, body: bytes, session: requests.Session | None = None) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    return (session or requests).post(url, data=body, headers=headers, timeout=30)


class _ContractRequests:
    """Chat App for the providers' contract suite."""

    name = chatapp.NAME
    local_env: Mapping[str, str] = MappingProxyType(
        {"CHATAPP_CALLBACK_TOKENS": "local-chatapp-token"}
    )

    def receipt(self, env: Mapping[str, str], tag: str) -> Sample:
        user = "86" + str(int(hashlib.sha256(tag.encode()).hexdigest(), 16))[:11]
        body = encode([status(f"{tag}-m", "Delivered", user)])
        return Sample(
            WebhookRequest(self._path(env), body, {"Content-Type": "application/json"}),
            conversation_id(BUSINESS, user),
            f"{tag}-m",
        )

    def forged(self, env: Mapping[str, str], request: WebhookRequest) -> WebhookRequest:
        return replace(request, path=self._path(env, "not-the-callback-token"))

    def unauthenticated(self, env: Mapping[str, str], request: WebhookRequest) -> WebhookRequest:
        return replace(request, path=self._path(env, ""))

    def malformed(self, env: Mapping[str, str]) -> WebhookRequest | None:
        return WebhookRequest(self._path(env), b'{"MessageId": "not in an array"}')

    def published(self, body: bytes) -> bytes:
        return body

    def _path(self, env: Mapping[str, str], token: str | None = None) -> str:
        token = first_secret(env, "CHATAPP_CALLBACK_TOKENS") if token is None else token
        return f"/chatapp/status/{token}"


CONTRACT_REQUESTS = _ContractRequests()
