"""WhatsApp's agent READ: which messages get one, and the Graph API call that sends it.

`POST {endpoint}/{version}/{phone_number_id}/messages` with `{"messaging_product":
"whatsapp", "status": "read", "message_id": <wamid>}` and `Authorization: Bearer <token>` (a
system user's token with whatsapp_business_messaging) -> `200 {"success": true}`.

Meta answers errors as `{"error": {"message", "type", "code", "error_subcode",
"fbtrace_id"}}`, rate limits included (HTTP 400 with code 4, 80007 or 130429), so answers
classify by their code: rate limits, 5xx and Meta's own trouble (2, 131000, 131016) are
retried with backoff; 131009 (not a valid parameter, such as an unknown wamid) and 190 (the
token expired or is invalid) are final for the message, and a refused token is reported as
such (`credentialsRejected` on the READ's log line: an alert counts it). Only codes are
kept, never `message`, which may quote content.

Meta accepts a mark within 30 days of the message (`ReadTarget.not_after`), and marking a
message read marks the earlier ones of its conversation read: the targets of one delivery
form one burst per conversation, oldest first, and the READ sender sends one call for the
newest of it (`shared.core.read_receipts.bursts`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import requests

from shared.adapters.http_api import (
    REQUEST_TIMEOUT_SECONDS,
    Answer,
    Verdict,
    by_http_status,
    call_with_backoff,
    longest_call,
)
from shared.core.config import Env
from shared.core.events import Payload
from shared.core.read_receipts import Outcome, ReadTarget
from shared.providers.whatsapp import (
    ACCESS_TOKEN,
    API_ENDPOINT,
    API_RETRY_DEADLINE,
    API_VERSION,
    NAME,
)

DEFAULT_ENDPOINT = "https://graph.facebook.com"
# The newest Graph API version (introduced 2026-11-04): each version is served for about two
# years, so the newest stays usable longest; mark-as-read is the same in every version.
DEFAULT_VERSION = "v27.0"
DEFAULT_RETRY_DEADLINE_SECONDS = 30.0
PHONE_NUMBER_ID = "phoneNumberId"  # the recipient field of a target: whose number marks it

RATE_LIMITED = frozenset({4, 80007, 130429})
META_TROUBLE = frozenset({2, 131000, 131016})  # temporary, on Meta's side
INVALID_PARAMETER = 131009
TOKEN_INVALID = 190
READ_WINDOW = timedelta(days=30)  # Meta marks a message read only this long after it came


def read_targets(payloads: Sequence[Payload]) -> list[ReadTarget]:
    """What users sent (kind `message`), oldest first, each marked read by its business phone
    number: one burst per conversation (see the module's description)."""
    targets = [
        (
            message.create_time or _NO_TIME,
            ReadTarget(
                payload.conversation_id,
                message.message_id,
                {PHONE_NUMBER_ID: payload.agent},
                not_after=message.create_time + READ_WINDOW if message.create_time else None,
                burst=NAME,
            ),
        )
        for payload in payloads
        if payload.conversation_id is not None and payload.agent
        for message in payload.user_messages
        if message.kind == "message"
    ]
    return [target for _, target in sorted(targets, key=lambda pair: pair[0])]


_NO_TIME = datetime.min.replace(tzinfo=UTC)


def graph_answer(response: requests.Response) -> Answer:
    """How a Graph API answer classifies, by Meta's error code where it sent one."""
    if response.ok:
        return Answer(Verdict.DONE)
    error = _graph_error(response)
    code = error.get("code")
    detail = " ".join(
        f"{name} {error[key]}"
        for name, key in _KEPT.items()
        if isinstance(error.get(key), int | str) and not isinstance(error.get(key), bool)
    )
    problem = f"HTTP {response.status_code} {detail}".strip()
    if code in RATE_LIMITED or code in META_TROUBLE:
        return Answer(Verdict.RETRY, problem)
    if code == TOKEN_INVALID:
        return Answer(Verdict.FINAL, problem, credentials_rejected=True)
    if code == INVALID_PARAMETER:
        return Answer(Verdict.FINAL, problem)
    return by_http_status(response, detail)


# What is kept of an error: codes and Meta's trace id, never its message.
_KEPT = {"code": "code", "subcode": "error_subcode", "type": "type", "fbtrace": "fbtrace_id"}


def _graph_error(response: requests.Response) -> dict[str, Any]:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return {}
    return error if isinstance(error, dict) else {}


@dataclass(frozen=True)
class GraphApiSettings:
    endpoint: str
    version: str
    retry_deadline: float
    access_token: str = field(repr=False)

    @property
    def longest_send(self) -> float:
        return longest_call(self.retry_deadline)

    def connect(self) -> GraphApi:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.access_token}"
        return GraphApi(self.endpoint.rstrip("/"), self.version, session, self.retry_deadline)


def api_settings(env: Env) -> GraphApiSettings:
    """Built only while WHATSAPP_ACCESS_TOKEN is set (the provider's `read_switch`)."""
    return GraphApiSettings(
        endpoint=env.optional(API_ENDPOINT, DEFAULT_ENDPOINT),
        version=env.optional(API_VERSION, DEFAULT_VERSION),
        retry_deadline=env.number(API_RETRY_DEADLINE, DEFAULT_RETRY_DEADLINE_SECONDS, minimum=0),
        access_token=env.required(ACCESS_TOKEN),
    )


@dataclass(frozen=True)
class GraphApi:
    endpoint: str
    version: str
    session: requests.Session
    retry_deadline: float

    def send_read_receipt(self, target: ReadTarget) -> Outcome:
        phone_number_id = quote(target.recipient[PHONE_NUMBER_ID], safe="")
        url = f"{self.endpoint}/{quote(self.version, safe='')}/{phone_number_id}/messages"
        body = {"messaging_product": "whatsapp", "status": "read", "message_id": target.message_id}
        return call_with_backoff(
            lambda: self.session.post(url, json=body, timeout=REQUEST_TIMEOUT_SECONDS),
            self.retry_deadline,
            classify=graph_answer,
        )
