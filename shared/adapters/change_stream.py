"""Pub/Sub adapter for the change stream: publishes a delivery's changes once committed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared.adapters.publisher import PubSubPublisher
from shared.core import changes
from shared.core.changes import Change
from shared.core.config import DEFAULT_CHANGES_TOPIC, Env

_TOPIC_KEY = "changes"


@dataclass(frozen=True)
class ChangeStreamSettings:
    project: str
    topic: str
    timeout: float  # seconds to confirm a publish, retries included

    @classmethod
    def from_env(cls, env: Env) -> ChangeStreamSettings:
        return cls(
            project=env.project(),
            topic=env.optional("CHANGES_TOPIC", DEFAULT_CHANGES_TOPIC),
            timeout=env.number("CHANGES_PUBLISH_TIMEOUT_SECONDS", 30.0, minimum=0.1),
        )

    def connect(self) -> ChangeStream:
        return ChangeStream(PubSubPublisher(self.project, {_TOPIC_KEY: self.topic}, self.timeout))


class ChangeStream:
    def __init__(self, publisher: PubSubPublisher) -> None:
        self._publisher = publisher

    def publish(self, committed: Sequence[Change]) -> int:
        """Publishes the changes in one request (more only beyond Pub/Sub's limits for one);
        returns how many requests it made. Raises PublishFailed if one is not confirmed: the
        caller must not acknowledge its delivery, whose redelivery publishes them again."""
        requests = list(changes.requests([change.message() for change in committed]))
        for request in requests:
            self._publisher.publish_request(_TOPIC_KEY, request)
        return len(requests)
