"""Pub/Sub subscriber: sends the agent's READ receipt for each user message, exactly once."""

import logging

import functions_framework
from google.cloud import firestore

from shared import providers
from shared.adapters import logs
from shared.adapters.pubsub_push import PushedMessage, subscriber
from shared.adapters.read_receipt_sender import (
    ReadReceiptConfig,
    ReadReceiptSender,
    not_final,
    settled_changes,
)

logs.setup()
log = logging.getLogger("agent_read_receipts")
config = ReadReceiptConfig.from_env(providers.REGISTRY)
sender = ReadReceiptSender(firestore.Client(project=config.project), config.lease)
apis = {name: api.connect() for name, api in config.apis.items()} if config.enabled else {}
change_stream = config.changes.connect()


@functions_framework.cloud_event
@subscriber
def agent_read_receipts(message: PushedMessage) -> None:
    provider = message.attributes.get("provider", "")
    api = apis.get(provider)
    targets = providers.read_targets(message.attributes, message.data, message.publish_time)
    if api is None or not targets:
        log.info("no agent READ receipt to send", extra={"pubsubMessageId": message.message_id})
        return
    settled = sender.settle(targets, api)
    change_stream.publish(settled_changes(provider, settled))  # before any redelivery below
    for each in settled:
        # No conversation id: RBM's and Chat App's embed the user's phone number, and the
        # message id with the payload key already names the event.
        fields = {
            "pubsubMessageId": message.message_id,
            "payloadKey": message.key,
            "provider": provider,  # a label of the READ metric
            "messageId": each.target.message_id,
            "state": each.state,
            # An operator must replace the credential: an alert counts these.
            "credentialsRejected": each.credentials_rejected,
        }
        if each.final:
            log.info("agent READ receipt settled", extra=fields)
        else:  # Pub/Sub redelivers it (not_final below)
            log.info("agent READ receipt not final yet", extra=fields)
    not_final(*settled)
