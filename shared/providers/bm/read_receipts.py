"""Business Messages' agent READ receipt: which messages get one, and the API call.

`PATCH /v1/conversations/{conversationId}/messages/{messageId}/receipt` with
`{"receiptType": "READ"}`, as the function's service account, which must be the one
registered with the Business Messages partner account.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

import requests

from shared.adapters.google_api import (
    REQUEST_TIMEOUT_SECONDS,
    authorized_session,
    call_with_backoff,
    longest_call,
)
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


@dataclass(frozen=True)
class ApiSettings:
    endpoint: str
    retry_deadline: float

    @property
    def longest_send(self) -> float:
        return longest_call(self.retry_deadline)

    def connect(self) -> BusinessMessagesApi:
        return BusinessMessagesApi(self.endpoint, authorized_session(SCOPE), self.retry_deadline)


def api_settings(env: Env) -> ApiSettings:
    return ApiSettings(
        endpoint=env.optional("BM_API_ENDPOINT", DEFAULT_ENDPOINT),
        retry_deadline=env.number("BM_API_RETRY_DEADLINE_SECONDS", 30.0, minimum=0),
    )


class BusinessMessagesApi:
    def __init__(self, endpoint: str, session: requests.Session, retry_deadline: float) -> None:
        self._endpoint = endpoint.rstrip("/")
        self._session = session
        self._retry_deadline = retry_deadline

    def send_read_receipt(self, target: ReadTarget) -> Outcome:
        url = (
            f"{self._endpoint}/v1/conversations/{quote(target.conversation_id, safe='')}"
            f"/messages/{quote(target.message_id, safe='')}/receipt"
        )
        return call_with_backoff(
            lambda: self._session.patch(
                url, json={"receiptType": "READ"}, timeout=REQUEST_TIMEOUT_SECONDS
            ),
            self._retry_deadline,
        )
