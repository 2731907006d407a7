"""A simulated week of traffic, so the demo's report has days to compare.

Each day, an RBM agent, a Business Messages agent, a Chat App and a WhatsApp business number send
messages that are delivered, read or fail after realistic delays, and users write in and
get the agent's READ receipt. It is recorded by the product's own recorder, send API and
READ-receipt sender, with a simulated clock, in the order a real webhook would see it: some
receipts twice, some READs before their DELIVERED. Their changes are published to the change
stream as the functions publish them, so the stream and `make report` tell of the same week.
Seeded by the date, so a second run on the same day changes nothing in Firestore (an
event it publishes again carries the same id).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from google.cloud import firestore

from shared import providers
from shared.adapters.change_stream import ChangeStream
from shared.adapters.read_receipt_sender import ReadReceiptSender, not_final, settled_changes
from shared.adapters.store import FirestoreRecorder
from shared.core.changes import Change
from shared.core.events import Payload
from shared.core.read_receipts import Outcome, ReadTarget
from shared.ops.sends import SentMessage, record_sent
from shared.providers import bm, chatapp, whatsapp
from shared.providers import rbm as rbm_provider
from shared.providers.bm.normalise import normalise_one
from shared.providers.chatapp.normalise import normalise_batch
from tools.payloads import bm as bm_payloads
from tools.payloads import chatapp as ca
from tools.payloads import rbm
from tools.payloads import whatsapp as wa

DAYS = 7
CHATAPP_FAILURES = (
    ("131026", "Receiver is incapable of receiving this message"),
    ("131047", "Re-engagement message: more than 24 hours since the user last replied"),
    ("131051", "Unsupported message type"),
)
WHATSAPP_FAILURES = (
    (131026, "Message undeliverable"),
    (131047, "Re-engagement message"),
    (131049, "This message was not delivered to maintain healthy ecosystem engagement."),
)


@dataclass
class Traffic:
    """What a day's webhooks would bring, in rounds: a round's payloads share no conversation,
    so the recorder may commit them together."""

    rounds: list[list[Payload]] = field(default_factory=lambda: [[] for _ in range(4)])
    sends: list[SentMessage] = field(default_factory=list)
    # provider, conversation, message, when written, the READ API's latency (None: it fails)
    readable: list[tuple[str, str, str, datetime, float | None]] = field(default_factory=list)
    agent_messages: int = 0


def simulate(db: firestore.Client, today: date, stream: ChangeStream, days: int = DAYS) -> int:
    """Records the `days` days before `today` and publishes their changes to `stream`;
    returns the number of agent messages."""
    recorder = FirestoreRecorder(db)
    agent_messages = 0
    for day in (today - timedelta(days=n) for n in range(days, 0, -1)):
        traffic = _day(day, random.Random(day.toordinal()))  # noqa: S311 (a simulation)
        agent_messages += traffic.agent_messages
        record_sent(db, traffic.sends, stream)
        for payloads in traffic.rounds:
            stream.publish(recorder.record(payloads).changes)
        stream.publish([c for read in traffic.readable for c in _agent_read_receipt(db, *read)])
    return agent_messages


def _day(day: date, rng: random.Random) -> Traffic:
    traffic = Traffic()
    busy = 1.0 if day.weekday() < 5 else 0.5  # quieter weekends
    for n in range(int(rng.randint(30, 40) * busy)):
        _bm_conversation(traffic, day, n, rng)
    for n in range(int(rng.randint(20, 30) * busy)):
        _chatapp_message(traffic, day, n, rng)
    for n in range(int(rng.randint(25, 35) * busy)):
        _rbm_conversation(traffic, day, n, rng)
    for n in range(int(rng.randint(30, 45) * busy)):
        _whatsapp_conversation(traffic, day, n, rng)
    return traffic


def _moment(day: date, rng: random.Random) -> datetime:
    """A time in business hours, 08:00 to 20:00 UTC."""
    return datetime.combine(day, time(8), UTC) + timedelta(seconds=rng.uniform(0, 12 * 3600))


def _bm_conversation(traffic: Traffic, day: date, n: int, rng: random.Random) -> None:
    cid = f"sim-{day.isoformat()}-{n}"
    opened = _moment(day, rng)
    message = f"user-{n}"
    latency = rng.lognormvariate(0.4, 0.6) if rng.random() > 0.03 else None  # None: fails
    user_text = bm_payloads.user_text(cid, message, "Hello", at=opened)
    traffic.rounds[0].append(normalise_one(bm_payloads.encode(user_text)))
    traffic.readable.append((bm.NAME, cid, message, opened, latency))
    replies = [f"agent-{n}-{k}" for k in range(rng.randint(1, 3))]
    sent_at = opened + timedelta(seconds=rng.uniform(20, 90))
    delivered_at = sent_at + timedelta(seconds=rng.lognormvariate(1.0, 0.8))
    read_at = delivered_at + timedelta(seconds=rng.lognormvariate(5.0 - day.weekday() * 0.1, 1.4))
    read = [m for m in replies if rng.random() < 0.8]
    traffic.agent_messages += len(replies)
    traffic.sends += [SentMessage(bm.NAME, bm_payloads.AGENT, cid, m, sent_at) for m in replies]
    delivered = _bm_receipts(cid, replies, "DELIVERED", delivered_at)
    reads = _bm_receipts(cid, read, "READ", read_at) if read else None
    late = rng.random() < 0.15  # the READ arrives first, the DELIVERED after it
    order = [reads, delivered] if late else [delivered, reads]
    if rng.random() < 0.1:
        order.append(delivered)  # redelivered
    for index, payload in enumerate(p for p in order if p is not None):
        traffic.rounds[index + 1].append(payload)


def _bm_receipts(cid: str, messages: list[str], status: str, at: datetime) -> Payload:
    document = bm_payloads.receipts(cid, *((m, status) for m in messages), at=at)
    return normalise_one(bm_payloads.encode(document))


def _rbm_conversation(traffic: Traffic, day: date, n: int, rng: random.Random) -> None:
    """A user writes, the agent answers once: RBM sends one event per request, so each of
    the conversation's events goes in a round of its own."""
    phone = f"+44770{day.toordinal() % 10_000:04d}{n:03d}"
    opened = _moment(day, rng)
    message, reply = f"rbm-user-{day.isoformat()}-{n}", f"rbm-agent-{day.isoformat()}-{n}"
    latency = rng.lognormvariate(0.3, 0.5) if rng.random() > 0.02 else None  # None: no RCS
    [written] = _rbm(rbm.text_message("Hello", phone=phone, message_id=message, at=opened))
    traffic.rounds[0].append(written)
    assert written.conversation_id is not None
    traffic.readable.append((rbm_provider.NAME, written.conversation_id, message, opened, latency))
    delivered_at = opened + timedelta(seconds=rng.uniform(30, 90))
    events = [rbm.user_event("DELIVERED", reply, phone=phone, at=delivered_at)]
    if rng.random() < 0.85:
        read_at = delivered_at + timedelta(seconds=rng.lognormvariate(4.5, 1.3))
        events.append(rbm.user_event("READ", reply, phone=phone, at=read_at))
        if rng.random() < 0.15:
            events.reverse()  # the READ arrives first, the DELIVERED after it
    traffic.agent_messages += 1
    for index, event in enumerate(events):
        traffic.rounds[index + 1] += _rbm(event)


def _rbm(event: dict[str, Any]) -> list[Payload]:
    body = rbm.encode(rbm.envelope(event))
    return providers.normalise({"provider": rbm_provider.NAME}, body, datetime.now(UTC))


def _whatsapp_conversation(traffic: Traffic, day: date, n: int, rng: random.Random) -> None:
    """The business's message: sent, then delivered and read (Meta skips `delivered` when
    both happen at once), or failed; the user sometimes answers and gets the agent's READ."""
    user = f"1650{day.toordinal() % 10_000:04d}{n:03d}"
    message = wa.wamid(f"sim-{day.isoformat()}-{n}")
    sent_at = _moment(day, rng)
    traffic.agent_messages += 1
    statuses = [wa.status(message, "sent", user, at=_seconds(sent_at))]
    if rng.random() < 0.06:
        code, title = rng.choice(WHATSAPP_FAILURES)
        statuses.append(wa.failed(message, user, code, title, timestamp=_seconds(sent_at)))
    else:
        delivered_at = sent_at + timedelta(seconds=rng.lognormvariate(1.0, 0.7))
        read = rng.random() < 0.75
        read_at = delivered_at + timedelta(seconds=rng.lognormvariate(5.5, 1.4))
        if not read or rng.random() > 0.2:  # 1 in 5 read at once: no `delivered` is sent
            statuses.append(wa.status(message, "delivered", user, at=_seconds(delivered_at)))
        if read:
            statuses.append(wa.status(message, "read", user, at=_seconds(read_at)))
    traffic.rounds[0] += _whatsapp(wa.change(statuses=statuses))
    if rng.random() < 0.4:
        answered = sent_at + timedelta(seconds=rng.uniform(60, 600))
        answer = wa.message(
            wa.wamid(f"sim-mo-{day.isoformat()}-{n}"), "text", user, at=_seconds(answered)
        )
        [written] = _whatsapp(wa.change(messages=[answer], contacts=[wa.contact(user)]))
        traffic.rounds[1].append(written)
        assert written.conversation_id is not None
        latency = rng.lognormvariate(0.2, 0.5)
        readable = (whatsapp.NAME, written.conversation_id, answer["id"], answered, latency)
        traffic.readable.append(readable)


def _whatsapp(change: dict[str, Any]) -> list[Payload]:
    body = wa.encode(wa.body(wa.entry(change)))
    return providers.normalise({"provider": whatsapp.NAME}, body, datetime.now(UTC))


def _seconds(moment: datetime) -> str:
    return str(int(moment.timestamp()))


def _chatapp_message(traffic: Traffic, day: date, n: int, rng: random.Random) -> None:
    user = f"86139{day.toordinal() % 10_000:04d}{n:04d}"
    message = f"wa-{day.isoformat()}-{n}"
    sent_at = _moment(day, rng)
    traffic.agent_messages += 1
    events = [ca.status(message, "Sent", user, at=_millis(sent_at))]
    if rng.random() < 0.08:
        code, description = rng.choice(CHATAPP_FAILURES)
        failed = ca.status(message, "Failed", user, at=_millis(sent_at) + 900)
        events.append({**failed, "ErrorCode": code, "ErrorDescription": description})
    else:
        delivered_at = sent_at + timedelta(seconds=rng.lognormvariate(1.2, 0.7))
        events.append(ca.status(message, "Delivered", user, at=_millis(delivered_at)))
        if rng.random() < 0.7:
            read_at = delivered_at + timedelta(seconds=rng.lognormvariate(6.0, 1.5))
            events.append(ca.status(message, "Read", user, at=_millis(read_at)))
    traffic.rounds[0] += normalise_batch(ca.encode(events), chatapp.STATUS, sent_at)
    if rng.random() < 0.4:  # the user answers: the same conversation, so a later round
        answer = ca.inbound_text(f"mo-{message}", user, "Thanks", at=_millis(sent_at) + 60_000)
        traffic.rounds[1] += normalise_batch(ca.encode([answer]), chatapp.INBOUND, sent_at)


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _agent_read_receipt(
    db: firestore.Client,
    provider: str,
    cid: str,
    message_id: str,
    created: datetime,
    latency: float | None,
) -> list[Change]:
    """The real sender, on the simulated clock, against an API that answers after `latency`;
    the READ's change, to publish."""
    answered = created + timedelta(seconds=latency if latency is not None else 2.0)
    api = _SimulatedApi(Outcome(1) if latency is not None else Outcome(1, "404 NOT_FOUND", True))
    sender = ReadReceiptSender(db, lease=timedelta(minutes=2), clock=_clock(answered))
    settled = sender.settle([ReadTarget(cid, message_id)], api)
    not_final(*settled)
    return settled_changes(provider, settled)


@dataclass(frozen=True)
class _SimulatedApi:
    outcome: Outcome

    def send_read_receipt(self, target: ReadTarget) -> Outcome:
        return self.outcome


def _clock(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment
