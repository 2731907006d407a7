"""Alibaba Cloud Chat App Message Service: HTTP batch push of status reports, user messages
(MO) and template reviews.

Alibaba documents no signature for these callbacks, so each callback URL carries a secret
token (several may be configured so one can rotate), optionally with a source-IP
allow-list. Every body is a JSON array of events of one type, told by the URL's path.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from shared import routing
from shared.config import Env
from shared.events import (
    MALFORMED,
    REJECTED_RECEIPT,
    Parked,
    Payload,
    StatusReport,
    StatusScale,
    TemplateReview,
    UserMessage,
    parked_whole,
    payload_key,
)
from shared.ingress import Incoming, Publish, Reply, parse_json
from shared.times import from_unix_millis

log = logging.getLogger(__name__)

PROVIDER = "chatapp"
STATUS = "ChatAppStatus"
INBOUND = "ChatAppInbound"
AUDIT = "ChatAppAudit"
KIND_BY_PATH = {"status": STATUS, "inbound": INBOUND, "audit": AUDIT}

# The provider's own order. Failed and Deleted are terminal: nothing later undoes them.
SCALE = StatusScale({"Sent": 1, "Delivered": 2, "Read": 3, "Failed": 4, "Deleted": 5})
# Viber's subscription events are recorded as receipts but are no delivery status.
UNRANKED_STATUSES = frozenset({"subscribe", "unsubscribe"})

_STATUS_DETAILS = {
    "StatusDescription": "statusDescription",
    "ErrorCode": "errorCode",
    "ErrorDescription": "errorDescription",
    "ConversationType": "conversationType",
    "ConversationId": "channelConversationId",
    "MsgFrameType": "msgFrameType",
    "Type": "messageType",
    "TaskId": "taskId",
    "OriginPhoneNumber": "originPhoneNumber",
    "TemplateCode": "templateCode",
}
_INBOUND_CONTEXT = {
    "DisplayName": "displayName",
    "Name": "name",
    "CustSpaceId": "custSpaceId",
    "WabaId": "wabaId",
    "NoticeType": "noticeType",
}
_AUDIT_FIELDS = {
    "Reason": "reason",
    "Type": "type",
    "PhoneNumber": "phoneNumber",
    "Status": "templateStatus",
    "CurrentLimit": "currentLimit",
}


# --- webhook half ---------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    tokens: tuple[str, ...]
    allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()


def config_from_env(env: Env) -> Config | None:
    """Chat App is on when callback tokens are configured."""
    if not env.present("CHATAPP_CALLBACK_TOKENS"):
        return None
    networks = []
    for entry in env.names("CHATAPP_ALLOWED_IPS", ()):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            env.problem(f"CHATAPP_ALLOWED_IPS holds {entry!r}, not an address or network")
    return Config(env.secrets("CHATAPP_CALLBACK_TOKENS"), tuple(networks))


def receive(request: Incoming, config: Config) -> Reply | Publish:
    """`/chatapp/{status|inbound|audit}/{token}`: a batch is handed off whole, unchanged."""
    kind = KIND_BY_PATH.get(request.path[0]) if len(request.path) == 2 else None
    if kind is None:
        return Reply(404, {"code": 404, "msg": "no such callback"})
    if not token_valid(request.path[1], config.tokens):
        log.warning("refused a Chat App callback with a wrong token", extra={"kind": kind})
        return Reply(401, {"code": 401, "msg": "unknown callback token"})
    if config.allowed_networks and not ip_allowed(request.client_ip, config.allowed_networks):
        log.warning("refused a Chat App callback from outside the allow-list")
        return Reply(403, {"code": 403, "msg": "source address not allowed"})
    events = parse_json(request.body)
    if not isinstance(events, list):
        return Reply(400, {"code": 400, "msg": "body must be a JSON array of events"})
    if not events:
        return Reply(200, {"code": 0, "msg": "no events"})
    problems = [f"element {i}: {p}" for i, e in enumerate(events) if (p := event_problem(kind, e))]
    summary = f"accepted {len(events)} event{'' if len(events) == 1 else 's'}"
    if problems:
        summary += (
            f"; {len(problems)} malformed, kept aside with the reason ({'; '.join(problems[:3])})"
        )
    return Publish(
        topic_key=routing.EVENTS,
        attributes=routing.attributes(provider=PROVIDER, kind=kind, events=str(len(events))),
        accepted={"code": 0, "msg": summary},
        refused=Reply(503, {"code": 503, "msg": "events could not be stored, push again"}),
    )


def token_valid(offered: str, tokens: Iterable[str]) -> bool:
    matches = [hmac.compare_digest(offered.encode(), token.encode()) for token in tokens]
    return bool(offered) and any(matches)


def ip_allowed(
    client_ip: str | None,
    networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> bool:
    try:
        address = ipaddress.ip_address(client_ip or "")
    except ValueError:
        return False
    return any(address in network for network in networks)


def event_problem(kind: str, event: Any) -> str | None:
    """Why one element of a batch cannot be used, or None when its shape is right."""
    if not isinstance(event, dict):
        return "not an object"
    if kind == AUDIT:
        return _missing(event, "TemplateCode", "Language", "AuditStatus")
    missing = _missing(event, "MessageId", "From", "To")
    if missing:
        return missing
    if from_unix_millis(_timestamp(event)) is None:
        return "Timestamp is not Unix milliseconds"
    if kind == STATUS:
        status = event.get("Status")
        known = isinstance(status, str) and (status in SCALE.ranks or status in UNRANKED_STATUSES)
        return None if known else "Status is not a known status"
    if not _text(event.get("Type")) or not isinstance(event.get("Message"), str):
        return "Type or Message missing"
    if event["Type"] != "TEXT" and not isinstance(parse_json(event["Message"].encode()), dict):
        return f"Message of a {event['Type']} is not a JSON object"
    return None


# --- subscriber half ------------------------------------------------------------------


def normalise(raw: bytes, kind: str, received: datetime) -> list[Payload]:
    """One payload per conversation in the batch, plus one for reviews and parked events."""
    base = Payload(provider=PROVIDER, kind=kind, key=payload_key(raw), scale=SCALE, raw=raw)
    events = parse_json(raw)
    if not isinstance(events, list) or kind not in KIND_BY_PATH.values():
        return [parked_whole(base, MALFORMED, f"not a JSON array of {kind} events")]
    parties: dict[str, tuple[str, str]] = {}
    receipts: dict[str, list[StatusReport]] = defaultdict(list)
    messages: dict[str, list[UserMessage]] = defaultdict(list)
    reviews: list[TemplateReview] = []
    parked: list[Parked] = []
    for index, event in enumerate(events):
        problem = event_problem(kind, event)
        if problem is not None:
            parked.append(
                Parked(REJECTED_RECEIPT if kind == STATUS else MALFORMED, problem, index, event)
            )
        elif kind == AUDIT:
            reviews.append(_review(event, received))
        elif kind == STATUS:  # the business sent it: From is the business, To the user
            cid = _remember(parties, business=event["From"], user=event["To"])
            receipts[cid].append(_status_report(event))
        else:  # the user sent it
            cid = _remember(parties, business=event["To"], user=event["From"])
            messages[cid].append(_user_message(event))
    per_conversation = [
        replace(
            base,
            conversation_id=cid,
            agent=business,
            conversation={"businessNumber": business, "userNumber": user},
            receipts=tuple(receipts[cid]),
            user_messages=tuple(messages[cid]),
        )
        for cid, (business, user) in parties.items()
    ]
    if reviews or parked:
        per_conversation.append(replace(base, reviews=tuple(reviews), parked=tuple(parked)))
    return per_conversation


def _remember(parties: dict[str, tuple[str, str]], business: str, user: str) -> str:
    cid = conversation_id(business, user)
    parties[cid] = (_party(business), _party(user))
    return cid


def conversation_id(business: str, user: str) -> str:
    """The same user and business number form one conversation, whatever the channel's
    formatting of the numbers (`+86 138-0000`, `861380000`)."""
    return f"{PROVIDER}:{_party(business)}:{_party(user)}"


def _party(value: str) -> str:
    digits = value.strip().lstrip("+").replace(" ", "").replace("-", "")
    return digits if digits.isdigit() else value.strip()  # page and account ids stay as-is


def _status_report(event: Mapping[str, Any]) -> StatusReport:
    details = _renamed(event, _STATUS_DETAILS)
    details.update(_renamed(event, {"From": "from", "To": "to"}))
    failure = (
        {name: details.get(name) for name in ("errorCode", "errorDescription")}
        if event["Status"] == "Failed"
        else {}
    )
    return StatusReport(
        message_id=event["MessageId"],
        status=event["Status"],
        time=from_unix_millis(_timestamp(event)),
        details=details,
        message_fields=failure,
    )


def _user_message(event: Mapping[str, Any]) -> UserMessage:
    message_type = event["Type"]
    content: dict[str, Any] = {"messageType": message_type}
    if message_type == "TEXT":
        content["text"] = event["Message"]
    else:
        media = json.loads(event["Message"])
        content["media"] = media
        if message_type == "IMAGE" and isinstance(media.get("url"), str):
            content["imageUrl"] = media["url"]  # valid for 7 days
        if isinstance(media.get("caption"), str):
            content["text"] = media["caption"]
    return UserMessage(
        message_id=event["MessageId"],
        kind="message",
        create_time=from_unix_millis(_timestamp(event)),
        content=content,
        context=_renamed(event, _INBOUND_CONTEXT),
    )


def _review(event: Mapping[str, Any], received: datetime) -> TemplateReview:
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":")).encode()
    return TemplateReview(
        template=(str(event.get("WabaId") or ""), event["TemplateCode"], event["Language"]),
        status=event["AuditStatus"],
        # Reviews carry no time of their own: Pub/Sub's publish time is when the push arrived.
        time=received,
        key=hashlib.sha256(canonical).hexdigest()[:32],
        fields=_renamed(event, _AUDIT_FIELDS),
    )


def _renamed(event: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    return {
        ours: event[theirs] for theirs, ours in names.items() if event.get(theirs) not in (None, "")
    }


def _timestamp(event: Mapping[str, Any]) -> Any:
    # Some published samples spell the key "Timestamp " with a trailing space.
    return event.get("Timestamp", event.get("Timestamp "))


def _missing(event: Mapping[str, Any], *names: str) -> str | None:
    absent = [name for name in names if not _text(event.get(name))]
    return f"{', '.join(absent)} missing" if absent else None


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())
