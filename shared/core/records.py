"""The data contract: document paths, and the writes one payload makes (pure).

`plan` sees the current state of every document a payload touches (the adapter commits
the writes only if none of those documents changed since) and returns only the writes that
change something: a duplicate payload writes nothing, a late DELIVERED never downgrades a
READ, and each unique receipt is created exactly once.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from shared.core import changes
from shared.core.changes import Change
from shared.core.docids import doc_id
from shared.core.events import (
    AGENT,
    USER,
    Parked,
    Payload,
    StatusReport,
    StatusScale,
    TemplateReview,
    raw_pieces,
)
from shared.core.storable import readable

CONVERSATIONS = "conversations"
MESSAGES = "messages"
PARKED = "parked"
PIECES = "pieces"  # under a parked document: the rest of a raw body too long for one
TEMPLATE_REVIEWS = "templateReviews"
MAX_WRITES_PER_COMMIT = 500  # Firestore's limit for one batch
MAX_LISTED_ELEMENTS = 100  # set-aside elements a parked document lists one by one
MAX_REASON_CHARS = 300

Document = Mapping[str, Any]


def conversation_path(conversation_id: str) -> str:
    return f"{CONVERSATIONS}/{doc_id(conversation_id)}"


def message_path(conversation_id: str, message_id: str) -> str:
    return f"{conversation_path(conversation_id)}/{MESSAGES}/{doc_id(message_id)}"


def parked_path(payload_key: str) -> str:
    """Where everything set aside from one body is kept: the whole body, or its elements."""
    return f"{PARKED}/{doc_id(payload_key, 'payload')}"


def piece_path(parked: str, number: int) -> str:
    return f"{parked}/{PIECES}/{number}"


def template_review_path(template: tuple[str, str, str]) -> str:
    return f"{TEMPLATE_REVIEWS}/{doc_id(*template)}"


def review_history_path(review: TemplateReview) -> str:
    return f"{template_review_path(review.template)}/history/{doc_id(review.key)}"


# When a message entered its conversation: its first known status time (agent messages) or its
# create time (user messages). Reports choose a message's day and time window by it.
FIRST_TIME = "firstTime"
# On every record: the payload that wrote it, so its redelivery can publish its change again.
PAYLOAD_KEY = "payloadKey"
# On an agent message: each status's receipt, by status (its time, ids and details).
RECEIPTS = "receipts"
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def time_field(status: str) -> str:
    """DELIVERED -> deliveredTime, READ -> readTime."""
    return status.lower() + "Time"


@dataclass(frozen=True)
class Write:
    """Create a document that did not exist, or update fields of one that did."""

    path: str
    data: Mapping[str, Any]
    exists: bool


def commit_groups(payloads: list[Payload]) -> list[list[Payload]]:
    """Packs payloads into as few commits as Firestore allows, splitting any that are too big.

    Payloads of one batch touch disjoint documents (one conversation each), so their plans
    can share a commit.
    """
    groups: list[list[Payload]] = []
    size = MAX_WRITES_PER_COMMIT
    for part in (chunk for p in payloads for chunk in p.chunks(MAX_WRITES_PER_COMMIT)):
        if size + part.most_writes() > MAX_WRITES_PER_COMMIT:
            groups.append([])
            size = 0
        groups[-1].append(part)
        size += part.most_writes()
    return groups


def paths_to_read(payload: Payload) -> list[str]:
    paths = [parked_path(payload.key)] if payload.parked else []
    for review in payload.reviews:
        paths += [template_review_path(review.template), review_history_path(review)]
    cid = payload.conversation_id
    if cid is not None:
        paths += [message_path(cid, report.message_id) for report in payload.receipts]
        paths += [message_path(cid, message.message_id) for message in payload.user_messages]
        if payload.user_messages:  # only what users send updates the conversation
            paths.append(conversation_path(cid))
    return list(dict.fromkeys(paths))


@dataclass
class Recording:
    """What recording a payload writes, and the changes it publishes once committed.

    A change is published again, with the same id, when a redelivery of the payload that
    recorded it finds it recorded (every record keeps its `payloadKey`): the delivery that
    committed it may have died before publishing. Another payload finding it recorded (a
    platform's duplicate, a late receipt) publishes nothing.
    """

    writes: list[Write] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)

    def __iadd__(self, other: Recording) -> Recording:
        self.writes += other.writes
        self.changes += other.changes
        return self


def plan(
    payload: Payload,
    existing: Mapping[str, Document | None],
    now: datetime,
    receipt_ttl: timedelta | None = None,
) -> list[Write]:
    """The writes that record the payload; receipts expire after receipt_ttl when it is set."""
    return record(payload, existing, now, receipt_ttl).writes


def record(
    payload: Payload,
    existing: Mapping[str, Document | None],
    now: datetime,
    receipt_ttl: timedelta | None = None,
) -> Recording:
    """The writes that record the payload, and the changes they make."""
    recording = _parked_writes(payload, existing, now)
    recording += _review_writes(payload, existing, now)
    if payload.conversation_id is None:
        return recording
    recording += _receipt_writes(payload, existing, now, receipt_ttl)
    recording += _user_message_writes(payload, existing, now)
    if payload.user_messages:
        recording.writes += _conversation_writes(payload, existing, now)
    return recording


def _again(payload: Payload, record: Document | None) -> bool:
    """Whether a record was written by this same payload: a redelivery finding its own work."""
    return record is not None and record.get(PAYLOAD_KEY) == payload.key


def status_changes(
    current: Document, reports: list[StatusReport], scale: StatusScale, now: datetime
) -> dict[str, Any]:
    """The fields a message's new receipts change: the status only ever moves up the scale,
    each status keeps the time it was first reported, and firstTime is the earliest of them.

    A receipt without a time of its own is dated when it is recorded.
    """
    changes: dict[str, Any] = {}
    status = current.get("status")
    for report in reports:
        if scale.rank(report.status) > scale.rank(status):
            status = changes["status"] = report.status
        field = time_field(report.status)
        if current.get(field) is None and field not in changes:
            changes[field] = report.time or now
        changes.update(report.message_fields)
    first = min(report.time or now for report in reports)
    if current.get(FIRST_TIME) is None or first < current[FIRST_TIME]:
        changes[FIRST_TIME] = first
    return changes


def _common(payload: Payload, now: datetime) -> dict[str, Any]:
    return {
        "provider": payload.provider,
        "agent": payload.agent,
        "conversationId": payload.conversation_id,
        "recordTime": now,
    }


def _receipt_writes(
    payload: Payload,
    existing: Mapping[str, Document | None],
    now: datetime,
    receipt_ttl: timedelta | None,
) -> Recording:
    """One write per message whose receipts say something new, onto the message itself: its
    status, the first time of each status, and each status's receipt under `receipts`.

    A receipt is new when its status has no time on the message yet, so a redelivered or
    repeated receipt writes nothing, and neither the conversation nor any other document
    that many receipts share is touched.
    """
    cid = payload.conversation_id
    assert cid is not None
    by_message: dict[str, dict[str, StatusReport]] = {}
    for report in payload.receipts:  # the first report of each status in the payload counts
        by_message.setdefault(report.message_id, {}).setdefault(report.status, report)
    recording = Recording()
    for message_id, by_status in by_message.items():
        path = message_path(cid, message_id)
        current = existing.get(path) or {}
        recorded = current.get(RECEIPTS) or {}
        for report in by_status.values():
            if _again(payload, recorded.get(report.status)):
                time = current[time_field(report.status)]
                change = _status_change(payload, report, time, recorded[report.status])
                recording.changes.append(change)
        new = [r for r in by_status.values() if current.get(time_field(r.status)) is None]
        if not new:
            continue  # every receipt is already recorded: a redelivery or a repeat
        fields = status_changes(current, new, payload.scale, now)
        receipts = {report.status: _receipt(payload, report) for report in new}
        recording.changes += [
            _status_change(payload, r, fields[time_field(r.status)], receipts[r.status])
            for r in new
        ]
        if existing.get(path) is None:
            fields.update(_common(payload, now), direction=AGENT, messageId=message_id)
            fields[RECEIPTS] = receipts
            if receipt_ttl is not None:
                fields["expireTime"] = now + receipt_ttl  # Firestore's TTL policy deletes it
        else:
            fields.update({field_path(RECEIPTS, s): r for s, r in receipts.items()})
        recording.writes.append(Write(path, {**fields, "updateTime": now}, exists=bool(current)))
    return recording


def _status_change(
    payload: Payload, report: StatusReport, time: datetime, receipt: Document
) -> Change:
    assert payload.conversation_id is not None
    return changes.message_status(
        payload.provider,
        payload.agent,
        payload.conversation_id,
        report.message_id,
        report.status,
        payload.scale.rank(report.status),
        time,
        receipt,
        report.message_fields,
    )


def _receipt(payload: Payload, report: StatusReport) -> dict[str, Any]:
    return {
        "time": report.time,
        "requestId": payload.request_id,
        "sendTime": payload.send_time,
        **report.details,
        PAYLOAD_KEY: payload.key,
    }


def field_path(*names: str) -> str:
    """A field path for an update: a name that is not a plain identifier is quoted."""
    return ".".join(
        name if _PLAIN_NAME.fullmatch(name) else f"`{_escaped(name)}`" for name in names
    )


def _escaped(name: str) -> str:
    return name.replace("\\", "\\\\").replace("`", "\\`")


def receipts_of(messages: Mapping[str, Document]) -> dict[str, Document]:
    """Every recorded receipt, `{messageId}~{status}` -> what it said, from message documents
    by id (the receipts of a message live on its document)."""
    return {
        f"{message_id}~{status}": {"messageId": message_id, "receiptType": status, **receipt}
        for message_id, document in messages.items()
        for status, receipt in (document.get(RECEIPTS) or {}).items()
    }


def _user_message_writes(
    payload: Payload, existing: Mapping[str, Document | None], now: datetime
) -> Recording:
    cid = payload.conversation_id
    assert cid is not None
    recording = Recording()
    planned: set[str] = set()
    for message in payload.user_messages:
        path = message_path(cid, message.message_id)
        current = existing.get(path)
        if (current is not None and "kind" in current) or path in planned:
            if path not in planned and _again(payload, current):
                assert current is not None
                recording.changes.append(_received(payload, current))
            planned.add(path)
            continue  # already recorded (the READ sender may have created the document), or
            # a repeat within this payload: the first one is kept
        planned.add(path)
        document = {
            **_common(payload, now),
            "direction": USER,
            "messageId": message.message_id,
            "kind": message.kind,
            "createTime": message.create_time,
            FIRST_TIME: message.create_time or now,
            "requestId": payload.request_id,
            "sendTime": payload.send_time,
            "context": dict(message.context),
            **message.content,
            PAYLOAD_KEY: payload.key,
        }
        recording.writes.append(Write(path, document, exists=current is not None))
        recording.changes.append(_received(payload, document))
    return recording


def _received(payload: Payload, document: Document) -> Change:
    assert payload.conversation_id is not None
    return changes.message_received(
        payload.provider, payload.agent, payload.conversation_id, document
    )


def _conversation_writes(
    payload: Payload, existing: Mapping[str, Document | None], now: datetime
) -> list[Write]:
    assert payload.conversation_id is not None
    path = conversation_path(payload.conversation_id)
    current = existing.get(path) or {}
    changes = {k: v for k, v in payload.conversation.items() if current.get(k) != v}
    activity = _activity_time(payload) or now
    if _later(activity, current.get("lastActivityTime")):
        changes["lastActivityTime"] = activity
    for message in payload.user_messages:
        time = message.create_time or activity
        if message.context and _later(time, changes.get("contextTime", current.get("contextTime"))):
            changes.update(context=dict(message.context), contextTime=time)  # latest wins
    for name, value in payload.conversation_state.items():
        if _later(activity, current.get(time_field(name))):
            changes.update({name: value, time_field(name): activity})  # latest wins
    if not changes:
        return []
    if not current:
        changes.update(_common(payload, now))
    return [Write(path, {**changes, "updateTime": now}, exists=bool(current))]


def _review_writes(
    payload: Payload, existing: Mapping[str, Document | None], now: datetime
) -> Recording:
    """Each review joins its template's history once; the newest one is the template's status.

    Newest by first arrival: of one batch's reviews (one arrival) the later position wins,
    and a review of another delivery replaces the status only if it arrived strictly later.
    """
    recording = Recording()
    writes = recording.writes
    latest: dict[str, dict[str, Any]] = {}
    created: set[str] = set()
    for review in sorted(payload.reviews, key=lambda r: (r.time, r.index or 0)):
        history = review_history_path(review)
        stored = existing.get(history)
        if stored is not None or history in created:
            if history not in created and _again(payload, stored):
                assert stored is not None
                recording.changes.append(
                    changes.template_reviewed(payload.provider, review.key, stored)
                )
            created.add(history)
            continue  # already in the history: a re-push or a repeat in the batch
        created.add(history)
        account, code, language = review.template
        document = {
            "provider": payload.provider,
            "account": account,
            "templateCode": code,
            "language": language,
            "status": review.status,
            "reviewTime": review.time,
            **review.fields,
        }
        recorded = {**document, "recordTime": now, PAYLOAD_KEY: payload.key}
        writes.append(Write(history, recorded, exists=False))
        recording.changes.append(changes.template_reviewed(payload.provider, review.key, recorded))
        path = template_review_path(review.template)
        stored = existing.get(path)
        if path in latest or stored is None or _later(review.time, stored.get("reviewTime")):
            latest[path] = {**document, "updateTime": now}
    for path, document in latest.items():
        current = existing.get(path)
        if current is None:
            writes.append(Write(path, {**document, "recordTime": now}, exists=False))
        else:  # the newest review replaces the last: what it does not say is cleared
            cleared = {name: None for name in current if name not in {*document, "recordTime"}}
            writes.append(Write(path, {**cleared, **document}, exists=True))
    return recording


def _later(time: datetime, than: datetime | None) -> bool:
    return than is None or time > than


def _activity_time(payload: Payload) -> datetime | None:
    times = [m.create_time for m in payload.user_messages if m.create_time is not None]
    return max(times, default=None) or payload.send_time


def _parked_writes(
    payload: Payload, existing: Mapping[str, Document | None], now: datetime
) -> Recording:
    """One document for all that is set aside from a body (once: a redelivery writes
    nothing), holding the raw body so it can be replayed whole."""
    path = parked_path(payload.key)
    if not payload.parked:
        return Recording()
    stored = existing.get(path)
    if stored is not None:  # parked by this same body (its key names the document)
        return Recording(changes=[_parked(payload, stored, stored.get("recordTime") or now)])
    document = {
        **_common(payload, now),
        **set_aside(payload.parked, payload.elements),
        "kind": payload.kind,
        "requestId": payload.request_id,
        PAYLOAD_KEY: payload.key,
    }
    kept, pieces = raw_body(payload.raw)
    writes = [Write(path, {**document, **kept}, exists=False), *piece_writes(path, pieces)]
    return Recording(writes, [_parked(payload, document, now)])


def _parked(payload: Payload, document: Document, time: datetime) -> Change:
    return changes.event_parked(payload.provider, payload.agent, document, time)


def set_aside(parked: Sequence[Parked], elements: int) -> dict[str, Any]:
    """Why a body, or which of its elements, was set aside: a whole body as it always was; its
    elements as a count, the first of them listed, and a summary of their reasons."""
    parked = [replace(p, reason=readable(p.reason)[:MAX_REASON_CHARS]) for p in parked]
    categories = Counter(p.category for p in parked)
    fields: dict[str, Any] = {"category": categories.most_common(1)[0][0], "index": None}
    listed = [p for p in parked if p.index is not None]
    if not listed:
        return {**fields, "reason": parked[0].reason}
    reasons = Counter(p.reason for p in listed).most_common(5)
    summary = "; ".join(f"{count}x {reason}" for reason, count in reasons)
    return {
        **fields,
        "reason": f"{len(listed)} of {max(elements, len(listed))} elements set aside: {summary}",
        "setAside": len(listed),
        "elements": [
            {"index": p.index, "category": p.category, "reason": p.reason}
            for p in listed[:MAX_LISTED_ELEMENTS]
        ],
    }


def raw_body(raw: bytes) -> tuple[dict[str, Any], list[bytes]]:
    """The fields that keep a raw body on its parked document, and the pieces beyond the
    first that its `pieces` subcollection holds (numbered from 1)."""
    first, *rest = raw_pieces(raw)
    fields: dict[str, Any] = {"rawBody": first, "rawBodyBytes": len(raw)}
    if rest:
        fields["rawBodyPieces"] = 1 + len(rest)
    return fields, rest


def piece_writes(parked: str, pieces: Sequence[bytes]) -> list[Write]:
    return [
        Write(piece_path(parked, number), {"rawBody": piece}, exists=False)
        for number, piece in enumerate(pieces, 1)
    ]
