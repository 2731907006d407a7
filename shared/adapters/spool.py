"""The webhook's fallback when Pub/Sub does not confirm a publish: a Firestore spool.

Firestore is another failure domain than Pub/Sub, so an event can still be stored and
acknowledged while Pub/Sub is down; the drainer republishes it later, in order of arrival.
Imported only on that failure path, so the webhook's cold start never pays for Firestore.
The spool has a database of its own (SPOOL_DATABASE), the only one the webhook may use.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from google.api_core import exceptions, retry
from google.cloud import firestore

from shared.adapters.publisher import Publisher, PublishFailed, PubSubSettings, is_transient
from shared.core.config import Env
from shared.core.records import PARKED, piece_writes
from shared.core.spool import (
    DEFAULT_DRAIN_BUDGET_BYTES,
    DEFAULT_MAX_ATTEMPTS,
    MAX_DOCUMENT_BYTES,
    DrainRun,
    Failure,
    Fault,
    SpooledEvent,
    Verdict,
    fault_of,
    page_sizes,
    parked_unpublishable,
)
from shared.core.times import utc_now

log = logging.getLogger(__name__)

Snapshot = firestore.DocumentSnapshot[firestore.DocumentReference]

SPOOL = "spool"
DEFAULT_DATABASE = "(default)"  # Firestore's own default: local setups keep working as they were
# With the publish timeout, this keeps the answer within Alibaba's ~3 s.
SPOOL_WRITE_TIMEOUT_SECONDS = 1.0
_SPOOL_RETRY = retry.Retry(
    predicate=retry.if_transient_error,
    initial=0.05,
    maximum=0.5,
    timeout=SPOOL_WRITE_TIMEOUT_SECONDS,
)
# What a conditional write meets when another drain settled the same event first.
_SETTLED_ELSEWHERE = (exceptions.FailedPrecondition, exceptions.NotFound, exceptions.Conflict)


@dataclass(frozen=True)
class Version:
    """One version of a spool document: a write conditional on it fails once it changed."""

    reference: firestore.DocumentReference
    update_time: datetime | None


class SpoolFailed(Exception):
    """Neither Pub/Sub nor the spool holds the event: the provider must push again."""


@dataclass(frozen=True)
class Drained:
    republished: int
    parked: int  # set aside in parked/ after too many failures of their own
    waiting: int  # failed in this run and left for the next
    remaining: bool  # more events wait: the batch was full, or some failed
    pages: int  # reads of the spool, each within the run's byte budget
    error: str | None = None  # Pub/Sub did not answer: the last such error


@dataclass(frozen=True)
class SpoolSettings:
    """Where the spool is, and how often an event may fail on its own before it is parked."""

    database: str
    max_attempts: int

    @classmethod
    def from_env(cls, env: Env) -> SpoolSettings:
        return cls(
            database=env.optional("SPOOL_DATABASE", DEFAULT_DATABASE),
            max_attempts=int(env.number("SPOOL_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS, minimum=1)),
        )

    def client(self, project: str) -> firestore.Client:
        return firestore.Client(project=project, database=self.database)


@dataclass(frozen=True)
class DrainConfig:
    pubsub: PubSubSettings
    batch_size: int
    budget_bytes: int  # of spooled events held at once: a page of the run
    spool: SpoolSettings

    @classmethod
    def from_env(cls, env: Env | None = None) -> DrainConfig:
        env = env or Env()
        config = cls(
            pubsub=PubSubSettings.from_env(env, default_timeout=10.0),  # no caller waits
            batch_size=int(env.number("DRAIN_BATCH_SIZE", 500, minimum=1)),
            budget_bytes=int(
                env.number(
                    "DRAIN_BUDGET_BYTES", DEFAULT_DRAIN_BUDGET_BYTES, minimum=MAX_DOCUMENT_BYTES
                )
            ),
            spool=SpoolSettings.from_env(env),
        )
        env.check("drain-spool")
        return config


class FirestoreSpool:
    def __init__(self, client: firestore.Client) -> None:
        self._db = client
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

    def drain(
        self,
        publisher: Publisher,
        limit: int,
        max_attempts: int,
        budget_bytes: int = DEFAULT_DRAIN_BUDGET_BYTES,
    ) -> Drained:
        """Republishes the oldest events in order; each is deleted once Pub/Sub confirmed it.

        A failed event stays for the next run, and the run goes on with the next one, so an
        event that can never be published holds up none behind it; after `max_attempts`
        failures of its own it is parked (shared.core.spool says which failures are its
        own: an outage never is). Two outage failures in a row end the run. A crash between
        publish and delete republishes an event once more, which the recorder absorbs.
        Events are read a page at a time, each page within `budget_bytes` (`page_sizes`);
        what failed is kept without its body until the run is over.
        """
        run = DrainRun(max_attempts)
        failed: dict[str, Version] = {}  # the failed events' documents, not their bodies
        read = pages = 0
        after: Snapshot | None = None
        for page_size in page_sizes(limit, budget_bytes):
            query = self._spool.order_by("__name__").limit(page_size)
            snapshots = list((query.start_after(after) if after else query).stream())
            pages += 1
            read += len(snapshots)
            for snapshot in snapshots:
                event = SpooledEvent(snapshot.id, snapshot.to_dict() or {})
                failure = _publish(publisher, event)
                if failure is None:
                    snapshot.reference.delete()
                    run.took()
                    continue
                run.failed(replace(failure, event=event.without_body()))
                failed[snapshot.id] = Version(snapshot.reference, snapshot.update_time)
                if run.pubsub_down:
                    break
            if run.pubsub_down or len(snapshots) < page_size:
                break
            after = snapshots[-1]
        parked = 0
        for failure in run.failures:  # settled once the run is over: see DrainRun.verdict
            version = failed[failure.event.spool_id]
            verdict = run.verdict(failure)
            if verdict is Verdict.RETRY:
                self._count(version, failure)
            elif verdict is Verdict.PARK:
                parked += self._park(version, failure)
        waiting = len(run.failures) - parked
        return Drained(
            republished=run.republished,
            parked=parked,
            waiting=waiting,
            remaining=read == limit or waiting > 0,
            pages=pages,
            error=run.outage_error,
        )

    def _count(self, version: Version, failure: Failure) -> None:
        """One more failure of the event's own, unless another drain settled it meanwhile."""
        with contextlib.suppress(*_SETTLED_ELSEWHERE):
            version.reference.update(
                {
                    "publishAttempts": failure.event.attempts + 1,
                    "lastError": failure.error,
                    "lastAttemptTime": utc_now(),
                },
                option=self._db.write_option(last_update_time=version.update_time),
            )

    def _park(self, version: Version, failure: Failure) -> bool:
        """Moves the event to parked/ in one commit: parked and gone from the spool, or neither."""
        snapshot = version.reference.get()  # with its body, which the run did not keep
        if not snapshot.exists or snapshot.update_time != version.update_time:
            return False  # another drain settled it meanwhile
        event = SpooledEvent(snapshot.id, snapshot.to_dict() or {})
        document, pieces = parked_unpublishable(replace(failure, event=event), utc_now())
        batch = self._db.batch()
        parked = self._db.collection(PARKED).document(snapshot.id)
        batch.create(parked, document)
        for piece in piece_writes(parked.path, pieces):
            batch.create(self._db.document(piece.path), dict(piece.data))
        batch.delete(
            snapshot.reference,
            option=self._db.write_option(last_update_time=snapshot.update_time),
        )
        try:
            batch.commit()
        except _SETTLED_ELSEWHERE:
            return False
        log.error(
            "spooled event parked: %s",
            document["reason"],
            extra={"spoolId": snapshot.id, "category": document["category"]},
        )
        return True


def _publish(publisher: Publisher, event: SpooledEvent) -> Failure | None:
    defect = event.defect()
    if defect is not None:
        return Failure(event, Fault.EVENT, defect)
    try:
        publisher.publish(event.topic_key, event.data, event.attributes)
    except Exception as error:  # one event's failure, whatever its type, never stops the drain
        return failure_of(event, error)
    return None


def failure_of(event: SpooledEvent, error: Exception) -> Failure:
    """A failed publish, with whose fault it is from what Pub/Sub answered (if anything)."""
    cause = error.__cause__ if isinstance(error, PublishFailed) and error.__cause__ else error
    status = getattr(cause, "grpc_status_code", None)  # google.api_core's exceptions carry it
    fault = fault_of(getattr(status, "name", None), is_transient(cause))
    return Failure(event, fault, f"{type(cause).__name__}: {cause}"[:1000])
