"""What every publisher shares: the interface, its failure, and where and how long to publish.

Two publishers implement it: `pubsub_rpc` (the webhook's: Pub/Sub's Publish RPC on a bare
gRPC channel, so the webhook's cold start never loads the client library) and
`pubsub_client` (the client library: the drainer's, the queue puller's and the replays'; the
drainer reads its errors to tell an outage from a refusal).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from shared.core.config import Env

if TYPE_CHECKING:
    from shared.adapters.pubsub_client import PubSubPublisher


class Publisher(Protocol):
    def publish(self, topic_key: str, data: bytes, attributes: Mapping[str, str]) -> str: ...


class PublishFailed(Exception):
    """The publish was not confirmed in time: the caller must not acknowledge the event."""


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
        """The client library's publisher, imported only by what uses it."""
        from shared.adapters.pubsub_client import PubSubPublisher

        return PubSubPublisher(self.project, self.topics, self.timeout)
