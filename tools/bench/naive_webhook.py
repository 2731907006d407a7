"""The naive baseline: the real webhook, but each message published in its own request and
waited for alone (no batching across concurrent requests), as a first version might do."""

from collections.abc import Mapping

from flask import Request, Response
from google.cloud.pubsub_v1 import PublisherClient
from google.pubsub_v1 import PubsubMessage

from shared import logs
from shared.publisher import PublishFailed
from shared.webhook import Webhook, WebhookConfig


class UnbatchedPublisher:
    def __init__(self, project: str, topics: Mapping[str, str], timeout: float) -> None:
        self._client = PublisherClient()
        self._paths = {key: self._client.topic_path(project, t) for key, t in topics.items()}
        self._timeout = timeout

    def publish(self, topic_key: str, data: bytes, attributes: Mapping[str, str]) -> str:
        message = PubsubMessage(data=data, attributes=dict(attributes))
        try:
            response = self._client.api.publish(
                topic=self._paths[topic_key], messages=[message], timeout=self._timeout
            )
        except Exception as error:
            raise PublishFailed(f"publish to {topic_key} failed: {error}") from error
        message_id: str = response.message_ids[0]
        return message_id


logs.setup()
config = WebhookConfig.from_env()
settings = config.pubsub
naive = Webhook(config, UnbatchedPublisher(settings.project, settings.topics, settings.timeout))


def naive_webhook(request: Request) -> Response:
    return naive(request)
