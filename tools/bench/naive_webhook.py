"""The naive baseline: the real webhook, but every message published in a request of its own
and waited for alone, never batched with others, as a first version might do."""

import os

from flask import Request, Response

from shared import providers
from shared.adapters import logs
from shared.adapters.pubsub_rpc import RpcPublisher
from shared.adapters.webhook import Webhook, WebhookConfig

logs.setup()
config = WebhookConfig.from_env(providers.REGISTRY)
settings = config.pubsub
# As many requests in flight as the server has threads, one message in each.
threads = int(os.environ["THREADS"])
alone = RpcPublisher(
    settings.project, settings.topics, settings.timeout, max_in_flight=threads, max_batch=1
)
naive = Webhook(config, alone)


def naive_webhook(request: Request) -> Response:
    return naive(request)
