"""WhatsApp Cloud API webhook requests as Meta sends them; for the demo, the bench and tests.

A body is `body(entry(change(...), ...), ...)`: several entries (WABAs), several changes,
several statuses and messages each. `encode` writes it as Meta does (non-ASCII escaped as
\\uXXXX) and `signed_headers` signs the bytes with the app secret.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any
from urllib.parse import urlencode

import requests

from shared.core.credentials import hub_signature
from shared.providers.whatsapp import ACCESS_TOKEN, APP_SECRET, NAME, OBJECT, VERIFY_TOKEN
from shared.providers.whatsapp.normalise import conversation_id
from shared.providers.whatsapp.webhook import SIGNATURE_HEADER
from tools.payloads.contract import Sample, WebhookRequest, first_secret
from tools.standins.graph_api import RECEIVED_PATH

WABA_ID = "102290129340398"
PHONE_NUMBER_ID = "106540352242922"
DISPLAY_PHONE_NUMBER = "15550783881"
USER = "16505551234"
BSUID = "US.13491208655302741918"  # a username user's business-scoped id (Meta's example)
PATH = "/whatsapp"

# One sample of each type of user message, as Meta documents its object.
MESSAGE_OBJECTS: dict[str, Any] = {
    "text": {"body": "Does it come in another color?"},
    "image": {
        "id": "1479537139650973",
        "mime_type": "image/jpeg",
        "sha256": "SHA",
        "caption": "Here",
    },
    "audio": {"id": "1003383421387256", "mime_type": "audio/ogg; codecs=opus", "voice": True},
    "video": {"id": "1200728654811372", "mime_type": "video/mp4", "caption": "Unboxing"},
    "document": {"id": "1003383421387257", "mime_type": "application/pdf", "filename": "r.pdf"},
    "sticker": {"id": "1003383421387258", "mime_type": "image/webp", "animated": False},
    "location": {
        "latitude": 37.48,
        "longitude": -122.15,
        "name": "Main St",
        "address": "1 Main St",
    },
    "contacts": [{"name": {"formatted_name": "Barbara Johnson"}, "phones": [{"phone": "+1 5555"}]}],
    "interactive": {"type": "button_reply", "button_reply": {"id": "yes-1", "title": "Yes"}},
    "button": {"payload": "STOP", "text": "Stop promotions"},
    "reaction": {"message_id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI=", "emoji": "\U0001f600"},
    "order": {"catalog_id": "194836987003835", "text": "Thanks", "product_items": []},
    "system": {
        "body": "User changed number",
        "wa_id": "16505559999",
        "type": "user_changed_number",
    },
    "unsupported": {"type": "edit"},
}
LIST_REPLY = {"type": "list_reply", "list_reply": {"id": "r1", "title": "Red", "description": "A"}}
FLOW_REPLY = {"type": "nfm_reply", "nfm_reply": {"name": "flow", "response_json": '{"a": 1}'}}


def now_seconds() -> str:
    return str(int(time.time()))


def wamid(tag: str) -> str:
    """A message id of Meta's shape (`wamid.` + base64)."""
    return "wamid." + base64.b64encode(tag.encode()).decode()


def status(
    message_id: str,
    state: str,
    user: str | None = USER,
    *,
    at: str | None = None,
    user_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A status of the business's message: `sent`, `delivered`, `read` or `failed`."""
    element: dict[str, Any] = {"id": message_id, "status": state, "timestamp": at or now_seconds()}
    if user is not None:
        element["recipient_id"] = user
    if user_id is not None:
        element["recipient_user_id"] = user_id
    if state != "failed":
        element["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "utility"}
    return {**element, **extra}


def failed(
    message_id: str, user: str | None, code: int, title: str, details: str = "", **extra: Any
) -> dict[str, Any]:
    error = {"code": code, "title": title, "message": title, "error_data": {"details": details}}
    return status(message_id, "failed", user, errors=[error], **extra)


def message(
    message_id: str,
    message_type: str,
    user: str | None = USER,
    *,
    content: Any = None,
    at: str | None = None,
    user_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A user's message of `message_type`, with its object (a sample unless given)."""
    element: dict[str, Any] = {
        "id": message_id,
        "timestamp": at or now_seconds(),
        "type": message_type,
    }
    if user is not None:
        element["from"] = user
    if user_id is not None:
        element["from_user_id"] = user_id
    element[message_type] = MESSAGE_OBJECTS.get(message_type, {}) if content is None else content
    return {**element, **extra}


def contact(
    user: str | None = USER,
    name: str = "Sheena Nelson",
    user_id: str | None = None,
    username: str | None = None,
) -> dict[str, Any]:
    profile = {"name": name, **({"username": username} if username else {})}
    ids = {"wa_id": user, "user_id": user_id}
    return {"profile": profile, **{k: v for k, v in ids.items() if v is not None}}


def change(
    *,
    statuses: Iterable[Mapping[str, Any]] = (),
    messages: Iterable[Mapping[str, Any]] = (),
    contacts: Iterable[Mapping[str, Any]] = (),
    errors: Iterable[Mapping[str, Any]] = (),
    phone_number_id: str = PHONE_NUMBER_ID,
) -> dict[str, Any]:
    """A `messages` change of one business phone number."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": DISPLAY_PHONE_NUMBER,
            "phone_number_id": phone_number_id,
        },
    }
    for name, items in (
        ("contacts", contacts),
        ("messages", messages),
        ("statuses", statuses),
        ("errors", errors),
    ):
        if listed := list(items):
            value[name] = listed
    return {"field": "messages", "value": value}


def field_change(field: str, value: Any) -> dict[str, Any]:
    return {"field": field, "value": value}


def template_update(name: str, language: str, event: str, reason: str = "NONE") -> dict[str, Any]:
    value = {
        "event": event,
        "message_template_id": 594425479261596,
        "message_template_name": name,
        "message_template_language": language,
        "reason": reason,
    }
    return field_change("message_template_status_update", value)


def user_id_update(user: str | None, previous: str, new: str) -> dict[str, Any]:
    update = {
        "wa_id": user,
        "previous_user_id": previous,
        "user_id": new,
        "timestamp": now_seconds(),
    }
    value = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": DISPLAY_PHONE_NUMBER,
            "phone_number_id": PHONE_NUMBER_ID,
        },
        "user_id_update": [{k: v for k, v in update.items() if v is not None}],
    }
    return field_change("user_id_update", value)


def entry(
    *changes: Mapping[str, Any], waba_id: str = WABA_ID, at: int | None = None
) -> dict[str, Any]:
    element: dict[str, Any] = {"id": waba_id, "changes": list(changes)}
    return element if at is None else {**element, "time": at}


def body(*entries: Mapping[str, Any]) -> dict[str, Any]:
    return {"object": OBJECT, "entry": list(entries)}


def status_batch(updates: int, per_change: int = 50, per_entry: int = 4) -> dict[str, Any]:
    """`updates` statuses spread over entries of `per_entry` changes of `per_change` each, as
    Meta batches them (up to ~1,000 updates per POST); wamids `batch-{n}`."""
    elements = [
        status(wamid(f"batch-{n}"), "delivered", f"1650555{n % 10000:04d}") for n in range(updates)
    ]
    changes = [change(statuses=elements[i : i + per_change]) for i in range(0, updates, per_change)]
    entries = [entry(*changes[i : i + per_entry]) for i in range(0, len(changes), per_entry)]
    return body(*entries)


def encode(document: Mapping[str, Any]) -> bytes:
    """As Meta writes it: compact, non-ASCII escaped as \\uXXXX."""
    return json.dumps(document, separators=(",", ":")).encode()


def signed_headers(raw: bytes, secret: str) -> dict[str, str]:
    return {"Content-Type": "application/json", SIGNATURE_HEADER: hub_signature(raw, secret)}


def handshake_query(token: str, challenge: str = "1158201444", mode: str = "subscribe") -> str:
    """The query string of Meta's verification GET."""
    return urlencode({"hub.mode": mode, "hub.challenge": challenge, "hub.verify_token": token})


def post(
    url: str,
    raw: bytes,
    secret: str,
    session: requests.Session | None = None,
    graph_standin: str | None = None,
) -> requests.Response:
    """Posts a body as Meta does; with the Graph API stand-in's endpoint, it first learns the
    user messages the body delivers, as Meta knows what it delivered."""
    if graph_standin is not None:
        requests.post(f"{graph_standin}{RECEIVED_PATH}", data=raw, timeout=30).raise_for_status()
    return (session or requests).post(
        url, data=raw, headers=signed_headers(raw, secret), timeout=30
    )


class _ContractRequests:
    """WhatsApp for the providers' contract suite."""

    name = NAME
    local_env: Mapping[str, str] = MappingProxyType(
        {
            APP_SECRET: "local-whatsapp-app-secret",
            VERIFY_TOKEN: "local-whatsapp-verify-token",
            ACCESS_TOKEN: "local-whatsapp-access-token",
        }
    )

    def receipt(self, env: Mapping[str, str], tag: str) -> Sample:
        user = "1" + str(int(hashlib.sha256(tag.encode()).hexdigest(), 16))[:10]
        raw = encode(body(entry(change(statuses=[status(f"{tag}-m", "delivered", user)]))))
        headers = signed_headers(raw, first_secret(env, APP_SECRET))
        return Sample(
            WebhookRequest(PATH, raw, headers), conversation_id(PHONE_NUMBER_ID, user), f"{tag}-m"
        )

    def forged(self, env: Mapping[str, str], request: WebhookRequest) -> WebhookRequest:
        return replace(request, headers=signed_headers(request.body, "not-the-app-secret"))

    def unauthenticated(self, env: Mapping[str, str], request: WebhookRequest) -> WebhookRequest:
        return replace(request, headers={"Content-Type": "application/json"})

    def malformed(self, env: Mapping[str, str]) -> WebhookRequest | None:
        raw = b'{"object": "page", "entry": []}'
        return WebhookRequest(PATH, raw, signed_headers(raw, first_secret(env, APP_SECRET)))

    def published(self, body: bytes) -> bytes:
        return body  # WhatsApp's signed body is published as it came


CONTRACT_REQUESTS = _ContractRequests()
