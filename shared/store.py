"""Firestore adapter: applies a payload's planned writes in one transaction per commit."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from google.cloud import firestore

from shared import records
from shared.events import Payload

log = logging.getLogger(__name__)

# Contended transactions are retried by the client; past this, the function fails and
# Pub/Sub redelivers, so nothing is lost.
TRANSACTION_ATTEMPTS = 25


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Recorded:
    writes: int
    commits: int


class FirestoreRecorder:
    def __init__(self, client: firestore.Client, clock: Callable[[], datetime] = utc_now) -> None:
        self._db = client
        self._clock = clock

    def record(self, payload: Payload) -> Recorded:
        now = self._clock()
        parts = payload.chunks(records.MAX_RECEIPTS_PER_COMMIT)
        writes = sum(self._record_in_one_commit(part, now) for part in parts)
        return Recorded(writes=writes, commits=len(parts))

    def _record_in_one_commit(self, payload: Payload, now: datetime) -> int:
        refs = [self._db.document(path) for path in records.paths_to_read(payload)]

        @firestore.transactional
        def apply(transaction: firestore.Transaction) -> int:
            snapshots = self._db.get_all(refs, transaction=transaction)
            existing = {
                snap.reference.path: snap.to_dict() if snap.exists else None for snap in snapshots
            }
            writes = records.plan(payload, existing, now)
            for write in writes:
                ref = self._db.document(write.path)
                if write.exists:
                    transaction.update(ref, dict(write.data))
                else:
                    transaction.create(ref, dict(write.data))
            return len(writes)

        written: int = apply(self._db.transaction(max_attempts=TRANSACTION_ATTEMPTS))
        return written
