"""The naive baseline: the real webhook, but every message published in a request of its own
and waited for alone, never batched with others, as a first version might do."""

from flask import Request, Response

from shared import providers
from shared.adapters import logs
from shared.adapters.publisher import PubSubPublisher
from shared.adapters.webhook import Webhook, WebhookConfig


class AlwaysAlone(PubSubPublisher):
    publish = PubSubPublisher.publish_alone


logs.setup()
config = WebhookConfig.from_env(providers.REGISTRY)
settings = config.pubsub
naive = Webhook(config, AlwaysAlone(settings.project, settings.topics, settings.timeout))


def naive_webhook(request: Request) -> Response:
    return naive(request)
