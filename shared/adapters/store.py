"""Firestore adapter: applies a payload's planned writes in one atomic, conditional commit."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from google.api_core.exceptions import InvalidArgument
from google.cloud import firestore

from shared.adapters.change_stream import ChangeStreamSettings
from shared.adapters.firestore_retry import retry_on_conflict
from shared.core import records
from shared.core.changes import Change
from shared.core.config import Env
from shared.core.events import UNSTORABLE, Payload
from shared.core.screening import park_whole
from shared.core.times import utc_now

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecorderConfig:
    project: str
    receipt_ttl: timedelta | None  # receipts expire this long after they are recorded
    changes: ChangeStreamSettings

    @classmethod
    def from_env(cls, env: Env | None = None) -> RecorderConfig:
        env = env or Env()
        days = env.number("RECEIPT_RETENTION_DAYS", 0)
        config = cls(
            project=env.project(),
            receipt_ttl=timedelta(days=days) if days else None,
            changes=ChangeStreamSettings.from_env(env),
        )
        env.check("record-events")
        return config


@dataclass(frozen=True)
class Recorded:
    """What recording cost in Firestore operations (of the attempt that settled it), and the
    changes committed, to publish."""

    writes: int = 0
    commits: int = 0
    reads: int = 0  # documents requested by the read before the commit
    changes: tuple[Change, ...] = field(default=(), repr=False)

    def __add__(self, other: Recorded) -> Recorded:
        return Recorded(
            self.writes + other.writes,
            self.commits + other.commits,
            self.reads + other.reads,
            self.changes + other.changes,
        )


class FirestoreRecorder:
    def __init__(
        self,
        client: firestore.Client,
        receipt_ttl: timedelta | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._db = client
        self._receipt_ttl = receipt_ttl
        self._clock = clock

    def record(self, payloads: list[Payload]) -> Recorded:
        now = self._clock()
        groups = records.commit_groups(payloads)
        return sum((self._commit(group, now) for group in groups), Recorded())

    def _commit(self, payloads: list[Payload], now: datetime) -> Recorded:
        try:
            return retry_on_conflict(functools.partial(self._commit_once, payloads, now))
        except (InvalidArgument, ValueError) as refused:
            # The server's refusal, or the client's before sending (a value it cannot encode):
            # normalisation screens for these, so this is the backstop.
            if len(payloads) > 1:  # find the part Firestore refuses; store the others
                return sum((self._commit([payload], now) for payload in payloads), Recorded())
            # Firestore would refuse it on every redelivery: keep the body and say why.
            log.warning("Firestore refused a payload; parking it", extra={"key": payloads[0].key})
            message = refused.message if isinstance(refused, InvalidArgument) else str(refused)
            # The message may quote the refused value itself.
            readable = message.encode("utf-8", "backslashreplace").decode()
            parked = park_whole(payloads, UNSTORABLE, f"Firestore refused it: {readable}"[:500])
            return retry_on_conflict(functools.partial(self._commit_once, [parked], now))

    def _commit_once(self, payloads: list[Payload], now: datetime) -> Recorded:
        """Reads what the payloads touch, and commits their plans only if none of it changed."""
        paths = [path for payload in payloads for path in records.paths_to_read(payload)]
        refs = [self._db.document(path) for path in dict.fromkeys(paths)]
        snapshots = {snap.reference.path: snap for snap in self._db.get_all(refs)}
        existing = {
            path: snap.to_dict() if snap.exists else None for path, snap in snapshots.items()
        }
        recording = records.Recording()
        for payload in payloads:
            recording += records.record(payload, existing, now, self._receipt_ttl)
        writes, changes = recording.writes, tuple(recording.changes)
        if not writes:  # all recorded already; a redelivery publishes its changes again
            return Recorded(reads=len(refs), changes=changes)
        batch = self._db.batch()
        for write in writes:
            ref = self._db.document(write.path)
            if write.exists:
                read_at = snapshots[write.path].update_time
                batch.update(
                    ref, dict(write.data), option=self._db.write_option(last_update_time=read_at)
                )
            else:
                batch.create(ref, dict(write.data))  # fails if another writer created it first
        batch.commit()
        return Recorded(writes=len(writes), commits=1, reads=len(refs), changes=changes)
