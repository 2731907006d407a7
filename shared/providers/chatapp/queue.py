"""Chat App's queue part: pulls the SMQ queues of the configured MessageTypes into Pub/Sub.

Each run, every queue has a worker of its own (a slow queue never holds up another) that
long-polls BatchReceiveMessage until the run's stop time. What a receive gives is published
as the webhook publishes a Chat App batch (`queue_plan`), and deleted from the queue only
once Pub/Sub confirmed the publish that carries it; whatever is not deleted reappears after
its visibility timeout and is published again, and the recorder collapses the duplicate.

- Pollers: one per queue while it is idle (one waiting receive at a time); each full batch
  adds another, up to CHATAPP_SMQ_MAX_POLLERS, and an empty answer retires the extras.
  Each poller has a queue client of its own: a connection serves one thread at a time.
- Credentials: per queue, from QueryTokenForMnsQueue, cached, renewed before ExpireTime and
  again on a 403 from the queue.
- Pub/Sub failing: the publish that failed is not deleted, and no queue is received from
  until an empty probe publish is confirmed again (`PublishCircuitBreaker`), so an outage
  does not hand the same messages out over and over (their DequeueCount would rise toward
  parking).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from shared.adapters.publish_circuit_breaker import PublishCircuitBreaker
from shared.adapters.publisher import PublishFailed
from shared.core import polling, routing
from shared.core.config import Env, endpoint_problem
from shared.core.events import payload_key
from shared.core.polling import PullReport, PullTally
from shared.core.provider import PublishFunction
from shared.providers.chatapp import NAME, PARKED_ATTRIBUTE, SMQ_ENDPOINT, SMQ_TOKEN_ENDPOINT
from shared.providers.chatapp.queue_plan import (
    Outgoing,
    QueueMessage,
    plan,
    queue_pairs,
)
from shared.providers.chatapp.smq import (
    LONGEST_WAIT_SECONDS,
    MESSAGE_NOT_EXIST,
    RECEIVE_BATCH,
    AlibabaRefused,
    QueueClient,
    QueueToken,
    TokenClient,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_RECEIVES = 10
DEFAULT_MAX_POLLERS = 4
# Refusals of the AccessKey itself: the operator must fix the configuration.
_KEY_REFUSED = frozenset(
    {"SignatureDoesNotMatch", "InvalidAccessKeyId.NotFound", "InvalidAccessKeyId", "Forbidden.RAM"}
)
T = TypeVar("T")


@dataclass(frozen=True)
class QueueConfig:
    queues: tuple[tuple[str, str], ...]  # (MessageType, queue name)
    token_endpoint: str
    queue_endpoint: str
    access_key_id: str
    access_key_secret: str = field(repr=False)
    max_receives: int = DEFAULT_MAX_RECEIVES  # then a message is parked, not received again
    max_pollers: int = DEFAULT_MAX_POLLERS  # per queue

    @classmethod
    def from_env(cls, env: Env) -> QueueConfig:
        pairs, problems = queue_pairs(env.required("CHATAPP_SMQ_QUEUES"))
        endpoints = {
            "CHATAPP_SMQ_TOKEN_ENDPOINT": env.optional(
                "CHATAPP_SMQ_TOKEN_ENDPOINT", SMQ_TOKEN_ENDPOINT
            ),
            "CHATAPP_SMQ_ENDPOINT": env.optional("CHATAPP_SMQ_ENDPOINT", SMQ_ENDPOINT),
        }
        problems += filter(None, (endpoint_problem(n, url) for n, url in endpoints.items()))
        for problem in problems:
            env.problem(problem)
        return cls(
            queues=tuple(pairs),
            token_endpoint=endpoints["CHATAPP_SMQ_TOKEN_ENDPOINT"],
            queue_endpoint=endpoints["CHATAPP_SMQ_ENDPOINT"],
            access_key_id=env.required("ALIBABA_CLOUD_ACCESS_KEY_ID"),
            access_key_secret=env.required("ALIBABA_CLOUD_ACCESS_KEY_SECRET"),
            max_receives=int(env.number("CHATAPP_SMQ_MAX_RECEIVES", DEFAULT_MAX_RECEIVES, 2)),
            max_pollers=int(env.number("CHATAPP_SMQ_MAX_POLLERS", DEFAULT_MAX_POLLERS, 1)),
        )


def puller(env: Env, publish: PublishFunction) -> ChatAppPuller:
    """The queue mode is on when CHATAPP_SMQ_QUEUES is set."""
    return ChatAppPuller(QueueConfig.from_env(env), publish)


class ChatAppPuller:
    def __init__(self, config: QueueConfig, publish: PublishFunction) -> None:
        first_kind = config.queues[0][0] if config.queues else ""
        empty_batch = routing.attributes(provider=NAME, kind=first_kind, events="0")
        breaker = PublishCircuitBreaker(lambda: publish(routing.EVENTS, b"[]", empty_batch))
        self._workers = [
            QueueWorker(kind, queue, config, publish, breaker) for kind, queue in config.queues
        ]

    def run(self, stop_polling_at: float) -> PullReport:
        tally = PullTally()
        threads = [
            threading.Thread(target=worker.run, args=(stop_polling_at, tally), name=worker.queue)
            for worker in self._workers
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return tally.report()


class TokenCache:
    """One queue's temporary credentials: renewed before they expire, or once refused."""

    def __init__(self, client: TokenClient, message_type: str, queue: str) -> None:
        self._client = client
        self._message_type = message_type
        self._queue = queue
        self._lock = threading.Lock()
        self._token: QueueToken | None = None

    def current(self) -> QueueToken:
        with self._lock:
            token = self._token
            if token is None or time.time() >= polling.renew_at(token.issued_at, token.expires_at):
                token = self._token = self._client.query(self._message_type, self._queue)
                renewed = {"queue": self._queue, "expiresAt": token.expires_at}
                log.info("queue token renewed", extra=renewed)
            return token

    def refused(self, token: QueueToken) -> None:
        """The queue refused this token: the next `current()` asks for a new one, unless
        another poller already did."""
        with self._lock:
            if self._token is token:
                self._token = None


class QueueWorker:
    """One queue: its pollers, their clients, its credentials."""

    def __init__(
        self,
        kind: str,
        queue: str,
        config: QueueConfig,
        publish: PublishFunction,
        breaker: PublishCircuitBreaker,
    ) -> None:
        self.kind = kind
        self.queue = queue
        self._config = config
        self._publish = publish
        self._breaker = breaker
        self._tokens = TokenCache(
            TokenClient(config.token_endpoint, config.access_key_id, config.access_key_secret),
            kind,
            queue,
        )
        self._lock = threading.Lock()
        self._idle_clients: list[QueueClient] = []  # kept between runs: their connections too
        self._extra_pollers: list[threading.Thread] = []
        self._active = 0

    def run(self, stop_at: float, tally: PullTally) -> None:
        """Polls until stop_at; returns when every poller of this queue has finished."""
        self._poll(stop_at, tally, first=True)
        while True:
            with self._lock:
                if not self._extra_pollers:
                    return
                poller = self._extra_pollers.pop()
            poller.join()

    def _poll(self, stop_at: float, tally: PullTally, first: bool) -> None:
        client = self._take_client()
        failures = 0
        try:
            while True:
                if not self._breaker.wait_closed(stop_at):
                    tally.problem("Pub/Sub confirms no publish: nothing was received meanwhile")
                    return
                wait = polling.poll_wait(stop_at - time.time(), LONGEST_WAIT_SECONDS)
                if wait is None:
                    return
                asked = time.time()
                receive = functools.partial(client.receive, count=RECEIVE_BATCH, wait=wait)
                try:
                    messages = self._authorised(receive)
                except AlibabaRefused as refusal:
                    failures += 1
                    self._trouble(tally, "receive", refusal)
                    _pause(polling.backoff(failures), stop_at)
                    continue
                failures = 0
                tally.add(received=len(messages))
                change = self._pollers_change(len(messages))
                if change < 0 and not first:
                    return
                if change > 0:
                    self._start_poller(stop_at, tally)
                if not messages:
                    _pause(polling.rest_after_empty(asked, wait, time.time()), stop_at)
                    continue
                try:
                    self._deliver(client, messages, tally)
                except Exception as error:  # a bug must not end the queue's watch unseen
                    # What was received and not deleted reappears after its visibility timeout.
                    failures += 1
                    tally.problem(f"{self.queue}: {type(error).__name__} handling a receive")
                    log.exception("queue messages not handled", extra={"queue": self.queue})
                    _pause(polling.backoff(failures), stop_at)
        finally:
            with self._lock:
                self._active -= 1
                self._idle_clients.append(client)

    def _take_client(self) -> QueueClient:
        with self._lock:
            self._active += 1
            if self._idle_clients:
                return self._idle_clients.pop()
        return QueueClient(self._config.queue_endpoint, self.queue)

    def _pollers_change(self, received: int) -> int:
        with self._lock:
            return polling.pollers_change(
                received, RECEIVE_BATCH, self._active, self._config.max_pollers
            )

    def _start_poller(self, stop_at: float, tally: PullTally) -> None:
        poller = threading.Thread(
            target=self._poll, args=(stop_at, tally, False), name=self.queue, daemon=True
        )
        with self._lock:
            self._extra_pollers.append(poller)
        poller.start()

    def _authorised(self, call: Callable[[QueueToken], T]) -> T:
        """call with the queue's credentials, renewed and tried once more if refused."""
        token = self._tokens.current()
        try:
            return call(token)
        except AlibabaRefused as refusal:
            if not refusal.denied:
                raise
            self._tokens.refused(token)
        return call(self._tokens.current())

    def _deliver(self, client: QueueClient, messages: list[QueueMessage], tally: PullTally) -> None:
        """Publishes what one receive gave, then deletes what Pub/Sub confirmed."""
        confirmed: list[str] = []
        for outgoing in plan(self.kind, messages, self._config.max_receives):
            try:
                message_id = self._publish(routing.EVENTS, outgoing.body, outgoing.attributes)
            except PublishFailed as failure:
                self._breaker.open()
                tally.problem(f"Pub/Sub: {failure}")
                log.error(
                    "queue messages not published: they stay in the queue",
                    extra={"queue": self.queue, "queueMessages": len(messages) - len(confirmed)},
                )
                break
            confirmed += outgoing.handles
            self._published(outgoing, message_id, tally)
        if confirmed:
            self._delete(client, confirmed, tally)

    def _published(self, outgoing: Outgoing, message_id: str, tally: PullTally) -> None:
        parked = outgoing.attributes.get(PARKED_ATTRIBUTE)
        carried = len(outgoing.messages)
        tally.add(published=carried, publishes=1, parked=carried if parked else 0)
        log.log(
            logging.WARNING if parked else logging.INFO,
            "queue messages published",
            extra={
                "queue": self.queue,
                "kind": self.kind,
                "queueMessages": carried,
                "queueMessageIds": [message.message_id for message in outgoing.messages],
                "events": outgoing.attributes.get("events"),
                "pubsubMessageId": message_id,
                "payloadKey": payload_key(outgoing.body),
                **({"parkedBecause": parked} if parked else {}),
            },
        )

    def _delete(self, client: QueueClient, handles: list[str], tally: PullTally) -> None:
        """Deletes confirmed messages; one that stays reappears, and its duplicate collapses."""
        failed: dict[str, str] = {}
        for _ in range(2):  # a service error or no answer is tried once more
            try:
                failed = self._authorised(lambda token: client.delete(token, handles))
                break
            except AlibabaRefused as refusal:
                failed = dict.fromkeys(handles, refusal.code)
                if 0 < refusal.status < 500:
                    break
        # Already gone (a duplicate handle, or deleted by an earlier attempt) is deleted.
        kept = Counter(code for code in failed.values() if code != MESSAGE_NOT_EXIST)
        tally.add(deleted=len(handles) - sum(kept.values()), undeleted=sum(kept.values()))
        if kept:
            tally.problem(f"SMQ kept {sum(kept.values())} published messages: {dict(kept)}")
            log.warning(
                "queue messages published but not deleted: they will be published again",
                extra={"queue": self.queue, "codes": dict(kept)},
            )

    def _trouble(self, tally: PullTally, what: str, refusal: AlibabaRefused) -> None:
        hint = (
            "; check ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET, and that "
            "the key may call dybaseapi:QueryTokenForMnsQueue"
            if refusal.service == "Dybaseapi" and refusal.code in _KEY_REFUSED
            else ""
        )
        tally.problem(f"{self.queue}: {what}: {refusal}{hint}")
        log.warning(
            "queue %s failed: %s",
            what,
            refusal,
            extra={"queue": self.queue, "status": refusal.status, "code": refusal.code},
        )


def _pause(seconds: float, until: float) -> None:
    """Sleeps, but never past `until` (epoch seconds)."""
    time.sleep(max(0.0, min(seconds, until - time.time())))
