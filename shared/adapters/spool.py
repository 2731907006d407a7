"""The webhook's fallback when Pub/Sub does not confirm a publish: a Firestore spool.

Firestore is another failure domain than Pub/Sub, so an event can still be stored and
acknowledged while Pub/Sub is down; the drainer republishes it later, in order of arrival.
Imported only on that failure path, so the webhook's cold start never pays for Firestore.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.api_core import retry
from google.cloud import firestore

from shared.adapters.publisher import Publisher, PublishFailed, PubSubSettings
from shared.core.config import Env
from shared.core.times import utc_now

log = logging.getLogger(__name__)

SPOOL = "spool"
# With the publish timeout, this keeps the answer within Alibaba's ~3 s.
SPOOL_WRITE_TIMEOUT_SECONDS = 1.0
_SPOOL_RETRY = retry.Retry(
    predicate=retry.if_transient_error,
    initial=0.05,
    maximum=0.5,
    timeout=SPOOL_WRITE_TIMEOUT_SECONDS,
)


class SpoolFailed(Exception):
    """Neither Pub/Sub nor the spool holds the event: the provider must push again."""


@dataclass(frozen=True)
class Drained:
    republished: int
    remaining: bool  # more events wait: the batch was full, or Pub/Sub failed
    error: str | None = None


@dataclass(frozen=True)
class DrainConfig:
    pubsub: PubSubSettings
    batch_size: int

    @classmethod
    def from_env(cls, env: Env | None = None) -> DrainConfig:
        env = env or Env()
        config = cls(
            pubsub=PubSubSettings.from_env(env, default_timeout=10.0),  # no caller waits
            batch_size=int(env.number("DRAIN_BATCH_SIZE", 500, minimum=1)),
        )
        env.check("drain-spool")
        return config


class FirestoreSpool:
    def __init__(self, client: firestore.Client) -> None:
        self._spool = client.collection(SPOOL)

    def add(self, data: bytes, topic_key: str, attributes: Mapping[str, str]) -> str:
        """Stores one event; its id sorts by arrival. Raises SpoolFailed."""
        now = utc_now()
        # Time first, so ids sort by arrival; the random tail keeps ids unique.
        spool_id = f"{now.strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:12]}"
        try:
            self._spool.document(spool_id).create(
                {
                    "data": data,
                    "topicKey": topic_key,
                    "attributes": dict(attributes),
                    "receivedTime": now,
                },
                retry=_SPOOL_RETRY,
                timeout=SPOOL_WRITE_TIMEOUT_SECONDS,
            )
        except Exception as error:  # any failure means "not stored", whatever its type
            raise SpoolFailed(f"spool write failed: {type(error).__name__}") from error
        return spool_id

    def drain(self, publisher: Publisher, limit: int) -> Drained:
        """Republishes the oldest events in order; each is deleted once Pub/Sub confirmed it.

        Stops at the first failed publish (Pub/Sub is still down): what is left stays for the
        next run. A crash between publish and delete republishes an event once more, which
        the recorder's idempotency absorbs.
        """
        events = list(self._spool.order_by("__name__").limit(limit).stream())
        republished = 0
        for snapshot in events:
            event: dict[str, Any] = snapshot.to_dict() or {}
            try:
                publisher.publish(event["topicKey"], event["data"], event["attributes"])
            except PublishFailed as failure:
                return Drained(republished, remaining=True, error=str(failure))
            snapshot.reference.delete()
            republished += 1
        return Drained(republished, remaining=len(events) == limit)
