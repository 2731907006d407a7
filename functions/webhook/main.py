"""HTTP webhook: authenticate each provider request, publish it, acknowledge once published."""

import functions_framework
from flask import Request, Response

from shared import providers
from shared.adapters import logs
from shared.adapters.pubsub_rpc import RpcPublisher
from shared.adapters.webhook import Webhook, WebhookConfig

logs.setup()
config = WebhookConfig.from_env(providers.REGISTRY)
settings = config.pubsub
publisher = RpcPublisher(settings.project, settings.topics, settings.timeout)
pipeline_webhook = Webhook(config, publisher)


@functions_framework.http
def webhook(request: Request) -> Response:
    return pipeline_webhook(request)
