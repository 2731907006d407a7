"""HTTP webhook: authenticate each provider request, publish it, acknowledge once published."""

import functions_framework
from flask import Request, Response

from shared import providers
from shared.adapters import logs
from shared.adapters.webhook import Webhook, WebhookConfig

logs.setup()
config = WebhookConfig.from_env(providers.REGISTRY)
pipeline_webhook = Webhook(config, config.pubsub.publisher())


@functions_framework.http
def webhook(request: Request) -> Response:
    return pipeline_webhook(request)
