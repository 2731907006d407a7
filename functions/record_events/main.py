"""Pub/Sub subscriber: persists every event (receipts, user messages, parked payloads)."""

import logging
from collections import Counter

import functions_framework
from google.cloud import firestore

from shared import providers
from shared.adapters import logs
from shared.adapters.pubsub_push import PushedMessage, subscriber
from shared.adapters.store import FirestoreRecorder, RecorderConfig

logs.setup()
log = logging.getLogger("record_events")
config = RecorderConfig.from_env()
recorder = FirestoreRecorder(firestore.Client(project=config.project), config.receipt_ttl)
change_stream = config.changes.connect()


@functions_framework.cloud_event
@subscriber
def record_events(message: PushedMessage) -> None:
    payloads = providers.normalise(message.attributes, message.data, message.publish_time)
    recorded = recorder.record(payloads)
    # Only once committed; a delivery that dies before this is redelivered and publishes again.
    change_requests = change_stream.publish(recorded.changes)
    log.info(
        "event recorded",
        extra={
            "pubsubMessageId": message.message_id,
            "payloadKey": message.key,
            "provider": message.attributes.get("provider"),
            "kind": message.attributes.get("kind"),
            "conversationId": message.attributes.get("conversationId"),
            "requestId": message.attributes.get("requestId"),
            "receipts": sum(len(p.receipts) for p in payloads),
            # Per status: a log-based metric per status counts each exactly (batches mix them).
            "receiptStatuses": dict(Counter(r.status for p in payloads for r in p.receipts)),
            "userMessages": sum(len(p.user_messages) for p in payloads),
            "reviews": sum(len(p.reviews) for p in payloads),
            "parked": sum(len(p.parked) for p in payloads),
            "writes": recorded.writes,
            "commits": recorded.commits,
            "reads": recorded.reads,
            "changes": len(recorded.changes),
            "changeRequests": change_requests,
        },
    )
