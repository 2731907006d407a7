"""The change stream's events (pure): one CloudEvents 1.0 event per change the pipeline records.

The stream is the business's interface (docs/change-stream.md, docs/changes.v1.schema.json):
its types are versioned and each event's id is derived from what changed, never from when
or how often it was seen, so a re-published change carries the same id.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.core.read_receipts import FIELD as READ_FIELD

PREFIX = "receipt-pipeline"
MESSAGE_STATUS = f"{PREFIX}.message.status.v1"
MESSAGE_RECEIVED = f"{PREFIX}.message.received.v1"
AGENT_READ_SETTLED = f"{PREFIX}.agent_read.settled.v1"
TEMPLATE_REVIEWED = f"{PREFIX}.template.reviewed.v1"
EVENT_PARKED = f"{PREFIX}.event.parked.v1"
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
# Pub/Sub's limits for one publish request.
MAX_MESSAGES_PER_REQUEST = 1000
MAX_BYTES_PER_REQUEST = 9 * 1024 * 1024  # of 10 MB, leaving room for attributes and framing


@dataclass(frozen=True)
class Change:
    """One recorded change, ready to be published."""

    type: str
    provider: str
    agent: str | None
    subject: str
    time: datetime
    data: Mapping[str, Any]
    identity: tuple[str, ...]  # what changed: the same change always has the same identity

    @property
    def id(self) -> str:
        return change_id(self.type, self.provider, *self.identity)

    def cloud_event(self) -> dict[str, Any]:
        """The event as a consumer reads it (JSON types only)."""
        event: dict[str, Any] = json.loads(self.message()[0])
        return event

    def message(self) -> tuple[bytes, dict[str, str]]:
        """The Pub/Sub message: the event in JSON, and attributes to filter subscriptions by."""
        source = f"/{self.provider}" if not self.agent else f"/{self.provider}/{self.agent}"
        event = {
            "specversion": "1.0",
            "id": self.id,
            "source": source,
            "type": self.type,
            "subject": self.subject,
            "time": self.time,
            "datacontenttype": "application/json",
            "data": self.data,
        }
        body = json.dumps(event, ensure_ascii=False, separators=(",", ":"), default=_json_value)
        attributes = {"content-type": CONTENT_TYPE, "type": self.type, "provider": self.provider}
        return body.encode("utf-8", "backslashreplace"), attributes


def change_id(change_type: str, provider: str, *identity: str) -> str:
    """The id of a change: the same change always has the same one, distinct ones never."""
    parts = json.dumps([change_type, provider, *identity])  # one list: no two tuples alike
    return hashlib.sha256(parts.encode()).hexdigest()[:32]


def message_status(
    provider: str,
    agent: str | None,
    conversation_id: str,
    message_id: str,
    status: str,
    rank: int,
    time: datetime,
    receipt: Mapping[str, Any],
    message_fields: Mapping[str, Any],
) -> Change:
    data = {
        "provider": provider,
        "agent": agent,
        "conversationId": conversation_id,
        "messageId": message_id,
        "status": status,
        "statusRank": rank,
        "time": time,
        "receipt": receipt,
        "message": message_fields,
    }
    identity = (conversation_id, message_id, status)
    return Change(MESSAGE_STATUS, provider, agent, message_id, time, data, identity)


def message_received(
    provider: str, agent: str | None, conversation_id: str, document: Mapping[str, Any]
) -> Change:
    """A user message as its document records it (`content`: the fields not named here)."""
    named = {"messageId", "kind", "createTime", "firstTime", "requestId", "sendTime", "context"}
    message_id = str(document["messageId"])
    data = {
        "provider": provider,
        "agent": agent,
        "conversationId": conversation_id,
        **{name: document.get(name) for name in sorted(named)},
        "context": document.get("context") or {},
        "content": {k: v for k, v in document.items() if k not in named and k not in _COMMON},
    }
    identity = (conversation_id, message_id)
    time = document["firstTime"]
    return Change(MESSAGE_RECEIVED, provider, agent, message_id, time, data, identity)


# Fields of a recorded document that a change's data already says, or that are the pipeline's
# own (the READ sender's claim may already be on a user message found again).
_COMMON = frozenset(
    {
        "provider",
        "agent",
        "conversationId",
        "direction",
        "recordTime",
        "updateTime",
        "expireTime",
        "payloadKey",
        READ_FIELD,
    }
)


def agent_read_settled(
    provider: str, conversation_id: str, message_id: str, record: Mapping[str, Any]
) -> Change:
    """The agent's READ of a user message, from its final record (`agentReadReceipt`)."""
    state = str(record.get("state"))
    time = record.get("sentTime") or record.get("failedTime") or record["updateTime"]
    data = {
        "provider": provider,
        "conversationId": conversation_id,
        "messageId": message_id,
        "state": state,
        "time": time,
        "attempts": record.get("attempts", 0),
        "reason": record.get("error"),
        "coveredBy": record.get("coveredBy"),
    }
    identity = (conversation_id, message_id)
    return Change(AGENT_READ_SETTLED, provider, None, message_id, time, data, identity)


def template_reviewed(provider: str, review_key: str, document: Mapping[str, Any]) -> Change:
    named = ("account", "templateCode", "language", "status", "reviewTime")
    data = {
        "provider": provider,
        **{name: document[name] for name in named},
        "fields": {
            k: v for k, v in document.items() if k not in named and k not in _COMMON | {"kind"}
        },
    }
    subject = "/".join(str(document[name]) for name in named[:3])
    identity = (review_key,)
    return Change(
        TEMPLATE_REVIEWED, provider, None, subject, document["reviewTime"], data, identity
    )


def event_parked(
    provider: str, agent: str | None, document: Mapping[str, Any], time: datetime
) -> Change:
    """What a parked document says about why: not the raw body, which stays in Firestore."""
    payload_key = str(document["payloadKey"])
    data = {
        "provider": provider,
        "agent": agent,
        "conversationId": document.get("conversationId"),
        "kind": document.get("kind"),
        "payloadKey": payload_key,
        "category": document.get("category"),
        "reason": document.get("reason"),
        "setAside": document.get("setAside"),
    }
    return Change(EVENT_PARKED, provider, agent, payload_key, time, data, (payload_key,))


def rfc3339(time: datetime) -> str:
    return time.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


def _json_value(value: Any) -> Any:
    """What JSON has no type for, as the stream writes it: times as RFC 3339 in UTC, bytes as
    base64, other mappings as objects (json calls this only for those)."""
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not a recorded value")


def requests(messages: Sequence[tuple[bytes, Mapping[str, str]]]) -> Iterator[list[Any]]:
    """The messages in as few publish requests as Pub/Sub's limits allow (one, nearly always)."""
    request: list[tuple[bytes, Mapping[str, str]]] = []
    size = 0
    for message in messages:
        data, attributes = message
        cost = len(data) + sum(len(k) + len(v) for k, v in attributes.items())
        if request and (
            len(request) == MAX_MESSAGES_PER_REQUEST or size + cost > MAX_BYTES_PER_REQUEST
        ):
            yield request
            request, size = [], 0
        request.append(message)
        size += cost
    if request:
        yield request
