"""Pub/Sub subscriber: sends the agent's READ receipt for each user message, exactly once."""

import logging

import functions_framework
from google.cloud import firestore

from shared import logs
from shared.bm_api import BusinessMessagesApi, default_session
from shared.providers import bm
from shared.pubsub_push import PushedMessage, subscriber
from shared.read_receipt_sender import ReadReceiptConfig, ReadReceiptSender

logs.setup()
log = logging.getLogger("agent_read_receipts")
config = ReadReceiptConfig.from_env()
sender = (
    ReadReceiptSender(
        firestore.Client(project=config.project),
        BusinessMessagesApi(config.api_endpoint, default_session(), config.retry_deadline),
        config.lease,
    )
    if config.enabled
    else None
)


@functions_framework.cloud_event
@subscriber
def agent_read_receipts(message: PushedMessage) -> None:
    wanted = sender is not None and message.attributes.get("provider") == bm.PROVIDER
    target = bm.read_receipt_target(message.data) if wanted else None
    if sender is None or target is None:
        log.info("no agent READ receipt to send", extra={"pubsubMessageId": message.message_id})
        return
    conversation_id, message_id = target
    state = sender.send_once(conversation_id, message_id)
    log.info(
        "agent READ receipt settled",
        extra={
            "pubsubMessageId": message.message_id,
            "payloadKey": message.key,
            "conversationId": conversation_id,
            "messageId": message_id,
            "state": state,
        },
    )
