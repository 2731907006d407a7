"""Optimistic concurrency on Firestore: write only if nothing changed since the read.

A write guarded by `create` (the document must not exist) or by the update time it was
read at fails when another writer got there first; the caller re-reads and decides again.
No locks are held, so concurrent duplicates cost a fast retry, never a lock wait.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from google.api_core.exceptions import Aborted, AlreadyExists, FailedPrecondition
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random

T = TypeVar("T")

# Lost races: another writer created or changed a document since we read it. (Aborted is
# how the emulator reports a write that met another's lock.)
CONFLICTS = (AlreadyExists, FailedPrecondition, Aborted)
ATTEMPTS = 20


def retry_on_conflict(attempt: Callable[[], T]) -> T:
    """Runs read-decide-write until it commits; past ATTEMPTS the conflict propagates, the
    function fails, and Pub/Sub redelivers: nothing is lost."""
    retrying = Retrying(
        retry=retry_if_exception_type(CONFLICTS),
        stop=stop_after_attempt(ATTEMPTS),
        wait=wait_random(0, 0.05),
        reraise=True,
    )
    return retrying(attempt)
