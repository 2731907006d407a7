"""Chat App batches as the product's own events (pure): one payload per conversation."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from shared.core.docids import compound_id
from shared.core.events import (
    MALFORMED,
    REDELIVERED,
    Parked,
    Payload,
    StatusReport,
    TemplateReview,
    UserMessage,
    parked_whole,
    payload_key,
)
from shared.core.ingress import parse_json
from shared.core.storable import ascii_digits
from shared.core.times import from_unix_millis
from shared.providers.chatapp import AUDIT, KIND_BY_PATH, NAME, PARKED_ATTRIBUTE, SCALE, STATUS
from shared.providers.chatapp.element_screen import set_aside, timestamp

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


def normalise(raw: bytes, attributes: Mapping[str, str], received: datetime) -> list[Payload]:
    """The batch's type is the `kind` attribute, from the callback URL it was pushed to (or
    the queue it was pulled from). The queue puller parks what it names a reason for."""
    kind = attributes.get("kind", "")
    reason = attributes.get(PARKED_ATTRIBUTE)
    if reason:
        # A queue message received too often is parked with its elements, ready to redrive.
        category = REDELIVERED if isinstance(parse_json(raw), list) else MALFORMED
        return [parked_whole(_whole(raw, kind), category, reason)]
    return normalise_batch(raw, kind, received)


def _whole(raw: bytes, kind: str) -> Payload:
    return Payload(provider=NAME, kind=kind, key=payload_key(raw), scale=SCALE, raw=raw)


def normalise_batch(raw: bytes, kind: str, received: datetime) -> list[Payload]:
    """One payload per conversation in the batch, plus one for reviews and parked events."""
    base = _whole(raw, kind)
    events = parse_json(raw)
    if not isinstance(events, list) or kind not in KIND_BY_PATH.values():
        return [parked_whole(base, MALFORMED, f"not a JSON array of {kind} events")]
    parties: dict[str, tuple[str, str]] = {}
    receipts: dict[str, list[StatusReport]] = defaultdict(list)
    messages: dict[str, list[UserMessage]] = defaultdict(list)
    reviews: list[TemplateReview] = []
    parked: list[Parked] = []
    for index, event in enumerate(events):
        unusable = set_aside(kind, event)
        if unusable is not None:
            parked.append(Parked(*unusable, index))
        elif kind == AUDIT:
            reviews.append(replace(_review(event, received), index=index))
        elif kind == STATUS:  # the business sent it: From is the business, To the user
            cid = _remember(parties, business=event["From"], user=event["To"])
            receipts[cid].append(replace(_status_report(event), index=index))
        else:  # the user sent it
            cid = _remember(parties, business=event["To"], user=event["From"])
            messages[cid].append(replace(_user_message(event), index=index))
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
    return compound_id(NAME, _party(business), _party(user))


def _party(value: str) -> str:
    # Phone numbers as ASCII digits, however written; page and account ids stay as they are.
    return ascii_digits(value) or value.strip()


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
        time=from_unix_millis(timestamp(event)),
        details=details,
        message_fields=failure,
    )


def _user_message(event: Mapping[str, Any]) -> UserMessage:
    message_type = event["Type"]
    content: dict[str, Any] = {"messageType": message_type}
    if message_type == "TEXT":
        content["text"] = event["Message"]
    else:
        media = parse_json(event["Message"].encode())
        content["media"] = media
        if message_type == "IMAGE" and isinstance(media.get("url"), str):
            content["imageUrl"] = media["url"]  # valid for 7 days
        if isinstance(media.get("caption"), str):
            content["text"] = media["caption"]
    return UserMessage(
        message_id=event["MessageId"],
        kind="message",
        create_time=from_unix_millis(timestamp(event)),
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
