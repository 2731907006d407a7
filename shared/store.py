"""Firestore adapter: applies a payload's planned writes in one atomic, conditional commit."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from google.cloud import firestore

from shared import records
from shared.events import Payload
from shared.firestore_retry import retry_on_conflict
from shared.times import utc_now


@dataclass(frozen=True)
class Recorded:
    writes: int
    commits: int


class FirestoreRecorder:
    def __init__(self, client: firestore.Client, clock: Callable[[], datetime] = utc_now) -> None:
        self._db = client
        self._clock = clock

    def record(self, payloads: list[Payload]) -> Recorded:
        now = self._clock()
        written = [
            retry_on_conflict(functools.partial(self._commit_once, group, now))
            for group in records.commit_groups(payloads)
        ]
        return Recorded(writes=sum(written), commits=sum(1 for n in written if n))

    def _commit_once(self, payloads: list[Payload], now: datetime) -> int:
        """Reads what the payloads touch, and commits their plans only if none of it changed."""
        paths = [path for payload in payloads for path in records.paths_to_read(payload)]
        refs = [self._db.document(path) for path in dict.fromkeys(paths)]
        snapshots = {snap.reference.path: snap for snap in self._db.get_all(refs)}
        existing = {
            path: snap.to_dict() if snap.exists else None for path, snap in snapshots.items()
        }
        writes = [write for payload in payloads for write in records.plan(payload, existing, now)]
        if not writes:
            return 0
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
        return len(writes)
