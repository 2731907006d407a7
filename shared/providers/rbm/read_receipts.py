"""RBM's agent READ receipt: which messages get one, and the API call.

`POST {endpoint}/v1/phones/{E.164}/agentEvents?eventId={UUID}&agentId={bare id}` with
`{"eventType": "READ", "messageId": ...}`, as the function's service account (the one the
RBM partner account authorises). The eventId is derived from the agent and the user's
message, so a second send of the same READ carries the same id, and Google ignores it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from shared.adapters import google_api
from shared.adapters.google_api import GoogleApi, GoogleApiSettings
from shared.core.config import Env
from shared.core.docids import compound_id
from shared.core.events import Payload
from shared.core.read_receipts import Outcome, ReadTarget
from shared.providers.rbm import MESSAGE_KINDS
from shared.providers.rbm.normalise import EVENT_PREFIX

SCOPE = "https://www.googleapis.com/auth/rcsbusinessmessaging"
DEFAULT_ENDPOINT = "https://rcsbusinessmessaging.googleapis.com"
# A resend of the same READ (the same eventId) is ignored by Google: the answer it gives
# then is not documented, and 409 ALREADY_EXISTS means the first one went through.
ALREADY_SENT = (409,)
_EVENT_IDS = uuid.UUID("6b1d3f0e-4b0c-5f6e-9a51-7c2f0d8e9a10")  # our namespace for uuid5


def read_targets(payloads: Sequence[Payload]) -> list[ReadTarget]:
    """What the user sent (a message or a suggestion tap, with its messageId)."""
    return [
        ReadTarget(
            payload.conversation_id,
            message.message_id,
            {"phone": payload.conversation["userNumber"], "agentId": payload.agent},
        )
        for payload in payloads
        if payload.kind in MESSAGE_KINDS and payload.conversation_id and payload.agent
        for message in payload.user_messages
        if not message.message_id.startswith(EVENT_PREFIX)
    ]


def event_id(agent_id: str, message_id: str) -> str:
    """The same RFC 4122 UUID for every send of one READ: Google ignores a reused one."""
    # Escaped parts, so no two (agent, message) pairs share an eventId; ids without "%" or
    # a line break (all so far) keep the eventId they had.
    return str(uuid.uuid5(_EVENT_IDS, compound_id(agent_id, message_id, "READ", separator="\n")))


def api_settings(env: Env) -> GoogleApiSettings:
    return google_api.api_settings(
        env, prefix="RBM", default_endpoint=DEFAULT_ENDPOINT, scope=SCOPE, adapter=RbmApi
    )


@dataclass(frozen=True)
class RbmApi:
    api: GoogleApi

    def send_read_receipt(self, target: ReadTarget) -> Outcome:
        phone, agent_id = target.recipient["phone"], target.recipient["agentId"]
        return self.api.call(
            "POST",
            f"/v1/phones/{quote(phone, safe='+')}/agentEvents",
            done=ALREADY_SENT,
            params={"eventId": event_id(agent_id, target.message_id), "agentId": agent_id},
            json={"eventType": "READ", "messageId": target.message_id},
        )
