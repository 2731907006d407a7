"""The webhook with a publish confirmed at once: what the webhook costs besides Pub/Sub."""

from collections.abc import Mapping

from flask import Request, Response

from shared import providers
from shared.adapters import logs
from shared.adapters.webhook import Webhook, WebhookConfig


class ConfirmedAtOnce:
    def publish(self, topic_key: str, data: bytes, attributes: Mapping[str, str]) -> str:
        return "0"


logs.setup()
unpublished = Webhook(WebhookConfig.from_env(providers.REGISTRY), ConfirmedAtOnce())


def unpublished_webhook(request: Request) -> Response:
    return unpublished(request)
