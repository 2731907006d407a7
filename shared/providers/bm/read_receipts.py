"""Business Messages' agent READ receipt: which messages get one, and the API call.

`PATCH /v1/conversations/{conversationId}/messages/{messageId}/receipt` with
`{"receiptType": "READ"}`, as the function's service account, which must be the one
registered with the Business Messages partner account.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from shared.adapters import google_api
from shared.adapters.google_api import GoogleApi, GoogleApiSettings
from shared.core.config import Env
from shared.core.events import Payload
from shared.core.read_receipts import Outcome, ReadTarget
from shared.providers.bm import READABLE_KINDS

SCOPE = "https://www.googleapis.com/auth/businessmessages"
DEFAULT_ENDPOINT = "https://businessmessages.googleapis.com"


def read_targets(payloads: Sequence[Payload]) -> list[ReadTarget]:
    """The user's message or suggestion tap in a payload: what the agent marks READ."""
    return [
        ReadTarget(payload.conversation_id, message.message_id)
        for payload in payloads
        if payload.kind in READABLE_KINDS and payload.conversation_id is not None
        for message in payload.user_messages
    ]


def api_settings(env: Env) -> GoogleApiSettings:
    return google_api.api_settings(
        env,
        prefix="BM",
        default_endpoint=DEFAULT_ENDPOINT,
        scope=SCOPE,
        adapter=BusinessMessagesApi,
    )


@dataclass(frozen=True)
class BusinessMessagesApi:
    api: GoogleApi

    def send_read_receipt(self, target: ReadTarget) -> Outcome:
        path = (
            f"/v1/conversations/{quote(target.conversation_id, safe='')}"
            f"/messages/{quote(target.message_id, safe='')}/receipt"
        )
        return self.api.call("PATCH", path, json={"receiptType": "READ"})
