"""RBM events as the product's own events (pure): one event per request.

A conversation is (agent, user phone): `rbm:{bare agent id}:{E.164 phone}`.
- DELIVERED and READ user events are receipts of the agent's message named by messageId.
- User messages (text, userFile, location, suggestionResponse) join the history, keyed by
  their messageId (a suggestion tap without one by `event-{eventId}`).
- SUBSCRIBE / UNSUBSCRIBE set the conversation's `subscribed` (the latest event wins) and
  join the history as events.
- Server events (TTL_EXPIRATION_REVOKED / _FAILED) are receipts of the agent's message
  that do not move its status; an agent launch event, or any other, is parked with why.
A body is the webhook's canonical envelope or, published before it (dead letters, spool),
Google's whole envelope: only the signed message.data of either decides anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from shared.core.docids import compound_id
from shared.core.events import (
    MALFORMED,
    NOT_JSON,
    UNKNOWN_KIND,
    Payload,
    StatusReport,
    UserMessage,
    parked_whole,
    payload_key,
)
from shared.core.ingress import parse_json
from shared.core.storable import ascii_digits
from shared.core.times import parse_rfc3339
from shared.providers.rbm import (
    AGENT_SUFFIX,
    LAUNCH,
    MESSAGE_KINDS,
    NAME,
    SCALE,
    SUBSCRIPTION_EVENTS,
    TTL_EVENTS,
    TYPING,
    envelope,
    kind_of,
)

AGENT_LAUNCH = "AGENT_LAUNCH"  # parked: about the agent, not a conversation
EVENT_PREFIX = "event-"  # the id of what has no messageId of its own


def conversation_id(agent: str, phone: str) -> str:
    return compound_id(NAME, agent, phone)


def normalise(raw: bytes, attributes: Mapping[str, str], received: datetime) -> list[Payload]:
    base = Payload(provider=NAME, kind="unknown", key=payload_key(raw), scale=SCALE, raw=raw)
    parsed = envelope.parse(raw)
    if isinstance(parsed, str):
        return [parked_whole(base, MALFORMED, parsed)]
    event = parse_json(parsed.data)
    base = replace(base, kind=kind_of(event))
    if base.kind == LAUNCH:
        return [parked_whole(base, AGENT_LAUNCH, _launch(event))]
    if not isinstance(event, dict):
        return [parked_whole(base, NOT_JSON, "message.data is not a JSON object")]
    if base.kind == TYPING:
        return []  # the webhook acknowledges typing without publishing it
    agent = _bare_agent(event.get("agentId"))
    phone = _e164(event.get("senderPhoneNumber") or event.get("phoneNumber"))
    if agent is None or phone is None:
        return [parked_whole(base, MALFORMED, "agentId or the user's phone number is missing")]
    common = replace(
        base,
        conversation_id=conversation_id(agent, phone),
        agent=agent,
        conversation={"agentId": agent, "userNumber": phone},
        send_time=parse_rfc3339(event.get("sendTime")),
    )
    if base.kind in ("DELIVERED", "READ", *TTL_EVENTS):
        message_id = _text(event.get("messageId"))
        if message_id is None:
            return [parked_whole(common, MALFORMED, f"{base.kind} without a messageId")]
        return [replace(common, receipts=(StatusReport(message_id, base.kind, common.send_time),))]
    if base.kind in MESSAGE_KINDS or base.kind in SUBSCRIPTION_EVENTS:
        return [_user_event(common, event)]
    return [parked_whole(common, UNKNOWN_KIND, f"no known RBM event kind ({base.kind!r})")]


def _user_event(common: Payload, event: Mapping[str, Any]) -> Payload:
    message_id, event_id = _text(event.get("messageId")), _text(event.get("eventId"))
    if message_id is not None:
        key = message_id
    elif event_id is not None:
        key = f"{EVENT_PREFIX}{event_id}"
    else:
        return parked_whole(common, MALFORMED, "neither a messageId nor an eventId")
    if common.kind in SUBSCRIPTION_EVENTS:
        message = UserMessage(key, common.kind.lower(), common.send_time, {})
        subscribed = {"subscribed": common.kind == "SUBSCRIBE"}
        return replace(common, user_messages=(message,), conversation_state=subscribed)
    kind = "suggestionResponse" if common.kind == "suggestionResponse" else "message"
    content = _CONTENT[common.kind](event[common.kind])
    if content is None:
        return parked_whole(common, MALFORMED, f"{common.kind} is not of the documented shape")
    message = UserMessage(key, kind, common.send_time, {"messageType": common.kind, **content})
    return replace(common, user_messages=(message,))


def _text_content(text: Any) -> dict[str, Any] | None:
    return {"text": text} if isinstance(text, str) else None


def _file_content(user_file: Any) -> dict[str, Any] | None:
    payload = user_file.get("payload") if isinstance(user_file, dict) else None
    if not isinstance(payload, dict) or _text(payload.get("fileUri")) is None:
        return None
    fields = ("fileUri", "mimeType", "fileName", "fileSizeBytes")
    content = {name: payload[name] for name in fields if name in payload}
    thumbnail = user_file.get("thumbnail")
    if isinstance(thumbnail, dict) and _text(thumbnail.get("fileUri")) is not None:
        content["thumbnailUri"] = thumbnail["fileUri"]
    return content  # the URI is where RBM keeps the file: the product never downloads it


def _location_content(location: Any) -> dict[str, Any] | None:
    if not isinstance(location, dict):
        return None
    latitude, longitude = location.get("latitude"), location.get("longitude")
    if not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in (latitude, longitude)
    ):
        return None
    return {"location": {"latitude": latitude, "longitude": longitude}}


def _suggestion_content(response: Any) -> dict[str, Any] | None:
    if not isinstance(response, dict):
        return None
    fields = {"postbackData": "postbackData", "text": "text", "type": "suggestionType"}
    return {ours: response[theirs] for theirs, ours in fields.items() if response.get(theirs)}


_CONTENT = {
    "text": _text_content,
    "userFile": _file_content,
    "location": _location_content,
    "suggestionResponse": _suggestion_content,
}


def _launch(event: Any) -> str:
    fields = event if isinstance(event, dict) else {}
    states = (fields.get("oldLaunchState"), fields.get("newLaunchState"), fields.get("regionId"))
    return "agent launch event: {} -> {} in {}".format(*(str(s)[:100] for s in states))


def _bare_agent(agent: Any) -> str | None:
    text = _text(agent)
    return text.removesuffix(AGENT_SUFFIX) if text is not None else None


def _e164(phone: Any) -> str | None:
    """+ and ASCII digits, however the digits were written."""
    digits = ascii_digits(phone) if isinstance(phone, str) else None
    return f"+{digits}" if digits and 2 <= len(digits) <= 15 else None


def _text(value: Any) -> str | None:
    """The value when it is a string with more than blanks in it."""
    return value if isinstance(value, str) and value.strip() else None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
