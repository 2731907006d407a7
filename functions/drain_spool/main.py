"""Scheduled: republishes what the webhook spooled while Pub/Sub was unavailable."""

import logging

import functions_framework
from flask import Request, Response, jsonify
from google.cloud import firestore

from shared.adapters import logs
from shared.adapters.spool import DrainConfig, FirestoreSpool

logs.setup()
log = logging.getLogger("drain_spool")
config = DrainConfig.from_env()
spool = FirestoreSpool(firestore.Client(project=config.pubsub.project))
publisher = config.pubsub.publisher()


@functions_framework.http
def drain_spool(request: Request) -> Response:
    drained = spool.drain(publisher, config.batch_size)
    log.info("spool drained", extra=vars(drained))
    response = jsonify(vars(drained))
    response.status_code = 503 if drained.error else 200  # the scheduler tries again
    return response
