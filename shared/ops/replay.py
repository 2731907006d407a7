"""`make replay`: what the pipeline set aside, why, and re-driving it once the cause is fixed.

    python -m shared.ops.replay list
    python -m shared.ops.replay redrive dead-letters [MESSAGE_ID ...]   (all when none given)
    python -m shared.ops.replay redrive parked PARKED_ID [PARKED_ID ...]
    python -m shared.ops.replay redrive spool

Works against Google Cloud (Application Default Credentials, GOOGLE_CLOUD_PROJECT) or the
local emulators (PUBSUB_EMULATOR_HOST, FIRESTORE_EMULATOR_HOST). Parked documents are in
the main database (what the recorder could not use) and in the spool's (SPOOL_DATABASE:
what the drainer could not publish). Re-driving publishes the event unchanged to the topic
it came from, so the subscribers process it as new; they are idempotent, so a replay, even
a repeated one, records each event once. A body stored truncated is never republished.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from google.api_core.exceptions import DeadlineExceeded
from google.cloud import firestore
from google.cloud.pubsub_v1 import SubscriberClient

from shared import providers
from shared.adapters.publisher import Publisher, PubSubSettings
from shared.adapters.spool import (
    DEFAULT_DATABASE,
    SPOOL,
    Drained,
    FirestoreSpool,
    Snapshot,
    SpoolSettings,
)
from shared.core import records, routing
from shared.core.config import DEFAULT_DEAD_LETTER, Env
from shared.core.replay import reassembled, redrive_refusal
from shared.core.spool import DEFAULT_MAX_ATTEMPTS

# Attributes Pub/Sub adds when it dead-letters a message; not the event's own.
_PUBSUB_ADDED = "CloudPubSubDeadLetter"
PULL_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    ack_id: str
    data: bytes
    attributes: dict[str, str]

    @property
    def own_attributes(self) -> dict[str, str]:
        return {k: v for k, v in self.attributes.items() if not k.startswith(_PUBSUB_ADDED)}


@dataclass(frozen=True)
class ParkedDocument:
    parked_id: str
    database: str  # "main" (the recorder's) or "spool" (the drainer's)
    fields: dict[str, Any]


@dataclass(frozen=True)
class Redriven:
    republished: list[str]
    refused: dict[str, str]  # parked id -> why it was not republished


class Replay:
    def __init__(
        self,
        publisher: Publisher,
        subscriber: Any,
        dead_letter_subscription: str,
        db: firestore.Client,
        spool_db: firestore.Client | None = None,  # None: the spool is in the main database
        spool_max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        self._publisher = publisher
        self._subscriber = subscriber
        self._dead_letters = dead_letter_subscription
        self._databases = {"main": db, **({"spool": spool_db} if spool_db else {})}
        self._spool_db = spool_db or db
        self._spool_max_attempts = spool_max_attempts

    # --- dead letters ------------------------------------------------------------------

    def dead_letters(self) -> list[DeadLetter]:
        """Everything on the dead-letter subscription, left there."""
        held = list(self._pull_all())
        self._release(held)
        return held

    def redrive_dead_letters(self, message_ids: Sequence[str] = ()) -> int:
        held = list(self._pull_all())
        chosen = [m for m in held if not message_ids or m.message_id in message_ids]
        for message in chosen:
            attributes = message.own_attributes
            self._publisher.publish(providers.topic_key(attributes), message.data, attributes)
            self._subscriber.acknowledge(subscription=self._dead_letters, ack_ids=[message.ack_id])
        self._release([m for m in held if m not in chosen])
        return len(chosen)

    def _pull_all(self) -> Iterator[DeadLetter]:
        while True:
            try:
                response = self._subscriber.pull(
                    subscription=self._dead_letters, max_messages=100, timeout=PULL_TIMEOUT_SECONDS
                )
            except DeadlineExceeded:
                return
            if not response.received_messages:
                return
            for received in response.received_messages:
                message = received.message
                yield DeadLetter(
                    message.message_id, received.ack_id, message.data, dict(message.attributes)
                )

    def _release(self, messages: list[DeadLetter]) -> None:
        if messages:
            self._subscriber.modify_ack_deadline(
                subscription=self._dead_letters,
                ack_ids=[m.ack_id for m in messages],
                ack_deadline_seconds=0,
            )

    # --- parked payloads and the spool -------------------------------------------------

    def parked(self) -> list[ParkedDocument]:
        return [
            ParkedDocument(snapshot.id, name, snapshot.to_dict() or {})
            for name, db in self._databases.items()
            for snapshot in db.collection(records.PARKED).order_by("recordTime").stream()
        ]

    def redrive_parked(self, parked_ids: Sequence[str]) -> Redriven:
        """Republishes whole parked payloads; refuses, and says why, any it cannot send as
        they arrived (a part of a payload, a body stored truncated)."""
        republished: list[str] = []
        refused: dict[str, str] = {}
        for parked_id in parked_ids:
            snapshot = self._find_parked(parked_id)
            if snapshot is None:
                refused[parked_id] = "no parked document has this id"
                continue
            document = snapshot.to_dict() or {}
            pieces = _pieces(snapshot)
            refusal = redrive_refusal(document, pieces)
            if refusal is not None:
                refused[parked_id] = refusal
                continue
            attributes = routing.attributes(
                provider=document.get("provider"), kind=document.get("kind")
            )
            self._publisher.publish(
                providers.topic_key(attributes), reassembled(document, pieces), attributes
            )
            snapshot.reference.update(
                {"replayTime": firestore.SERVER_TIMESTAMP, "replays": firestore.Increment(1)}
            )
            republished.append(parked_id)
        return Redriven(republished, refused)

    def _find_parked(self, parked_id: str) -> Snapshot | None:
        for db in self._databases.values():
            snapshot = db.collection(records.PARKED).document(parked_id).get()
            if snapshot.exists:
                return snapshot
        return None

    def spooled(self) -> int:
        return sum(1 for _ in self._spool_db.collection(SPOOL).select([]).stream())

    def drain_spool(self) -> Drained:
        return FirestoreSpool(self._spool_db).drain(self._publisher, 500, self._spool_max_attempts)


def _pieces(parked: Snapshot) -> list[bytes]:
    """The rest of a body kept in pieces, in order (pieces are numbered from 1)."""
    stored = {
        piece.id: (piece.to_dict() or {}).get("rawBody")
        for piece in parked.reference.collection(records.PIECES).stream()
    }
    ordered = sorted((int(n), body) for n, body in stored.items() if n.isdigit())
    return [body for _, body in ordered if isinstance(body, bytes)]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="replay", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="what is parked, dead-lettered or spooled, and why")
    redrive = commands.add_parser("redrive", help="publish set-aside events to the pipeline again")
    redrive.add_argument("what", choices=["dead-letters", "parked", "spool"])
    redrive.add_argument("ids", nargs="*", help="message or parked ids (dead letters: all if none)")
    args = parser.parse_args(argv)

    env = Env()
    pubsub = PubSubSettings.from_env(env, default_timeout=10.0)
    spool = SpoolSettings.from_env(env)
    dead_letters = env.optional("DEAD_LETTER_SUBSCRIPTION", DEFAULT_DEAD_LETTER)
    env.check("replay")
    subscriber = SubscriberClient()
    replay = Replay(
        pubsub.publisher(),
        subscriber,
        subscriber.subscription_path(pubsub.project, dead_letters),
        firestore.Client(project=pubsub.project),
        spool.client(pubsub.project) if spool.database != DEFAULT_DATABASE else None,
        spool.max_attempts,
    )
    if args.command == "list":
        show(replay)
    elif args.what == "dead-letters":
        print(f"re-drove {replay.redrive_dead_letters(args.ids)} dead letters")
    elif args.what == "parked":
        redriven = replay.redrive_parked(args.ids)
        print(f"re-drove {len(redriven.republished)} parked payloads")
        for parked_id, why in redriven.refused.items():
            print(f"refused {parked_id}, not republished: {why}", file=sys.stderr)
        if redriven.refused:
            sys.exit(1)
    else:
        drained = replay.drain_spool()
        print(
            f"republished {drained.republished} spooled events, parked {drained.parked}, "
            f"{drained.waiting} failed and wait for the next drain"
            + (f" (Pub/Sub: {drained.error})" if drained.error else "")
        )


def show(replay: Replay) -> None:
    dead = replay.dead_letters()
    print(f"Dead letters: {len(dead)} (redrive dead-letters [MESSAGE_ID ...])")
    for message in dead:
        a = message.attributes
        attempts = a.get(f"{_PUBSUB_ADDED}SourceDeliveryCount", "?")
        print(
            f"  {message.message_id:<14} {a.get('provider', '?'):<8} {a.get('kind', '?'):<20}"
            f" conversation {a.get('conversationId', '-')}  failed {attempts} deliveries"
        )
    parked = replay.parked()
    print(f"Parked: {len(parked)} (redrive parked PARKED_ID ...: whole payloads only)")
    for p in parked:
        d = p.fields
        if "rawBody" not in d:  # an element parked on its own, before bodies were kept whole
            what = f"element {d.get('index')}"
        elif "setAside" in d:
            what = f"{d['setAside']} elements"
        else:  # a body kept truncated, or empty, can never be re-driven
            what = "whole payload" if redrive_refusal(d) is None else "not replayable"
        print(
            f"  {p.parked_id:<40} {p.database:<5} {d.get('category', ''):<17} {what:<14}"
            f" {d.get('reason', '')}"
        )
    print(f"Spooled, waiting for the drainer: {replay.spooled()} (redrive spool: drain now)")


if __name__ == "__main__":
    main(sys.argv[1:])
