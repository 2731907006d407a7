"""Alibaba Cloud Chat App batch pushes as Alibaba sends them; for the demo and tests."""

from __future__ import annotations

import json
import time
from typing import Any

import requests

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
