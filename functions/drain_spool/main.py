"""Scheduled: republishes what the webhook spooled while Pub/Sub was unavailable."""

import logging

import functions_framework
from flask import Request, Response, jsonify

from shared.adapters import logs
from shared.adapters.spool import DrainConfig, FirestoreSpool

logs.setup()
log = logging.getLogger("drain_spool")
config = DrainConfig.from_env()
spool = FirestoreSpool(config.spool.client(config.pubsub.project))
publisher = config.pubsub.publisher()


@functions_framework.http
def drain_spool(request: Request) -> Response:
    drained = spool.drain(
        publisher, config.batch_size, config.spool.max_attempts, config.budget_bytes
    )
    log.info("spool drained", extra=vars(drained))
    response = jsonify(vars(drained))
    response.status_code = 503 if drained.error else 200  # Pub/Sub down: the scheduler tries again
    return response
