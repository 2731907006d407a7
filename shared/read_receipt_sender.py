"""Sends each user message's agent READ receipt at most once accepted, and never loses one.

The claim is a compare-and-set on the message document (create, or update guarded by the
document's update time), so concurrent deliveries cannot both send, and a claim left by a
crashed attempt expires and is taken again on Pub/Sub's redelivery.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from google.cloud import firestore

from shared import read_receipts, records
from shared.bm_api import DEFAULT_ENDPOINT, REQUEST_TIMEOUT_SECONDS, Outcome
from shared.config import Env
from shared.firestore_retry import retry_on_conflict
from shared.read_receipts import FIELD, Step
from shared.times import utc_now


class ReceiptApi(Protocol):
    def send_read_receipt(self, conversation_id: str, message_id: str) -> Outcome: ...


class ReceiptNotSentYet(Exception):
    """Not final yet (in flight elsewhere, or a transient failure): let Pub/Sub redeliver."""


@dataclass(frozen=True)
class ReadReceiptConfig:
    project: str
    enabled: bool
    api_endpoint: str
    retry_deadline: float
    lease: timedelta

    @classmethod
    def from_env(cls, env: Env | None = None) -> ReadReceiptConfig:
        env = env or Env()
        retry_deadline = env.number("BM_API_RETRY_DEADLINE_SECONDS", 30.0, minimum=0)
        lease_seconds = env.number("READ_RECEIPT_LEASE_SECONDS", 120.0, minimum=1)
        config = cls(
            project=env.project(),
            enabled=env.flag("AUTO_READ_RECEIPTS", default=True),
            api_endpoint=env.optional("BM_API_ENDPOINT", DEFAULT_ENDPOINT),
            retry_deadline=retry_deadline,
            lease=timedelta(seconds=lease_seconds),
        )
        # A lease shorter than one send would let a second delivery send while one is in flight.
        longest_send = retry_deadline + 2 * REQUEST_TIMEOUT_SECONDS
        if lease_seconds <= longest_send:
            env.problem(f"READ_RECEIPT_LEASE_SECONDS must exceed {longest_send:g}")
        env.check("agent READ receipts")
        return config


class ReadReceiptSender:
    def __init__(
        self,
        client: firestore.Client,
        api: ReceiptApi,
        lease: timedelta,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._db = client
        self._api = api
        self._lease = lease
        self._clock = clock

    def send_once(self, conversation_id: str, message_id: str) -> str:
        """Returns the final state (SENT or FAILED); raises ReceiptNotSentYet otherwise."""
        ref = self._db.document(records.message_path(conversation_id, message_id))
        step, claim = self._claim(ref)
        if step is Step.DONE:
            return str(claim.get("state"))
        if step is Step.WAIT:
            raise ReceiptNotSentYet("another attempt holds the claim")
        outcome = self._api.send_read_receipt(conversation_id, message_id)
        state = read_receipts.finished(
            claim, self._clock(), outcome.attempts, outcome.error, outcome.permanent
        )
        retry_on_conflict(functools.partial(ref.update, {FIELD: state}))
        if state["state"] == read_receipts.PENDING:
            raise ReceiptNotSentYet(f"transient failure: {outcome.error}")
        return str(state["state"])

    def _claim(self, ref: firestore.DocumentReference) -> tuple[Step, Mapping[str, Any]]:
        return retry_on_conflict(functools.partial(self._try_claim, ref))

    def _try_claim(self, ref: firestore.DocumentReference) -> tuple[Step, Mapping[str, Any]]:
        snapshot = ref.get()
        current = (snapshot.to_dict() or {}).get(FIELD) if snapshot.exists else None
        now = self._clock()
        step = read_receipts.next_step(current, now)
        if step is not Step.SEND:
            return step, current or {}
        claim = read_receipts.claimed(current, now, self._lease)
        if snapshot.exists:
            guard = self._db.write_option(last_update_time=snapshot.update_time)
            ref.update({FIELD: claim}, option=guard)
        else:
            ref.create({FIELD: claim})  # the recorder fills in the message itself
        return step, claim
