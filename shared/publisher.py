"""Pub/Sub adapter for the webhook: publish one body and wait for the confirmation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from google.api_core import exceptions, retry
from google.cloud.pubsub_v1 import PublisherClient

from shared.config import Env

# Publish errors worth retrying within the webhook's own deadline (Pub/Sub's own list).
_TRANSIENT = retry.if_exception_type(
    exceptions.Aborted,
    exceptions.Cancelled,
    exceptions.DeadlineExceeded,
    exceptions.InternalServerError,
    exceptions.ResourceExhausted,
    exceptions.ServiceUnavailable,
    exceptions.Unknown,
)


class Publisher(Protocol):
    def publish(self, topic_key: str, data: bytes, attributes: Mapping[str, str]) -> str: ...


@dataclass(frozen=True)
class PubSubSettings:
    """Where and how long to publish: the webhook's and the drainer's common settings."""

    project: str
    topics: Mapping[str, str]
    timeout: float

    @classmethod
    def from_env(cls, env: Env, default_timeout: float) -> PubSubSettings:
        return cls(
            project=env.project(),
            topics=env.topics(),
            timeout=env.number("PUBLISH_TIMEOUT_SECONDS", default_timeout, minimum=0.1),
        )

    def publisher(self) -> PubSubPublisher:
        return PubSubPublisher(self.project, self.topics, self.timeout)


class PublishFailed(Exception):
    """The publish was not confirmed in time: the caller must not acknowledge the event."""


class PubSubPublisher:
    def __init__(self, project: str, topics: Mapping[str, str], timeout: float) -> None:
        self._client = PublisherClient()
        self._paths = {
            key: self._client.topic_path(project, topic) for key, topic in topics.items()
        }
        self._timeout = timeout
        self._retry = retry.Retry(
            predicate=_TRANSIENT, initial=0.1, maximum=1.0, multiplier=2.0, timeout=timeout
        )

    def publish(self, topic_key: str, data: bytes, attributes: Mapping[str, str]) -> str:
        """Returns the Pub/Sub message id once the server has it; raises PublishFailed."""
        future = self._client.publish(
            self._paths[topic_key], data, retry=self._retry, timeout=self._timeout, **attributes
        )
        try:
            message_id: str = future.result(timeout=self._timeout)
        except Exception as error:  # any failure means "not confirmed", whatever its type
            raise PublishFailed(
                f"publish to {topic_key} not confirmed: {type(error).__name__}"
            ) from error
        return message_id
