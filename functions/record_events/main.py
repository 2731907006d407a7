"""Pub/Sub subscriber: persists every event (receipts, user messages, parked payloads)."""

import logging

import functions_framework
from google.cloud import firestore

from shared import logs, providers
from shared.config import Env
from shared.pubsub_push import PushedMessage, subscriber
from shared.store import FirestoreRecorder

logs.setup()
log = logging.getLogger("record_events")
env = Env()
project = env.project()
env.check("record-events")
recorder = FirestoreRecorder(firestore.Client(project=project))


@functions_framework.cloud_event
@subscriber
def record_events(message: PushedMessage) -> None:
    payload = providers.normalise(message.attributes.get("provider", ""), message.data)
    recorded = recorder.record(payload)
    log.info(
        "event recorded",
        extra={
            "pubsubMessageId": message.message_id,
            "provider": payload.provider,
            "kind": payload.kind,
            "conversationId": message.attributes.get("conversationId"),
            "requestId": message.attributes.get("requestId"),
            "receipts": len(payload.receipts),
            "parked": len(payload.parked),
            "writes": recorded.writes,
            "commits": recorded.commits,
        },
    )
