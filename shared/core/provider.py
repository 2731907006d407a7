"""The one interface every messaging provider satisfies (pure types, no I/O).

A provider is one `Provider` value, registered in `shared.providers`. It brings everything
that differs between platforms; everything else (the webhook's bounds and hand-off, the
recorder, the READ receipt's claim, metrics, report, replay) is the pipeline's own and
works on the events a provider normalises into.

A provider's parts live in modules of its own package. Its `Provider` holds, for each part,
a function that imports that module and returns it typed as the part's Protocol below, so
mypy checks each module against its interface while the import waits until the part is
first used: the webhook imports only the webhook part of the providers that are switched
on, never a normaliser or an API client.

- webhook part: `receiver(env) -> Receiver` reads its configuration (reporting problems to
  the Env) and returns its receive step: authenticate, bound, decide a Reply or a Publish.
- normaliser: `normalise(raw, attributes, received) -> list[Payload]`.
- agent READ receipt, for a provider that has one: `read_targets(payloads)`, the user
  messages to mark READ, and `api_settings(env)`, whose `connect()` builds the API adapter.
- queue part, for a provider whose events can also be pulled from queues: `puller(env,
  publish)` reads its configuration (reporting problems to the Env) and returns what the
  scheduled puller runs: each run receives until its stop time, publishes what it received
  as the webhook would, and deletes from the queue only what Pub/Sub confirmed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from shared.core.config import Env
from shared.core.events import Payload, StatusScale
from shared.core.ingress import Incoming, Publish, Reply
from shared.core.polling import PullReport
from shared.core.read_receipts import ReadTarget, ReceiptApi

# A webhook body's default bound: a provider whose platform sends less declares its own.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024

# A provider's receive step, bound to its configuration.
Receiver = Callable[[Incoming], Reply | Publish]
# (topic key, body, attributes) -> the Pub/Sub message id once confirmed; raises otherwise.
PublishFunction = Callable[[str, bytes, Mapping[str, str]], str]


class ReceiptApiSettings(Protocol):
    """A READ receipt API's settings, read from the environment when the sender starts."""

    @property
    def longest_send(self) -> float:
        """Seconds one send may take, retries included: a READ claim's lease must outlast it."""
        ...

    def connect(self) -> ReceiptApi:
        """The adapter calling the API, with credentials."""
        ...


class WebhookPart(Protocol):
    def receiver(self, env: Env) -> Receiver: ...


class Normaliser(Protocol):
    def normalise(
        self, raw: bytes, attributes: Mapping[str, str], received: datetime
    ) -> list[Payload]: ...


class ReadReceiptPart(Protocol):
    def read_targets(self, payloads: Sequence[Payload]) -> list[ReadTarget]: ...

    def api_settings(self, env: Env) -> ReceiptApiSettings: ...


class QueuePuller(Protocol):
    def run(self, stop_polling_at: float) -> PullReport:
        """Receives until stop_polling_at (epoch seconds), then finishes what it holds."""
        ...


class QueuePart(Protocol):
    def puller(self, env: Env, publish: PublishFunction) -> QueuePuller: ...


@dataclass(frozen=True)
class Provider:
    name: str  # the `provider` attribute of every message and field of every document
    title: str  # for people: messages, the README, the report
    route: str  # the webhook's first path segment ("" is the root)
    switch: tuple[str, ...]  # environment variables whose presence turns its webhook on
    topic_key: Callable[[str], str]  # the topic a kind of its events goes to
    scale: StatusScale  # the order of its receipts' statuses
    sent_status: str  # the status a business's own send record takes
    spools_by_default: bool  # its events go to the spool when Pub/Sub fails
    # Each part's loader: imports the part's module when called, typed as its Protocol.
    load_webhook: Callable[[], WebhookPart]
    load_normaliser: Callable[[], Normaliser]
    load_read_receipts: Callable[[], ReadReceiptPart] | None = None  # None: no agent READ
    load_queue: Callable[[], QueuePart] | None = None  # None: its events only come by webhook
    queue_switch: tuple[str, ...] = ()  # environment variables whose presence turns it on
    methods: frozenset[str] = frozenset({"POST"})  # what its route answers; others get 405
    # Larger bodies on its route get 413 unread; `{NAME}_MAX_BODY_BYTES` overrides it.
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    @property
    def max_body_bytes_variable(self) -> str:
        return f"{self.name.upper()}_MAX_BODY_BYTES"

    # Environment variables whose presence turns its agent READ on in the READ sender; none:
    # always on (an API called as the function's own service account needs no secret).
    read_switch: tuple[str, ...] = ()

    def reads_with(self, env: Env) -> bool:
        """Whether its agent READ is on in this environment."""
        return self.load_read_receipts is not None and (
            not self.read_switch or env.present(*self.read_switch)
        )

    def receiver(self, env: Env) -> Receiver:
        return self.load_webhook().receiver(env)

    @property
    def normaliser(self) -> Normaliser:
        return self.load_normaliser()

    @property
    def read_receipts(self) -> ReadReceiptPart | None:
        return None if self.load_read_receipts is None else self.load_read_receipts()

    @property
    def queue(self) -> QueuePart | None:
        return None if self.load_queue is None else self.load_queue()
