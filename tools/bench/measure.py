"""The measurements, each beside the baseline it is judged against, taken in the same run."""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import statistics
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from google.api_core.exceptions import AlreadyExists
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.pubsub_v1 import PublisherClient

from shared.core import records
from shared.core.events import payload_key
from shared.core.polling import SCHEDULE_TIME_HEADER, Schedule
from shared.core.times import utc_now
from shared.providers.bm import webhook as bm_webhook
from shared.providers.bm.normalise import normalise_one
from tools.bench import load as loadgen
from tools.bench import prices
from tools.bench.latency import FULL_LATENCY, TINY_LATENCY, LatencySettings
from tools.local.procs import ManagedProcess, free_port, wait_until
from tools.local.stack import Delivery, LocalStack, pubsub_push
from tools.payloads import bm as bm_payloads
from tools.payloads import chatapp as ca
from tools.payloads import rbm as rbm_payloads
from tools.payloads import whatsapp as wa_payloads
from tools.topology import (
    AGENT_READ_RECEIPTS,
    FUNCTIONS,
    PULL_QUEUES,
    RECORD_EVENTS,
    WEBHOOK,
    Function,
)

HERE = Path(__file__).resolve().parent
# Topics without subscriptions: the webhook under load publishes into them, so no subscriber
# competes with it for the machine's two cores.
BENCH_TOPICS = {"EVENTS_TOPIC": "bench-events", "READABLE_TOPIC": "bench-readable"}
EMPTY = Function("bench-empty", "empty", "http", WEBHOOK.settings)
NAIVE = Function("bench-naive", "naive_webhook", "http", WEBHOOK.settings)
UNPUBLISHED = Function("bench-unpublished", "unpublished_webhook", "http", WEBHOOK.settings)
SOURCES = {f.target: HERE / f"{f.target}.py" for f in (EMPTY, NAIVE, UNPUBLISHED)}
DRAIN_RECEIPTS_PER_PAYLOAD = 10
SETTLE_TIMEOUT = 300.0


@dataclass(frozen=True)
class Settings:
    load_seconds: float = 3.0  # per server and round
    rounds: int = 4  # servers take turns, so a noisy moment hits each of them
    cold_starts: int = 5  # the median is reported
    thread_counts: tuple[int, ...] = (10, 20, 40, 80)  # THREADS (= concurrency) tried
    payload_sizes: tuple[int, ...] = (1, 3, 10)  # receipts per payload
    drain_receipts: int = 10_000
    queue_messages: int = 10_000  # Chat App status reports drained from an SMQ queue
    latency: LatencySettings = FULL_LATENCY


FULL = Settings()
TINY = Settings(
    load_seconds=0.3,
    rounds=1,
    cold_starts=1,
    thread_counts=(),
    drain_receipts=100,
    queue_messages=100,
    latency=TINY_LATENCY,
)


def create_bench_topics(stack: LocalStack) -> None:
    publisher = PublisherClient()
    for topic in BENCH_TOPICS.values():
        with contextlib.suppress(AlreadyExists):  # from an earlier run
            publisher.create_topic(name=publisher.topic_path(stack.settings.project, topic))
    publisher.transport.close()


@contextlib.contextmanager
def serving(
    stack: LocalStack, function: Function, overrides: Mapping[str, str]
) -> Iterator[tuple[str, ManagedProcess]]:
    """One more server of `function` on a free port, stopped (by its process group) after."""
    port = free_port()
    process = stack.function_process(function, port, overrides, SOURCES.get(function.target))
    url = f"http://127.0.0.1:{port}"
    try:
        process.start(f"{url}/")
        yield url, process
    finally:
        process.stop()


def signed_requests(url: str, key: str, count: int, prefix: str) -> list[loadgen.Request]:
    """Distinct signed Business Messages receipts, one receipt each (the common push)."""
    bodies = [
        bm_payloads.encode(bm_payloads.receipts(f"{prefix}-{i}", (f"m{i}", "DELIVERED")))
        for i in range(count)
    ]
    return [loadgen.Request(url, body, bm_payloads.signed_headers(body, key)) for body in bodies]


def whatsapp_requests(url: str, secret: str, count: int, prefix: str) -> list[loadgen.Request]:
    """Distinct signed WhatsApp POSTs, one status each, to the webhook at `url`."""
    bodies = [
        wa_payloads.encode(
            wa_payloads.body(
                wa_payloads.entry(
                    wa_payloads.change(statuses=[wa_payloads.status(f"{prefix}-{i}", "delivered")])
                )
            )
        )
        for i in range(count)
    ]
    route = f"{url}/whatsapp"
    return [loadgen.Request(route, raw, wa_payloads.signed_headers(raw, secret)) for raw in bodies]


# --- 1. throughput and latency per instance ------------------------------------------------


@dataclass(frozen=True)
class Throughput:
    server: str
    threads: int
    load: loadgen.Load
    alone: loadgen.Load | None  # one request at a time: the acknowledgement a lone push sees
    cpu_seconds: float  # used by the server (gunicorn and its worker) under load
    pubsub_cpu_seconds: float  # used meanwhile by the Pub/Sub emulator, on the same cores

    @property
    def cpu_ms(self) -> float:
        """The server's CPU time per successful request, in milliseconds."""
        return self._per_request_ms(self.cpu_seconds)

    @property
    def pubsub_cpu_ms(self) -> float:
        return self._per_request_ms(self.pubsub_cpu_seconds)

    def _per_request_ms(self, cpu_seconds: float) -> float:
        return cpu_seconds * 1000 / len(self.load.ok) if self.load.ok else float("nan")


def throughput(stack: LocalStack, settings: Settings) -> list[Throughput]:
    """The webhook, the empty function (ceiling), the naive webhook and the webhook without
    Pub/Sub, in turns, at the webhook's own concurrency; then the webhook at each THREADS of
    the sweep."""
    threads = int(WEBHOOK.settings["concurrency"])
    secret = stack.settings.secret("WHATSAPP_APP_SECRET")
    bm_pushes = functools.partial(signed_requests, key=stack.signing_key)
    whatsapp_pushes = functools.partial(whatsapp_requests, secret=secret)
    servers = [
        ("empty function (ceiling)", EMPTY, threads, bm_pushes),
        ("naive webhook (each publish alone)", NAIVE, threads, bm_pushes),
        ("webhook", WEBHOOK, threads, bm_pushes),
        ("webhook, publish confirmed at once (no Pub/Sub)", UNPUBLISHED, threads, bm_pushes),
        ("webhook, WhatsApp POSTs (HMAC-SHA256)", WEBHOOK, threads, whatsapp_pushes),
    ]
    compared = len(servers)
    servers += [(f"webhook, THREADS={n}", WEBHOOK, n, bm_pushes) for n in settings.thread_counts]
    with contextlib.ExitStack() as running:
        started = [
            running.enter_context(serving(stack, function, {**BENCH_TOPICS, "THREADS": str(n)}))
            for _, function, n, _ in servers
        ]
        urls = [url for url, _ in started]
        rounds: list[list[loadgen.Load]] = [[] for _ in servers]
        cpu = [[0.0, 0.0] for _ in servers]  # seconds: the server's, the Pub/Sub emulator's
        for _ in range(settings.rounds):
            for index, ((_, _, n, pushes), (url, process)) in enumerate(
                zip(servers, started, strict=True)
            ):
                batch = pushes(url, count=500, prefix="bench")
                loadgen.run(itertools.cycle(batch), n, min(0.5, settings.load_seconds))  # warm-up
                before = (process.cpu_seconds(), stack.pubsub.cpu_seconds())
                rounds[index].append(loadgen.run(itertools.cycle(batch), n, settings.load_seconds))
                after = (process.cpu_seconds(), stack.pubsub.cpu_seconds())
                for used, (start, end) in enumerate(zip(before, after, strict=True)):
                    cpu[index][used] += end - start
        alone = [
            loadgen.run(pushes(url, count=100, prefix="alone"), 1, min(2.0, settings.load_seconds))
            for url, (_, _, _, pushes) in zip(urls[:compared], servers, strict=False)
        ]
    return [
        Throughput(
            name, n, loadgen.Load.combined(loads), alone[i] if i < compared else None, *cpu[i]
        )
        for i, ((name, _, n, _), loads) in enumerate(zip(servers, rounds, strict=True))
    ]


# --- 2. cold start -------------------------------------------------------------------------


@dataclass(frozen=True)
class ColdStart:
    function: str
    seconds: float  # median, process start to first successful response
    cpu_seconds: float  # median, the CPU time its processes took meanwhile


def cold_starts(stack: LocalStack, settings: Settings) -> list[ColdStart]:
    first_requests: dict[str, Callable[[str], requests.Response]] = {
        WEBHOOK.target: lambda url: _send(signed_requests(url, stack.signing_key, 1, _run_id())[0]),
        RECORD_EVENTS.target: lambda url: _push(url, _receipt_body(_run_id())),
        AGENT_READ_RECEIPTS.target: lambda url: _push(url, _user_message_body(_run_id())),
        PULL_QUEUES.target: lambda url: _brief_pull(url, stack.settings.pull_period_seconds),
    }
    functions = [EMPTY, *FUNCTIONS]
    starts: dict[str, list[tuple[float, float]]] = {f.target: [] for f in functions}
    for _ in range(settings.cold_starts):  # in turns, so a noisy moment hits each of them
        for function in functions:
            first = first_requests.get(function.target, _plain_post)
            starts[function.target].append(_cold_start(stack, function, first))
    return [
        ColdStart(
            target,
            statistics.median(wall for wall, _ in samples),
            statistics.median(cpu for _, cpu in samples),
        )
        for target, samples in starts.items()
    ]


def _cold_start(
    stack: LocalStack, function: Function, first: Callable[[str], requests.Response]
) -> tuple[float, float]:
    """Seconds from process start to the first successful response, and the CPU seconds its
    processes took by then (which the machine's other work does not stretch)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = stack.function_process(function, port, BENCH_TOPICS, SOURCES.get(function.target))
    started = time.perf_counter()
    try:
        process.start(f"{url}/", interval=0.005)  # listening: the module is imported
        wait_until(lambda: first(url).status_code == 200, 60, f"{function.target} to answer")
        return time.perf_counter() - started, process.cpu_seconds()
    finally:
        process.stop()


def _brief_pull(url: str, period: float) -> requests.Response:
    """A run whose schedule time leaves it no time to wait: a token, one look at each queue."""
    schedule = Schedule(period)
    late = time.time() - schedule.period + schedule.handover + 0.05
    scheduled = datetime.fromtimestamp(late, UTC).isoformat().replace("+00:00", "Z")
    return requests.post(url, headers={SCHEDULE_TIME_HEADER: scheduled}, timeout=60)


def _plain_post(url: str) -> requests.Response:  # the empty function and the drainer
    return requests.post(url, timeout=60)


def _send(request: loadgen.Request) -> requests.Response:
    return requests.post(request.url, data=request.body, headers=request.headers, timeout=60)


def _push(url: str, body: bytes) -> requests.Response:
    attributes = bm_webhook.describe(json.loads(body)).attributes
    return requests.post(url, json=pubsub_push(body, dict(attributes)), timeout=60)


def _receipt_body(conversation: str) -> bytes:
    return bm_payloads.encode(bm_payloads.receipts(conversation, ("m1", "DELIVERED")))


def _user_message_body(conversation: str) -> bytes:
    return bm_payloads.encode(bm_payloads.user_text(conversation, "u1", "hello"))


def _run_id() -> str:
    return f"bench-{uuid.uuid4().hex[:10]}"


# --- 3. cost per receipt, counted ----------------------------------------------------------


@dataclass(frozen=True)
class Cost:
    payload: str
    receipts: int
    reads: int  # Firestore documents read
    writes: int  # Firestore document writes
    commits: int
    publishes: int
    deliveries: int  # Pub/Sub pushes, each a subscriber invocation
    invocations: int  # webhook requests (each logs its publish) + deliveries
    pubsub_bytes: int  # billable: publish and each delivery, at least 1,000 bytes each


@dataclass(frozen=True)
class CostPayload:
    name: str
    receipts: int
    body: bytes
    url: str
    headers: dict[str, str]

    def send(self, stack: LocalStack) -> Delivery:
        """Posts it to the webhook: the Pub/Sub message it became, and its payload's key."""
        answer = requests.post(self.url, data=self.body, headers=self.headers, timeout=60)
        assert answer.status_code == 200, answer.text
        rbm = self.url == stack.rbm_url
        sent_on = (
            rbm_payloads.CONTRACT_REQUESTS.published(self.body) if rbm else self.body
        )  # canonical form
        return answer.json()["messageId"], payload_key(sent_on)


def costs(stack: LocalStack, settings: Settings) -> list[Cost]:
    """One payload of each size per provider through the whole stack, counted from the logs."""
    bodies = cost_payloads(stack, _run_id(), settings.payload_sizes)
    marks = {name: len(stack.log_entries(name)) for name in _LOGGED}
    deliveries = [payload.send(stack) for payload in bodies]
    recorded = _recorded(stack, deliveries, marks[RECORD_EVENTS.target])
    published = _new_entries(stack, WEBHOOK.target, marks, "event published")
    read_senders = _new_entries(stack, AGENT_READ_RECEIPTS.target, marks, None)
    result = []
    for payload, (message_id, key) in zip(bodies, deliveries, strict=True):
        publishes = [e for e in published if e.get("pubsubMessageId") == message_id]
        pushes = [recorded[(message_id, key)]]
        pushes += [e for e in read_senders if e.get("pubsubMessageId") == message_id]
        size = len(payload.body)
        size += sum(len(k) + len(v) for k, v in _attributes(publishes[0]).items())
        billable = max(prices.PUBSUB_MINIMUM_BYTES, size + 20 + len(message_id))
        record = recorded[(message_id, key)]
        result.append(
            Cost(
                payload=payload.name,
                receipts=payload.receipts,
                reads=int(record["reads"]),
                writes=int(record["writes"]),
                commits=int(record["commits"]),
                publishes=len(publishes),
                deliveries=len(pushes),
                invocations=len(publishes) + len(pushes),
                pubsub_bytes=billable * (len(publishes) + len(pushes)),
            )
        )
    return result


def cost_payloads(stack: LocalStack, run: str, sizes: tuple[int, ...]) -> list[CostPayload]:
    """One signed payload of each size per provider (RBM: one receipt only), each in a
    conversation of its own."""
    bodies: list[CostPayload] = []
    signed = functools.partial(bm_payloads.signed_headers, key=stack.signing_key)
    whatsapp_signed = functools.partial(
        wa_payloads.signed_headers, secret=stack.settings.secret("WHATSAPP_APP_SECRET")
    )
    for n in sizes:  # each payload in a conversation of its own
        receipts = [(f"a{i}", "DELIVERED") for i in range(n)]
        body = bm_payloads.encode(bm_payloads.receipts(f"{run}-{n}", *receipts))
        bm_name = payload_name("Business Messages", n)
        bodies.append(CostPayload(bm_name, n, body, stack.webhook_url, signed(body)))
        user = "86139" + str(uuid.uuid4().int)[:8]
        batch = ca.encode([ca.status(f"{run}-{n}-{i}", "Delivered", user) for i in range(n)])
        url = stack.chatapp_url("status")  # the URL's token authenticates it
        bodies.append(CostPayload(payload_name("Chat App", n), n, batch, url, {}))
        user = "1666" + str(uuid.uuid4().int)[:7]
        statuses = [wa_payloads.status(f"{run}-{n}-{i}", "delivered", user) for i in range(n)]
        raw = wa_payloads.encode(
            wa_payloads.body(wa_payloads.entry(wa_payloads.change(statuses=statuses)))
        )
        wa_name = payload_name("WhatsApp", n)
        bodies.append(CostPayload(wa_name, n, raw, stack.whatsapp_url, whatsapp_signed(raw)))
    # RBM pushes one event per request: its receipts are one-receipt payloads only.
    phone = "+1666" + str(uuid.uuid4().int)[:7]
    event = rbm_payloads.push(rbm_payloads.user_event("DELIVERED", f"{run}-a0", phone=phone))
    rbm_headers = rbm_payloads.signed_headers(event, stack.rbm_client_token)
    rbm_name = payload_name("RCS Business Messaging", 1)
    bodies.append(CostPayload(rbm_name, 1, event, stack.rbm_url, rbm_headers))
    return bodies


def payload_name(provider: str, receipts: int) -> str:
    return f"{provider}, {receipts} receipt{'' if receipts == 1 else 's'}"


_LOGGED = (WEBHOOK.target, RECORD_EVENTS.target, AGENT_READ_RECEIPTS.target)
# Fields the webhook's log line carries besides the message's attributes.
_LOG_FIELDS = frozenset({"severity", "message", "logger", "pubsubMessageId"})


def _attributes(entry: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in entry.items() if k not in _LOG_FIELDS}


def _recorded(
    stack: LocalStack, deliveries: list[Delivery], since: int
) -> dict[Delivery, dict[str, Any]]:
    return stack.logged_for(
        RECORD_EVENTS.target, "event recorded", deliveries, SETTLE_TIMEOUT, since
    )


def _new_entries(
    stack: LocalStack, name: str, marks: Mapping[str, int], message: str | None
) -> list[dict[str, Any]]:
    entries = stack.log_entries(name)[marks[name] :]
    return [e for e in entries if message is None or e.get("message") == message]


# --- 4. end-to-end drain -------------------------------------------------------------------


@dataclass(frozen=True)
class Drain:
    path: str
    receipts: int
    seconds: float


def drain(stack: LocalStack, settings: Settings) -> list[Drain]:
    """`drain_receipts` receipts through webhook, Pub/Sub and recorder until all are persisted,
    against a plain loop committing the same documents straight to the emulator."""
    payloads = max(1, settings.drain_receipts // DRAIN_RECEIPTS_PER_PAYLOAD)
    receipts = payloads * DRAIN_RECEIPTS_PER_PAYLOAD
    run = _run_id()
    db = stack.firestore_client()

    plain_bodies = [_drain_body(f"{run}-plain-{i}") for i in range(payloads)]
    now = utc_now()
    plans = [records.plan(normalise_one(body), {}, now) for body in plain_bodies]
    started = time.perf_counter()
    for plan in plans:
        batch = db.batch()
        for write in plan:
            batch.set(db.document(write.path), dict(write.data))
        batch.commit()
    plain_seconds = time.perf_counter() - started

    batch_requests = [
        loadgen.Request(
            stack.webhook_url, body, bm_payloads.signed_headers(body, stack.signing_key)
        )
        for body in (_drain_body(f"{run}-{i}") for i in range(payloads))
    ]
    mark = len(stack.log_entries(RECORD_EVENTS.target))
    started = time.perf_counter()
    sent = loadgen.run(batch_requests, int(WEBHOOK.settings["concurrency"]))
    assert len(sent.ok) == payloads, f"{payloads - len(sent.ok)} pushes were refused"
    _recorded(
        stack,
        [(json.loads(a.body)["messageId"], payload_key(a.request.body)) for a in sent.ok],
        mark,
    )
    pipeline_seconds = time.perf_counter() - started
    persisted = receipts_stored(db, f"{run}-", f"{run}-plain")
    assert persisted == receipts, f"persisted {persisted} of {receipts} receipts"
    return [
        Drain(
            "plain loop: one commit per payload, straight to the emulator", receipts, plain_seconds
        ),
        Drain("pipeline: webhook → Pub/Sub → recorder", receipts, pipeline_seconds),
    ]


def _drain_body(conversation: str) -> bytes:
    entries = [(f"m{i}", "DELIVERED") for i in range(DRAIN_RECEIPTS_PER_PAYLOAD)]
    return bm_payloads.encode(bm_payloads.receipts(conversation, *entries))


def receipts_stored(db: Any, low: str, high: str) -> int:
    """Receipts recorded in the conversations whose ids lie in [low, high): on their messages."""
    query = (
        db.collection_group(records.MESSAGES)
        .where(filter=FieldFilter("conversationId", ">=", low))
        .where(filter=FieldFilter("conversationId", "<", high))
        .select([records.RECEIPTS])
    )
    messages = {snapshot.reference.path: snapshot.to_dict() or {} for snapshot in query.stream()}
    return len(records.receipts_of(messages))
