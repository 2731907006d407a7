"""When the business sent a message: the start of its send -> DELIVERED time.

Business Messages reports DELIVERED and READ, never when a message was sent, so the
business's sending code records it right after the API accepts the message:

    from shared.ops.sends import SentMessage, record_sent
    record_sent(
        firestore.Client(),
        [SentMessage("bm", agent, conversation_id, message_id, now)],
        ChangeStreamSettings.from_env(Env()).connect(),  # shared.adapters.change_stream
    )

A send record goes through the recorder like any receipt: once per message however often it
is repeated, never lowering the message's status, in one commit for many messages; and, like
the recorder's, its changes are published to the change stream once committed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from google.cloud import firestore

from shared import providers
from shared.adapters.change_stream import ChangeStream
from shared.adapters.store import FirestoreRecorder, Recorded
from shared.core.events import Payload, StatusReport, payload_key


@dataclass(frozen=True)
class SentMessage:
    provider: str  # a registered provider's name: "bm", "chatapp", ...
    agent: str  # BM: brands/B/agents/A; Chat App: the business number
    conversation_id: str  # Chat App: shared.providers.chatapp.conversation_id(business, user)
    message_id: str  # the id the message was sent with
    time: datetime


def sent_payloads(messages: Iterable[SentMessage]) -> list[Payload]:
    """One payload per conversation: payloads recorded together must not share a document."""
    by_conversation: dict[tuple[str, str], list[SentMessage]] = {}
    for sent in messages:
        if providers.named(sent.provider) is None:
            known = sorted(p.name for p in providers.REGISTRY)
            raise ValueError(f"unknown provider {sent.provider!r}; one of {known}")
        key = (sent.provider, sent.conversation_id)
        by_conversation.setdefault(key, []).append(sent)
    return [_sent_payload(provider, cid, sent) for (provider, cid), sent in by_conversation.items()]


def _sent_payload(name: str, conversation_id: str, sent: list[SentMessage]) -> Payload:
    provider = providers.named(name)
    assert provider is not None
    return Payload(
        provider=name,
        kind="sent",
        key=payload_key(
            "\n".join(["sent", name, conversation_id, *(s.message_id for s in sent)]).encode()
        ),
        scale=provider.scale,
        conversation_id=conversation_id,
        agent=sent[0].agent,  # a conversation is with one agent
        receipts=tuple(StatusReport(s.message_id, provider.sent_status, s.time) for s in sent),
    )


def record_sent(
    client: firestore.Client, messages: Iterable[SentMessage], stream: ChangeStream
) -> Recorded:
    """Records the sends, then publishes their changes (a failed publish raises: calling it
    again with the same messages publishes them again, with the same ids)."""
    recorded = FirestoreRecorder(client).record(sent_payloads(messages))
    stream.publish(recorded.changes)
    return recorded
