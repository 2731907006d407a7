"""When the business sent a message: the start of its send -> DELIVERED time.

Business Messages reports DELIVERED and READ, never when a message was sent, so the
business's sending code records it right after the API accepts the message:

    from shared.sends import SentMessage, record_sent
    record_sent(firestore.Client(), [SentMessage("bm", agent, conversation_id, message_id, now)])

A send record goes through the recorder like any receipt: once per message however often it
is repeated, never lowering the message's status, in one commit for many messages.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from google.cloud import firestore

from shared.events import Payload, StatusReport, payload_key
from shared.providers import SCALES, SENT_STATUS
from shared.store import FirestoreRecorder, Recorded


@dataclass(frozen=True)
class SentMessage:
    provider: str  # "bm" or "chatapp"
    agent: str  # BM: brands/B/agents/A; Chat App: the business number
    conversation_id: str  # Chat App: shared.providers.chatapp.conversation_id(business, user)
    message_id: str  # the id the message was sent with
    time: datetime


def sent_payloads(messages: Iterable[SentMessage]) -> list[Payload]:
    """One payload per conversation: payloads recorded together must not share a document."""
    by_conversation: dict[tuple[str, str], list[SentMessage]] = {}
    for sent in messages:
        if sent.provider not in SCALES:
            raise ValueError(f"unknown provider {sent.provider!r}; one of {sorted(SCALES)}")
        key = (sent.provider, sent.conversation_id)
        by_conversation.setdefault(key, []).append(sent)
    return [
        Payload(
            provider=provider,
            kind="sent",
            key=payload_key(
                "\n".join(["sent", provider, cid, *(s.message_id for s in sent)]).encode()
            ),
            scale=SCALES[provider],
            conversation_id=cid,
            agent=sent[0].agent,  # a conversation is with one agent
            receipts=tuple(StatusReport(s.message_id, SENT_STATUS[provider], s.time) for s in sent),
        )
        for (provider, cid), sent in by_conversation.items()
    ]


def record_sent(client: firestore.Client, messages: Iterable[SentMessage]) -> Recorded:
    return FirestoreRecorder(client).record(sent_payloads(messages))
