"""Alibaba Cloud Chat App Message Service: status reports, user messages (MO) and template
reviews of WhatsApp, Messenger, Instagram and Viber, by HTTP batch push or from SMQ queues.

`webhook.py` checks the callback's URL token and source address, `element_screen.py` says which
elements of a batch are usable, `normalise.py` turns a batch into the product's events.
`queue.py` pulls the SMQ queues (with `smq.py`, the two services' clients, and
`queue_plan.py`, what to publish, park and delete) and publishes what it receives as the
webhook publishes a batch. This module holds the provider's vocabulary and its registry
entry, whose loaders import them when first used. Alibaba documents no way to send the
agent's READ receipt.
"""

from __future__ import annotations

from shared.core import routing
from shared.core.events import StatusScale
from shared.core.provider import Normaliser, Provider, QueuePart, WebhookPart

NAME = "chatapp"
STATUS = "ChatAppStatus"
INBOUND = "ChatAppInbound"
AUDIT = "ChatAppAudit"
KIND_BY_PATH = {"status": STATUS, "inbound": INBOUND, "audit": AUDIT}
# Set by the queue puller on a queue message it publishes to be parked: the reason.
PARKED_ATTRIBUTE = "parkedBecause"
# The queue mode's services on Alibaba's China site; the international pair is in
# docs/receiving-chat-app-receipts-from-queues.md.
SMQ_ENDPOINT = "https://1943695596114318.mns.cn-hangzhou.aliyuncs.com"
SMQ_TOKEN_ENDPOINT = "https://dybaseapi.aliyuncs.com"  # noqa: S105 -- a URL, not a secret

# The provider's own order. Failed and Deleted are terminal: nothing later undoes them.
SCALE = StatusScale({"Sent": 1, "Delivered": 2, "Read": 3, "Failed": 4, "Deleted": 5})
# Viber's subscription events are recorded as receipts but are no delivery status.
UNRANKED_STATUSES = frozenset({"subscribe", "unsubscribe"})


def topic_key(kind: str) -> str:
    """Every Chat App event is only persisted: no agent READ receipt follows."""
    return routing.EVENTS


def _webhook() -> WebhookPart:
    from shared.providers.chatapp import webhook

    return webhook


def _normaliser() -> Normaliser:
    from shared.providers.chatapp import normalise

    return normalise


def _queue() -> QueuePart:
    from shared.providers.chatapp import queue

    return queue


PROVIDER = Provider(
    name=NAME,
    title="Chat App",
    route="chatapp",
    switch=("CHATAPP_CALLBACK_TOKENS",),
    topic_key=topic_key,
    scale=SCALE,
    sent_status="Sent",
    # Alibaba re-pushes for about 6 minutes only: ride out a Pub/Sub outage in the spool.
    spools_by_default=True,
    load_webhook=_webhook,
    load_normaliser=_normaliser,
    load_queue=_queue,
    queue_switch=("CHATAPP_SMQ_QUEUES",),
)
