"""Sends each user message's agent READ receipt at most once accepted, and never loses one.

The claim is a compare-and-set on the message document (create, or update guarded by the
document's update time), so concurrent deliveries cannot both send, and a claim left by a
crashed attempt expires and is taken again on Pub/Sub's redelivery.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from google.cloud import firestore

from shared.adapters.firestore_retry import retry_on_conflict
from shared.core import read_receipts, records
from shared.core.config import Env
from shared.core.provider import ApiSettings, Provider
from shared.core.read_receipts import FIELD, ReadTarget, ReceiptApi, Step
from shared.core.times import utc_now


class ReceiptNotSentYet(Exception):
    """Not final yet (in flight elsewhere, or a transient failure): let Pub/Sub redeliver."""


@dataclass(frozen=True)
class ReadReceiptConfig:
    project: str
    enabled: bool
    apis: Mapping[str, ApiSettings]  # by provider: every provider that has a READ receipt
    lease: timedelta

    @classmethod
    def from_env(cls, providers: Sequence[Provider], env: Env | None = None) -> ReadReceiptConfig:
        env = env or Env()
        lease_seconds = env.number("READ_RECEIPT_LEASE_SECONDS", 120.0, minimum=1)
        config = cls(
            project=env.project(),
            enabled=env.flag("AUTO_READ_RECEIPTS", default=True),
            apis={
                p.name: p.read_receipts.api_settings(env)
                for p in providers
                if p.read_receipts is not None
            },
            lease=timedelta(seconds=lease_seconds),
        )
        # A lease shorter than one send would let a second delivery send while one is in flight.
        longest_send = max((api.longest_send for api in config.apis.values()), default=0.0)
        if lease_seconds <= longest_send:
            env.problem(f"READ_RECEIPT_LEASE_SECONDS must exceed {longest_send:g}")
        env.check("agent READ receipts")
        return config


class ReadReceiptSender:
    def __init__(
        self,
        client: firestore.Client,
        lease: timedelta,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._db = client
        self._lease = lease
        self._clock = clock

    def send_once(self, target: ReadTarget, api: ReceiptApi) -> str:
        """Returns the final state (SENT or FAILED); raises ReceiptNotSentYet otherwise."""
        ref = self._db.document(records.message_path(target.conversation_id, target.message_id))
        step, claim = self._claim(ref)
        if step is Step.DONE:
            return str(claim.get("state"))
        if step is Step.WAIT:
            raise ReceiptNotSentYet("another attempt holds the claim")
        outcome = api.send_read_receipt(target)
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
