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

from shared.adapters.change_stream import ChangeStreamSettings
from shared.adapters.firestore_retry import retry_on_conflict
from shared.core import changes, read_receipts, records
from shared.core.changes import Change
from shared.core.config import Env
from shared.core.provider import ApiSettings, Provider
from shared.core.read_receipts import FIELD, Outcome, ReadTarget, ReceiptApi, Step
from shared.core.times import utc_now


class ReceiptNotSentYet(Exception):
    """Not final yet (in flight elsewhere, or a transient failure): let Pub/Sub redeliver."""


def not_final(*settled: Settled) -> None:
    """Raises ReceiptNotSentYet when any READ is not final yet, so Pub/Sub redelivers."""
    waiting = [each for each in settled if not each.final]
    if waiting:
        reasons = "; ".join(sorted({f"{each.state}: {each.error}" for each in waiting}))
        raise ReceiptNotSentYet(f"{len(waiting)} not final ({reasons})")


@dataclass(frozen=True)
class ReadReceiptConfig:
    project: str
    enabled: bool
    apis: Mapping[str, ApiSettings]  # by provider: every provider that has a READ receipt
    lease: timedelta
    changes: ChangeStreamSettings

    @classmethod
    def from_env(cls, providers: Sequence[Provider], env: Env | None = None) -> ReadReceiptConfig:
        env = env or Env()
        lease_seconds = env.number("READ_RECEIPT_LEASE_SECONDS", 120.0, minimum=1)
        config = cls(
            project=env.project(),
            enabled=env.flag("AUTO_READ_RECEIPTS", default=True),
            # Only the providers switched on for READ: one not in use needs no settings.
            apis={
                p.name: half.api_settings(env)
                for p in providers
                if (half := p.read_receipts) is not None and p.reads_with(env)
            },
            lease=timedelta(seconds=lease_seconds),
            changes=ChangeStreamSettings.from_env(env),
        )
        # A lease shorter than one send would let a second delivery send while one is in flight.
        longest_send = max((api.longest_send for api in config.apis.values()), default=0.0)
        if lease_seconds <= longest_send:
            env.problem(f"READ_RECEIPT_LEASE_SECONDS must exceed {longest_send:g}")
        env.check("agent READ receipts")
        return config


@dataclass(frozen=True)
class Settled:
    """Where one target's READ stands after an attempt: SENT, FAILED, PENDING (a transient
    failure, retried on redelivery) or WAITING (another attempt holds its claim)."""

    target: ReadTarget
    state: str
    error: str | None = None
    credentials_rejected: bool = False  # the API refused the credential itself
    record: Mapping[str, Any] | None = None  # what the message document holds once final

    @property
    def final(self) -> bool:
        return self.state in (read_receipts.SENT, read_receipts.FAILED)


WAITING = "WAITING"


def settled_changes(provider: str, settled: Sequence[Settled]) -> list[Change]:
    """A change for each READ that is final, again when a redelivery finds it final (the
    delivery that settled it may have died before publishing)."""
    return [
        changes.agent_read_settled(
            provider, each.target.conversation_id, each.target.message_id, each.record
        )
        for each in settled
        if each.final and each.record is not None
    ]


@dataclass(frozen=True)
class _Claimed:
    target: ReadTarget
    ref: firestore.DocumentReference
    claim: Mapping[str, Any]


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
        [settled] = self.settle([target], api)
        not_final(settled)
        return settled.state

    def settle(self, targets: Sequence[ReadTarget], api: ReceiptApi) -> list[Settled]:
        """Each target's READ, one call per burst (`read_receipts.bursts`)."""
        return [each for burst in read_receipts.bursts(targets) for each in self._burst(burst, api)]

    def _burst(self, burst: list[ReadTarget], api: ReceiptApi) -> list[Settled]:
        """Claims each message of the burst, oldest first, and sends one READ for the newest
        claimed, which covers the others. A claim held elsewhere stops the burst there, so no
        message is marked by two attempts at once."""
        settled: list[Settled] = []
        claimed: list[_Claimed] = []
        for position, target in enumerate(burst):
            ref = self._db.document(records.message_path(target.conversation_id, target.message_id))
            step, claim = self._claim(ref)
            if step is Step.WAIT:  # send nothing: the other attempt may cover these too
                for each in claimed:  # ...so it need not wait for these claims to expire
                    released = {**each.claim, "leaseExpireTime": None}
                    retry_on_conflict(functools.partial(each.ref.update, {FIELD: released}))
                held = [*(each.target for each in claimed), *burst[position:]]
                why = "another attempt holds a claim of the burst"
                return [*settled, *(Settled(target, WAITING, why) for target in held)]
            if step is Step.DONE:  # settled before; a redelivery publishes its change again
                settled.append(Settled(target, str(claim.get("state")), record=claim))
            elif read_receipts.too_old(target, self._clock()):
                too_old = Outcome(0, read_receipts.TOO_OLD, permanent=True)
                settled.append(self._finish(target, ref, claim, too_old))
            else:
                claimed.append(_Claimed(target, ref, claim))
        while claimed:
            *earlier, newest = claimed
            outcome = api.send_read_receipt(newest.target)
            settled.append(self._finish(newest.target, newest.ref, newest.claim, outcome))
            if outcome.error is not None and outcome.permanent:
                claimed = earlier  # refused for the newest alone: the earlier go on without it
                continue
            covered = Outcome(0, outcome.error, outcome.permanent)
            newest_id = newest.target.message_id
            settled += [self._finish(c.target, c.ref, c.claim, covered, newest_id) for c in earlier]
            break
        return settled

    def _finish(
        self,
        target: ReadTarget,
        ref: firestore.DocumentReference,
        claim: Mapping[str, Any],
        outcome: Outcome,
        covered_by: str | None = None,
    ) -> Settled:
        state = read_receipts.finished(
            claim, self._clock(), outcome.attempts, outcome.error, outcome.permanent, covered_by
        )
        retry_on_conflict(functools.partial(ref.update, {FIELD: state}))
        return Settled(
            target, str(state["state"]), outcome.error, outcome.credentials_rejected, state
        )

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
