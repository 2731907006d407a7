"""WhatsApp batches as the product's own events (pure, never raising on any JSON).

Every entry, change, status, message and error of a body is read: one payload per
conversation, plus one for template reviews and parked elements. Each element is numbered
by one counter over the whole body (entries x changes x items), so a parked element's index
is unique in its body.

**The conversation** is (business phone number id, user): `whatsapp:{phone_number_id}:{user}`
(`compound_id`), where the user is their phone number (`wa_id` / `from` / `recipient_id`, as
ASCII digits) when Meta sends one, else their business-scoped user id (BSUID, `user_id` /
`from_user_id` / `recipient_user_id`, e.g. `US.13491208655302741918`). Phone first, because
it is the one id every status of one message carries: Meta omits the BSUID from a `failed`
status of a message sent to a phone number (the common case), so a BSUID-first key would
file that failure under another conversation than the message's `sent` and `delivered`,
and count it as two messages. A user with a username whose number Meta withholds is keyed by
BSUID; both ids (and the parent BSUID, profile name and username) are kept on the
conversation whenever Meta sends them, so the two can be joined.

What each `field` becomes:
- `messages`: `statuses` -> receipts of the business's messages (by wamid); `messages` ->
  user messages (kind `message`, or `system` for Meta's notices); `errors` -> parked as
  `PLATFORM_ERROR` with their code and title (they name no message); `contacts` -> the
  conversation's names and ids.
- `message_template_status_update` -> a template review of (WABA id, template name or id,
  language), as Chat App's.
- `user_id_update` -> an event on the user's conversation (kind `userIdUpdate`), which
  also sets the conversation's `userId` when the update names the new id.
- any other field (`account_update`, quality updates, ...) -> parked as `OTHER_FIELD` with
  its field name, whole: kept, counted, never an error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from shared.core.docids import compound_id
from shared.core.events import (
    MALFORMED,
    NOT_JSON,
    REJECTED_RECEIPT,
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
from shared.providers.whatsapp import NAME, SCALE, UPDATES, USER_MESSAGES, envelope
from shared.providers.whatsapp.envelope import MESSAGES_FIELD, Change

TEMPLATE_STATUS_FIELD = "message_template_status_update"
USER_ID_UPDATE_FIELD = "user_id_update"
PLATFORM_ERROR = "PLATFORM_ERROR"  # an error Meta reports about no message of its own
OTHER_FIELD = "OTHER_FIELD"  # a field the pipeline gives no meaning: kept as sent
USER_ID_UPDATE = "userIdUpdate"  # the kind of a user id update on its conversation
SYSTEM = "system"
EVENT_PREFIX = "event-"  # the id of a user event that has no wamid of its own

_MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")
_MEDIA_FIELDS = {
    "id": "mediaId",
    "mime_type": "mimeType",
    "sha256": "sha256",
    "caption": "caption",
    "filename": "fileName",
    "voice": "voice",
    "animated": "animated",
}
_PHONE_KEYS = {"status": "recipient_id", "message": "from"}
_BSUID_KEYS = {"status": "recipient_user_id", "message": "from_user_id"}


def normalise(raw: bytes, attributes: Mapping[str, str], received: datetime) -> list[Payload]:
    base = Payload(provider=NAME, kind=UPDATES, key=payload_key(raw), scale=SCALE, raw=raw)
    document = parse_json(raw)
    if document is None:
        return [parked_whole(base, NOT_JSON, "the body is not JSON")]
    if not envelope.is_envelope(document):
        return [parked_whole(base, MALFORMED, "not a whatsapp_business_account object")]
    changes = list(envelope.changes(document))
    if any(map(envelope.holds_user_messages, changes)):
        base = replace(base, kind=USER_MESSAGES)
    batch = _Batch(received)
    for change in changes:
        batch.read(change)
    return batch.payloads(base)


@dataclass
class _Conversation:
    business: str
    fields: dict[str, Any] = field(default_factory=dict)
    receipts: list[StatusReport] = field(default_factory=list)
    messages: list[UserMessage] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)


class _Batch:
    """What one body holds, gathered per conversation, with one counter for every element."""

    def __init__(self, received: datetime) -> None:
        self._received = received
        self._next_index = 0
        self._conversations: dict[str, _Conversation] = {}
        self._reviews: list[TemplateReview] = []
        self._parked: list[Parked] = []

    def payloads(self, base: Payload) -> list[Payload]:
        per_conversation = [
            replace(
                base,
                conversation_id=cid,
                agent=conversation.business,
                conversation=conversation.fields,
                conversation_state=conversation.state,
                receipts=tuple(conversation.receipts),
                user_messages=tuple(conversation.messages),
            )
            for cid, conversation in self._conversations.items()
        ]
        if self._reviews or self._parked:
            rest = replace(base, reviews=tuple(self._reviews), parked=tuple(self._parked))
            per_conversation.append(rest)
        return per_conversation

    def read(self, change: Change) -> None:
        if change.problem is not None:
            self._park(MALFORMED, change.problem)
        elif change.field == MESSAGES_FIELD:
            self._messages_change(change)
        elif change.field == TEMPLATE_STATUS_FIELD:
            self._template_review(change)
        elif change.field == USER_ID_UPDATE_FIELD:
            self._user_id_update(change)
        else:
            reason = f"field {(change.field or '')[:100]!r}: kept as Meta sent it"
            self._park(OTHER_FIELD, reason)

    def _index(self) -> int:
        index, self._next_index = self._next_index, self._next_index + 1
        return index

    def _park(self, category: str, reason: str) -> None:
        """The body is kept whole in its parked document, so the element is too."""
        self._parked.append(Parked(category, reason, self._index()))

    def _conversation(self, business: str, user: str) -> _Conversation:
        cid = conversation_id(business, user)
        return self._conversations.setdefault(cid, _Conversation(business))

    # --- field "messages" ---------------------------------------------------------------

    def _messages_change(self, change: Change) -> None:
        value = _object(change.value)
        metadata = _object(value.get("metadata"))
        business = _text(metadata.get("phone_number_id"))
        if business is None:
            self._park(MALFORMED, "a messages change without metadata.phone_number_id")
            return
        shared = _present(
            phoneNumberId=business,
            displayPhoneNumber=_text(metadata.get("display_phone_number")),
            wabaId=change.waba_id,
        )
        contacts = _Contacts(value.get("contacts"))
        read_any = False
        for status in _items(value, "statuses"):
            read_any = True
            self._status(business, shared, status)
        for message in _items(value, "messages"):
            read_any = True
            self._user_message(business, shared, contacts, message)
        for error in _items(value, "errors"):
            read_any = True
            self._park(PLATFORM_ERROR, f"Meta reported {_error_label(error)}")
        if not read_any:
            self._park(MALFORMED, "a messages change with no statuses, messages or errors")

    def _status(self, business: str, shared: Mapping[str, Any], status: Any) -> None:
        if not isinstance(status, dict):
            self._park(REJECTED_RECEIPT, "a status that is not an object")
            return
        wamid, state = _text(status.get("id")), _text(status.get("status"))
        user = _user(status, "status")
        if wamid is None or state is None or user is None:
            self._park(REJECTED_RECEIPT, "a status without id, status or recipient")
            return
        conversation = self._conversation(business, user)
        details = {**shared, **_status_details(status)}
        message_fields = _present(
            bizOpaqueCallbackData=details.get("bizOpaqueCallbackData"),
            phoneNumberId=business,
            wabaId=shared.get("wabaId"),
        )
        if state == "failed":
            message_fields.update(_failure(details.get("errors")))
        conversation.receipts.append(
            StatusReport(
                message_id=wamid,
                status=state,
                time=unix_seconds(status.get("timestamp")),
                details=details,
                message_fields=message_fields,
                index=self._index(),
            )
        )

    def _user_message(
        self, business: str, shared: Mapping[str, Any], contacts: _Contacts, message: Any
    ) -> None:
        if not isinstance(message, dict):
            self._park(MALFORMED, "a message that is not an object")
            return
        wamid, user = _text(message.get("id")), _user(message, "message")
        if wamid is None or user is None:
            self._park(MALFORMED, "a message without id or sender")
            return
        conversation = self._conversation(business, user)
        contact = contacts.of(message)
        conversation.fields.update(shared)
        conversation.fields.update(
            _present(
                waId=_phone(message.get("from")),
                userId=_text(message.get("from_user_id")),
                parentUserId=_text(message.get("from_parent_user_id")),
            )
        )
        conversation.fields.update(contact)
        message_type = _text(message.get("type")) or "unknown"
        conversation.messages.append(
            UserMessage(
                message_id=wamid,
                kind=SYSTEM if message_type == SYSTEM else "message",
                create_time=unix_seconds(message.get("timestamp")),
                content={"messageType": message_type, **message_content(message, message_type)},
                context=_message_context(message, contact),
                index=self._index(),
            )
        )

    # --- other fields -------------------------------------------------------------------

    def _template_review(self, change: Change) -> None:
        value = _object(change.value)
        template_id = _scalar(value.get("message_template_id"))
        name = _text(value.get("message_template_name")) or template_id
        language = _text(value.get("message_template_language"))
        event = _text(value.get("event"))
        if name is None or language is None or event is None:
            self._park(MALFORMED, "a template status update without template or event")
            return
        time = unix_seconds(change.entry_time) or self._received
        fields = _present(
            templateId=template_id,
            templateName=_text(value.get("message_template_name")),
            reason=_text(value.get("reason")),
            otherInfo=value.get("other_info")
            if isinstance(value.get("other_info"), dict)
            else None,
        )
        reason = fields.get("reason", "")
        identity = (change.waba_id or "", name, language, event, reason, time.isoformat())
        self._reviews.append(
            TemplateReview(
                template=(change.waba_id or "", name, language),
                status=event,
                time=time,
                key=_digest(identity),
                fields=fields,
                index=self._index(),
            )
        )

    def _user_id_update(self, change: Change) -> None:
        """Meta's notice that a user's BSUID changed: kept on the user's conversation."""
        value = _object(change.value)
        metadata = _object(value.get("metadata"))
        business = _text(metadata.get("phone_number_id"))
        updates = _items(value, USER_ID_UPDATE_FIELD) or [value]
        for update in updates:
            user = _update_user(update) if isinstance(update, dict) else None
            if business is None or user is None:
                reason = "a user_id_update without phone_number_id or the user's id"
                self._park(OTHER_FIELD, reason)
                continue
            conversation = self._conversation(business, user)
            new_id = _text(update.get("user_id")) or _text(update.get("new_user_id"))
            if new_id is not None:
                conversation.state["userId"] = new_id
            time = unix_seconds(update.get("timestamp")) or unix_seconds(change.entry_time)
            identity = (business, user, new_id or "", str(time))
            conversation.messages.append(
                UserMessage(
                    message_id=EVENT_PREFIX + _digest(identity),
                    kind=USER_ID_UPDATE,
                    create_time=time,
                    content={"update": update},
                    index=self._index(),
                )
            )


def conversation_id(business: str, user: str) -> str:
    return compound_id(NAME, business, user)


def unix_seconds(value: Any) -> datetime | None:
    """Meta's timestamps: Unix seconds, as a string of digits (or a number)."""
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit() and len(value) <= 12):
            return None
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return from_unix_millis(value * 1000) if abs(value) < 10**12 else None


def message_content(message: Mapping[str, Any], message_type: str) -> dict[str, Any]:
    """What a user message says, by type; an unknown type keeps its object as sent."""
    body = message.get(message_type)
    content: dict[str, Any] = {}
    if isinstance(message.get("errors"), list):
        content["errors"] = message["errors"]  # an unsupported message says why
    if message_type == "contacts" and isinstance(body, list):
        return {**content, "contacts": body}  # vCard-like cards the user shared
    if not isinstance(body, dict):
        return content if body is None else {**content, "payload": body}  # kept as sent
    if message_type == "text":
        return {**content, **_present(text=_text(body.get("body")))}
    if message_type in _MEDIA_TYPES:
        media = _renamed(body, _MEDIA_FIELDS)
        return {**content, **media, **_present(text=_text(body.get("caption")))}
    if message_type == "interactive":
        return {**content, **_interactive(body)}
    if message_type == "button":
        reply = _present(postbackData=_text(body.get("payload")), text=_text(body.get("text")))
        return {**content, **reply}
    if message_type == "reaction":
        emoji = body.get("emoji") if isinstance(body.get("emoji"), str) else None  # "": removed
        return {**content, **_present(reactionTo=_text(body.get("message_id")), emoji=emoji)}
    if message_type == SYSTEM:
        notice = _present(
            systemType=_text(body.get("type")),
            text=_text(body.get("body")),
            newWaId=_phone(body.get("wa_id")),
            newUserId=_text(body.get("user_id")),
        )
        return {**content, **notice}
    return {**content, message_type: body}  # location, contacts, order, unsupported, new types


def _interactive(body: Mapping[str, Any]) -> dict[str, Any]:
    reply_type = _text(body.get("type"))
    reply = body.get(reply_type) if reply_type else None
    if not isinstance(reply, dict):
        return {"interactive": dict(body)}
    return _present(
        interactiveType=reply_type,
        replyId=_text(reply.get("id")),
        text=_text(reply.get("title")) or _text(reply.get("body")),
        replyDescription=_text(reply.get("description")),
        flowName=_text(reply.get("name")),
        flowResponse=_text(reply.get("response_json")),  # a Flow's answers, as JSON text
    )


def _message_context(message: Mapping[str, Any], contact: Mapping[str, Any]) -> dict[str, Any]:
    """Who wrote (their profile), and what the message replies to or came from."""
    context = {name: contact[name] for name in ("profileName", "username") if name in contact}
    reply = message.get("context")
    if isinstance(reply, dict):
        flags = {"forwarded": "forwarded", "frequently_forwarded": "frequentlyForwarded"}
        context.update(
            {
                ours: reply[theirs]
                for theirs, ours in flags.items()
                if isinstance(reply.get(theirs), bool)
            }
        )
        context.update(
            _present(replyTo=_text(reply.get("id")), replyToFrom=_text(reply.get("from")))
        )
        if isinstance(reply.get("referred_product"), dict):
            context["referredProduct"] = reply["referred_product"]
    if isinstance(message.get("referral"), dict):
        context["referral"] = message["referral"]  # the ad the user came from
    return context


class _Contacts:
    """A change's `contacts`: each user's profile and ids, found by phone or BSUID."""

    def __init__(self, contacts: Any) -> None:
        usable = [c for c in contacts if isinstance(c, dict)] if isinstance(contacts, list) else []
        described = [_contact(contact) for contact in usable]
        self._by_id = {
            fields[key]: fields
            for fields in described
            for key in ("waId", "userId")
            if key in fields
        }
        # One contact beside messages that name no id of it is still theirs.
        self._only = described[0] if len(described) == 1 else {}

    def of(self, message: Mapping[str, Any]) -> dict[str, Any]:
        for key in (_phone(message.get("from")), _text(message.get("from_user_id"))):
            if key is not None and key in self._by_id:
                return self._by_id[key]
        return self._only


def _contact(contact: Mapping[str, Any]) -> dict[str, Any]:
    profile = _object(contact.get("profile"))
    return _present(
        waId=_phone(contact.get("wa_id")),
        userId=_text(contact.get("user_id")),
        parentUserId=_text(contact.get("parent_user_id")),
        profileName=_text(profile.get("name")),
        username=_text(profile.get("username")),
    )


def _status_details(status: Mapping[str, Any]) -> dict[str, Any]:
    """What a receipt keeps: whom it went to, the business's own correlation data, what
    Meta charges for it, and for a failure, why."""
    errors = status.get("errors")
    return _present(
        recipientId=_text(status.get("recipient_id")),
        recipientUserId=_text(status.get("recipient_user_id")),
        recipientParentUserId=_text(status.get("recipient_parent_user_id")),
        recipientType=_text(status.get("recipient_type")),
        bizOpaqueCallbackData=_text(status.get("biz_opaque_callback_data")),
        pricing=_pricing(status.get("pricing")),
        conversation=_billing_conversation(status.get("conversation")),
        errors=[_error(e) for e in errors if isinstance(e, dict)] or None
        if isinstance(errors, list)
        else None,
    )


def _pricing(pricing: Any) -> dict[str, Any] | None:
    if not isinstance(pricing, dict):
        return None
    names = {"billable": "billable", "pricing_model": "pricingModel", "category": "category"}
    return _renamed(pricing, {**names, "type": "type"}) or None


def _billing_conversation(conversation: Any) -> dict[str, Any] | None:
    """Meta's legacy billing conversation (being phased out): not the product's conversation."""
    if not isinstance(conversation, dict):
        return None
    origin = conversation.get("origin")
    fields = _present(
        id=_text(conversation.get("id")),
        expirationTimestamp=_scalar(conversation.get("expiration_timestamp")),
        originType=_text(origin.get("type")) if isinstance(origin, dict) else None,
    )
    return fields or None


def _error(error: Mapping[str, Any]) -> dict[str, Any]:
    data = error.get("error_data")
    return _present(
        code=_scalar(error.get("code")),
        title=_text(error.get("title")),
        message=_text(error.get("message")),
        details=_text(data.get("details")) if isinstance(data, dict) else None,
        href=_text(error.get("href")),
    )


def _failure(errors: Any) -> dict[str, Any]:
    """What the report reads of a failed message: the first error's code and title."""
    first = errors[0] if isinstance(errors, list) and errors else {}
    return _present(errors=errors, errorCode=first.get("code"), errorDescription=first.get("title"))


def _error_label(error: Any) -> str:
    if not isinstance(error, dict):
        return "an error that is not an object"
    return f"error {_scalar(error.get('code')) or '?'}: {(_text(error.get('title')) or '')[:200]}"


def _user(element: Mapping[str, Any], role: str) -> str | None:
    """The user's key: their phone number (ASCII digits) when sent, else their BSUID."""
    return _phone(element.get(_PHONE_KEYS[role])) or _text(element.get(_BSUID_KEYS[role]))


def _update_user(update: Mapping[str, Any]) -> str | None:
    return (
        _phone(update.get("wa_id"))
        or _text(update.get("previous_user_id"))
        or _text(update.get("old_user_id"))
        or _text(update.get("user_id"))
    )


def _phone(value: Any) -> str | None:
    """A phone number as ASCII digits; another id (a group's) as it is."""
    text = _text(value)
    return (ascii_digits(text) or text.strip()) if text is not None else None


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _items(value: Any, name: str) -> list[Any]:
    items = value.get(name) if isinstance(value, dict) else None
    return items if isinstance(items, list) else []


def _renamed(source: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    return {
        ours: source[theirs]
        for theirs, ours in names.items()
        if source.get(theirs) not in (None, "")
    }


def _present(**values: Any) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def _scalar(value: Any) -> str | None:
    """An id Meta sends as a number or a string, as a string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and abs(value) < 10**18:
        return str(value)
    return _text(value)


def _text(value: Any) -> str | None:
    """The value when it is a string with more than blanks in it."""
    return value if isinstance(value, str) and value.strip() else None


def _digest(parts: tuple[str, ...]) -> str:
    # surrogatepass: an id is hashed before screening, which parks what is not Unicode.
    text = "\n".join(parts).encode("utf-8", "surrogatepass")
    return hashlib.sha256(text).hexdigest()[:32]
