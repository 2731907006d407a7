"""`make changes`: follows the change stream of a running `make local`, one line per event.

A pull subscription of its own on the changes topic (docs/change-stream.md), deleted when it
stops (Ctrl-C), so a newcomer sees the pipeline react to `make demo` in another terminal.
Only kinds, states and ids are shown: never a message's text, nor a receipt's details.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime
from typing import Any

from google.cloud.pubsub_v1 import SubscriberClient
from google.cloud.pubsub_v1.subscriber.message import Message

from shared.core import changes
from tools.local.demo import running_stack
from tools.local.stop_signals import stopping_on_signals

TYPE_WIDTH = len("agent_read.settled")
PROVIDER_WIDTH = len("whatsapp")
SUBJECT_WIDTH = 32


def line(event: Mapping[str, Any], today: date) -> str:
    """`time  type  provider  subject  essence` in columns two spaces apart; the time's date
    only when it is not `today`."""
    time = datetime.fromisoformat(str(event["time"]).replace("Z", "+00:00")).astimezone(UTC)
    clock = f"{time:%H:%M:%S}" if time.date() == today else f"{time:%Y-%m-%d %H:%M:%S}"
    kind = str(event["type"]).removeprefix(f"{changes.PREFIX}.").rsplit(".v", 1)[0]
    data: Mapping[str, Any] = event["data"]
    return (
        f"{clock}  {kind:<{TYPE_WIDTH}}  {data['provider']:<{PROVIDER_WIDTH}}  "
        f"{_short(str(event['subject'])):<{SUBJECT_WIDTH}}  {essence(str(event['type']), data)}"
    ).rstrip()


def essence(event_type: str, data: Mapping[str, Any]) -> str:
    """What changed, in a few words: states, kinds and codes, never text."""
    if event_type == changes.MESSAGE_STATUS:
        error = (data.get("message") or {}).get("errorCode")
        failed = f", error {error}" if error is not None else ""
        return f"{data.get('status')} (rank {data.get('statusRank')}{failed})"
    if event_type == changes.MESSAGE_RECEIVED:
        kind, message_type = data.get("kind"), (data.get("content") or {}).get("messageType")
        return " ".join(str(part) for part in dict.fromkeys((kind, message_type)) if part)
    if event_type == changes.AGENT_READ_SETTLED:
        covered = f" covered by {_short(str(data['coveredBy']))}" if data.get("coveredBy") else ""
        reason = f": {data['reason']}" if data.get("reason") else ""
        return f"{data.get('state')}{reason}{covered}"
    if event_type == changes.EVENT_PARKED:
        return f"{data.get('category')}: {data.get('reason')}"
    if event_type == changes.TEMPLATE_REVIEWED:
        return str(data.get("status"))
    return ""


def _short(identifier: str) -> str:
    return (
        identifier if len(identifier) <= SUBJECT_WIDTH else identifier[: SUBJECT_WIDTH - 3] + "..."
    )


@contextlib.contextmanager
def subscription(subscriber: SubscriberClient, project: str, topic: str) -> Iterator[str]:
    """A pull subscription of this follower's own on the topic, deleted after."""
    path: str = subscriber.subscription_path(project, f"follow-changes-{uuid.uuid4().hex[:8]}")
    subscriber.create_subscription(name=path, topic=subscriber.topic_path(project, topic))
    try:
        yield path
    finally:
        subscriber.delete_subscription(subscription=path)


def follow(project: str, topic: str, show: Callable[[str], None]) -> None:
    """Shows each event of the topic as it arrives, until interrupted; an event seen before
    (the stream is at least once: a redelivery publishes its change again) says so."""
    printing = threading.Lock()  # the client calls back on several threads
    seen: set[str] = set()

    def received(message: Message) -> None:
        try:
            event = json.loads(message.data)
            shown, identity = line(event, datetime.now(UTC).date()), str(event["id"])
        except (ValueError, KeyError, TypeError):
            shown = f"(not an event of the stream: {len(message.data)} bytes)"
            identity = message.message_id
        with printing:
            again = identity in seen
            seen.add(identity)
            show(shown + ("  (again: the same id)" if again else ""))
        message.ack()

    with SubscriberClient() as subscriber, subscription(subscriber, project, topic) as path:
        show(f"following {topic} through {path} (times in UTC); Ctrl-C stops")
        streaming = subscriber.subscribe(path, received)
        try:
            streaming.result()
        finally:
            streaming.cancel()


def main() -> None:
    stack = running_stack()
    if stack is None:
        sys.exit("no `make local` running: start one (`make local`), then `make changes` again")
    os.environ["PUBSUB_EMULATOR_HOST"] = stack.pubsub_host  # clients read it only there
    with stopping_on_signals(lambda: None):  # Ctrl-C: the subscription is deleted first
        follow(stack.project, stack.changes_topic, lambda text: print(text, flush=True))


if __name__ == "__main__":
    main()
