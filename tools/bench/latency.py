"""End-to-end latency through the local stack, one payload at a time and at a steady offered
load, beside the Pub/Sub emulator's own push latency (the floor).

Two paths of RCS Business Messaging, Google's live channel, each timed from the moment its
request leaves the bench:
- a receipt (a DELIVERED event) until it is readable in Firestore, as a reader in another
  process sees it (tools/bench/firestore_reader.py), never as a log line says;
- a user message until the agent's READ for it arrives at the RBM API stand-in.

The floor is the one hop every path takes: a publish to a topic of the emulator until its
push reaches a local endpoint that does nothing. Under load the bench offers a mix (one user
message in USER_MESSAGE_EVERY payloads, the others receipts) from an open loop at a fixed
rate (tools/bench/open_loop.py), and reads how much CPU each process took meanwhile.
Times are time.monotonic(), which on Linux is one clock for every process on the machine.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

import requests
from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

from shared.adapters.publisher import PubSubPublisher
from shared.core import records
from shared.core.metrics import Distribution
from shared.providers.rbm.normalise import conversation_id
from tools.bench import open_loop
from tools.bench.load import Request
from tools.local.procs import ManagedProcess, free_port
from tools.local.stack import LocalStack
from tools.payloads import rbm
from tools.standins.loopback import LoopbackServer
from tools.standins.rbm_api import AgentEventCall, RbmApiStandIn
from tools.topology import AGENT_READ_RECEIPTS, RECORD_EVENTS, ROOT, WEBHOOK

USER_MESSAGE_EVERY = 4
RECEIPT_FIELD = records.field_path(records.RECEIPTS, "DELIVERED")
LONE_TIMEOUT = 30.0  # for one sample to complete, one at a time
WATCH_LEAD = 1.0  # seconds between telling the reader what comes and sending the first
# When the probe finds the offered rate too much, the steady load offers this share of what
# the pipeline did complete per second, so that it measures latency, not a growing queue.
SUSTAINABLE_SHARE = 0.7
# Messages published at once to an endpoint that holds each HOLD_SECONDS: how many pushes
# the emulator keeps in flight to one subscription.
HELD_MESSAGES = 10
HOLD_SECONDS = 0.1
# The emulator pushes in cycles: an idle subscription's message waits up to ~100 ms for the
# next (measured, 0-100 ms). A lone sample sent right after the previous one arrived would
# wait out nearly a whole cycle each time (p50 100 ms), so each starts after a pause spread
# evenly over one cycle (steps of the golden ratio), as independent events would arrive.
PUSH_CYCLE_SECONDS = 0.1
_GOLDEN_STEP = 0.6180339887


@dataclass(frozen=True)
class LatencySettings:
    lone_samples: int = 20  # of each path, and of the floor, one at a time
    rate: float = 200.0  # payloads offered per second, if the pipeline keeps up with it
    probe_seconds: float = 3.0  # at `rate`: does it keep up?
    load_seconds: float = 30.0  # the steady load: at `rate`, or what the probe found it does
    floor_seconds: float = 10.0  # the floor, offered the steady load's rate
    settle_seconds: float = 60.0  # after the last send, for the last samples to complete


FULL_LATENCY = LatencySettings()
TINY_LATENCY = LatencySettings(
    lone_samples=3,
    rate=20.0,
    probe_seconds=0.5,
    load_seconds=1.0,
    floor_seconds=1.0,
    settle_seconds=60.0,
)


@dataclass(frozen=True)
class Samples:
    seconds: tuple[float, ...]  # of each sample that completed
    missing: int  # sent, but never completed in time

    @property
    def distribution(self) -> Distribution:
        return Distribution.of(self.seconds)


@dataclass(frozen=True)
class Paths:
    """The pipeline's latencies in one condition: one at a time, or at a rate."""

    acknowledged: Samples  # a request until the webhook's answer (every payload)
    receipt: Samples  # a receipt's request until it is readable in Firestore
    read: Samples  # a user message's request until the agent READ arrives at the API


@dataclass(frozen=True)
class Load:
    """One run of the open loop through the pipeline."""

    rate: float  # payloads per second it was to offer
    payloads: int
    paths: Paths
    sent_rate: float  # payloads per second it did send, first to last
    lateness: Distribution  # of each send after its due time
    in_flight: int  # payloads sent but not complete when the last was sent
    throughput: float  # payloads complete per second, from the first send to the last done
    receipts_per_second: float  # of those, receipts readable
    cpu: Mapping[str, float]  # cores each process used while sending (CPU-seconds a second)

    @property
    def kept_up(self) -> bool:
        """Less than a second of load was in flight when the last was sent (Little's law:
        in flight = rate x latency, so a latency under a second), and nothing was lost."""
        missing = self.paths.receipt.missing + self.paths.read.missing
        return self.in_flight < self.rate and not missing


@dataclass(frozen=True)
class Latency:
    settings: LatencySettings
    reader: Samples  # the reader's resolution: a write of the bench's own until it is seen
    push_concurrency: int  # the most pushes the emulator had in flight to one subscription
    lone_floor: Samples  # a publish until its push arrives at an endpoint that does nothing
    lone: Paths
    probe: Load  # at settings.rate, for settings.probe_seconds
    floor: Samples  # the floor at the steady load's rate
    steady: Load


def latencies(stack: LocalStack, settings: LatencySettings) -> Latency:
    standin = stack.rbm_standin
    assert standin is not None, "the READ's latency is read at the RBM API stand-in"
    run = f"bench-{uuid.uuid4().hex[:8]}"
    with _firestore_reader(stack) as reader, _serving(_PushEndpoint()) as endpoint:
        floor = _Floor(stack, endpoint, run)
        pipeline = _Pipeline(stack, reader, standin, run)
        resolution = _reader_resolution(stack, reader, run, settings.lone_samples)
        push_concurrency = floor.push_concurrency()
        lone_floor = floor.one_at_a_time(settings.lone_samples)
        lone = pipeline.one_at_a_time(settings.lone_samples)
        probe = pipeline.at_rate("probe", settings.rate, settings.probe_seconds, settings)
        rate = settings.rate if probe.kept_up else _sustainable(probe.throughput)
        floor_loaded = floor.at_rate(rate, settings.floor_seconds, settings.settle_seconds)
        steady = pipeline.at_rate("steady", rate, settings.load_seconds, settings)
    return Latency(
        settings, resolution, push_concurrency, lone_floor, lone, probe, floor_loaded, steady
    )


@contextlib.contextmanager
def _serving(endpoint: _PushEndpoint) -> Iterator[_PushEndpoint]:
    try:
        yield endpoint.start()
    finally:
        endpoint.stop()


def _pause(index: int) -> None:
    """The index-th pause before a lone sample (see PUSH_CYCLE_SECONDS)."""
    time.sleep(index * _GOLDEN_STEP % 1 * PUSH_CYCLE_SECONDS)


def _sustainable(throughput: float) -> float:
    """SUSTAINABLE_SHARE of the throughput, in whole payloads per second (at least 1)."""
    return float(max(1, int(throughput * SUSTAINABLE_SHARE)))


# --- the reader -----------------------------------------------------------------------------


class _ReaderClient:
    def __init__(self, url: str, process: ManagedProcess) -> None:
        self.url = url
        self.process = process
        self._session = requests.Session()

    def watch(self, documents: list[tuple[str, str, float]]) -> None:
        answer = self._session.post(f"{self.url}/watch", json={"documents": documents}, timeout=60)
        answer.raise_for_status()

    def seen(self, paths: list[str], timeout: float) -> dict[str, float]:
        answer = self._session.post(
            f"{self.url}/seen", json={"paths": paths, "timeout": timeout}, timeout=timeout + 30
        )
        answer.raise_for_status()
        return {path: float(at) for path, at in answer.json()["seen"].items()}


@contextlib.contextmanager
def _firestore_reader(stack: LocalStack) -> Iterator[_ReaderClient]:
    port = free_port()
    command = [sys.executable, "-m", "tools.bench.firestore_reader", f"--port={port}"]
    environment = {**os.environ, **stack.client_environment(), "PYTHONPATH": str(ROOT)}
    name = f"firestore-reader-{port}"
    process = ManagedProcess(name, command, lambda: environment, stack.log_dir)
    url = f"http://127.0.0.1:{port}"
    try:
        process.start(f"{url}/")
        yield _ReaderClient(url, process)
    finally:
        process.stop()


def _reader_resolution(stack: LocalStack, reader: _ReaderClient, run: str, count: int) -> Samples:
    """Writes of the bench's own, each from the call that writes it until the reader sees it:
    the reader's resolution, with one write."""
    db = stack.firestore_client()
    latencies: list[float] = []
    for index in range(count):
        path = f"benchReader/{run}-{index}"
        reader.watch([(path, "written", time.monotonic())])
        started = time.monotonic()
        db.document(path).set({"written": True})
        seen = reader.seen([path], LONE_TIMEOUT)
        latencies += [seen[path] - started] if path in seen else []
    return Samples(tuple(latencies), count - len(latencies))


# --- the floor: the emulator's own push -----------------------------------------------------


class _PushEndpoint(LoopbackServer):
    """A push endpoint that notes when each message arrived (by its `sample` attribute) and
    acknowledges it at once, or after `hold` seconds when the message says so; it counts how
    many pushes it held at most at the same time."""

    def __init__(self) -> None:
        self._arrived: dict[str, float] = {}
        self._answered: set[str] = set()
        self._held = 0
        self.most_held = 0
        self._changed = threading.Condition()
        super().__init__(_push_handler(self))

    @property
    def url(self) -> str:
        return f"{self.endpoint}/"

    def arrivals(self, samples: set[str], timeout: float) -> dict[str, float]:
        self._wait(lambda: samples <= self._arrived.keys(), timeout)
        with self._changed:
            return {sample: self._arrived[sample] for sample in samples if sample in self._arrived}

    def wait_answered(self, samples: set[str], timeout: float) -> None:
        self._wait(lambda: samples <= self._answered, timeout)

    def sample_of(self, message: Mapping[str, Any]) -> str:
        """Which sample a pushed message is: its `sample` attribute."""
        return str(message["attributes"]["sample"])

    def handle(self, sample: str, arrived: float, hold: float) -> None:
        with self._changed:
            self._arrived.setdefault(sample, arrived)
            self._held += 1
            self.most_held = max(self.most_held, self._held)
            self._changed.notify_all()
        try:
            time.sleep(hold)  # playing a subscriber that takes this long, when asked to
        finally:
            with self._changed:
                self._held -= 1
                self._answered.add(sample)
                self._changed.notify_all()

    def _wait(self, done: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not done():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._changed.wait(remaining)


def _push_handler(endpoint: _PushEndpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            arrived = time.monotonic()
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            message = body["message"]
            hold = float(message["attributes"].get("hold", 0))
            endpoint.handle(endpoint.sample_of(message), arrived, hold)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class _Floor:
    """A topic of its own with a push subscription to the endpoint, and the webhook's own
    publisher (shared/adapters/publisher.py) to publish to it."""

    def __init__(self, stack: LocalStack, endpoint: _PushEndpoint, run: str) -> None:
        self._endpoint = endpoint
        project = stack.settings.project
        publisher, subscriber = PublisherClient(), SubscriberClient()
        topic = publisher.create_topic(name=publisher.topic_path(project, f"{run}-floor")).name
        subscriber.create_subscription(
            request={
                "name": subscriber.subscription_path(project, f"{run}-floor"),
                "topic": topic,
                "push_config": {"push_endpoint": endpoint.url},
                "ack_deadline_seconds": 60,
            }
        )
        publisher.transport.close()
        subscriber.close()
        self._publisher = PubSubPublisher(project, {"floor": f"{run}-floor"}, 10.0)

    def push_concurrency(self) -> int:
        """Publishes HELD_MESSAGES at once, each held HOLD_SECONDS by the endpoint: the most
        it held at the same time is how many pushes the emulator keeps in flight."""
        held = {f"held-{i}" for i in range(HELD_MESSAGES)}
        open_loop.call_at_rate(
            HELD_MESSAGES, 1000.0, lambda i: self._publish(f"held-{i}", HOLD_SECONDS), 8
        )
        self._endpoint.wait_answered(held, LONE_TIMEOUT)
        return self._endpoint.most_held

    def one_at_a_time(self, count: int) -> Samples:
        latencies: list[float] = []
        for index in range(count):
            _pause(index)
            sample = f"lone-{index}"
            started = time.monotonic()
            self._publish(sample)
            arrived = self._endpoint.arrivals({sample}, LONE_TIMEOUT)
            latencies += [arrived[sample] - started] if arrived else []
        return Samples(tuple(latencies), count - len(latencies))

    def at_rate(self, rate: float, seconds: float, settle: float) -> Samples:
        count = max(1, round(rate * seconds))
        sent = open_loop.call_at_rate(count, rate, lambda i: self._publish(f"load-{i}"), 32)
        arrived = self._endpoint.arrivals({f"load-{i}" for i in range(count)}, settle)
        latencies = [
            arrived[f"load-{i}"] - one.sent for i, one in enumerate(sent) if f"load-{i}" in arrived
        ]
        return Samples(tuple(latencies), count - len(latencies))

    def _publish(self, sample: str, hold: float = 0.0) -> None:
        attributes = {"sample": sample, **({"hold": str(hold)} if hold else {})}
        self._publisher.publish("floor", b"floor", attributes)


# --- the pipeline ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Payload:
    request: Request
    document: str | None  # a receipt: the message document that will hold it
    user_message: str | None  # a user message: its id, which the agent READ names


class _Pipeline:
    def __init__(
        self, stack: LocalStack, reader: _ReaderClient, api: RbmApiStandIn, run: str
    ) -> None:
        self._stack = stack
        self._reader = reader
        self._api = api
        self._run = run

    def one_at_a_time(self, count: int) -> Paths:
        acknowledged: list[float] = []
        receipts: list[float] = []
        reads: list[float] = []
        session = requests.Session()  # kept alive, as a platform's pushes are
        for index in range(count):
            _pause(2 * index)
            receipt = self._receipt("lone-receipt", index)
            assert receipt.document is not None
            self._reader.watch([(receipt.document, RECEIPT_FIELD, time.monotonic())])
            sent, answered = _post(session, receipt.request)
            seen = self._reader.seen([receipt.document], LONE_TIMEOUT).get(receipt.document)
            user = self._user_message("lone-user", index)
            assert user.user_message is not None
            _pause(2 * index + 1)
            user_sent, user_answered = _post(session, user.request)
            read = _first_reads(self._calls_for({user.user_message}, LONE_TIMEOUT))
            answers = ((sent, answered), (user_sent, user_answered))
            acknowledged += [at - start for start, at in answers if at is not None]
            receipts += [seen - sent] if seen is not None else []
            if user.user_message in read:
                reads.append(read[user.user_message] - user_sent)
        return Paths(
            Samples(tuple(acknowledged), 2 * count - len(acknowledged)),
            Samples(tuple(receipts), count - len(receipts)),
            Samples(tuple(reads), count - len(reads)),
        )

    def at_rate(self, label: str, rate: float, seconds: float, settings: LatencySettings) -> Load:
        """Offers `rate` payloads a second for `seconds`, then waits for them to complete (at
        most settings.settle_seconds); CPU is read over the sending."""
        count = max(1, round(rate * seconds))
        payloads = [
            self._receipt(label, i) if i % USER_MESSAGE_EVERY else self._user_message(label, i)
            for i in range(count)
        ]
        start = time.monotonic() + WATCH_LEAD
        self._reader.watch(
            [
                (payload.document, RECEIPT_FIELD, start + i / rate)
                for i, payload in enumerate(payloads)
                if payload.document is not None
            ]
        )
        cpu = _CpuMeter(self._stack, self._reader.process)
        sent = open_loop.post_at_rate([p.request for p in payloads], rate, start)
        used = cpu.cores()
        documents = [p.document for p in payloads if p.document is not None]
        seen = self._reader.seen(documents, settings.settle_seconds)
        user_messages = {p.user_message for p in payloads if p.user_message is not None}
        reads = _first_reads(self._calls_for(user_messages, settings.settle_seconds))
        done = [
            (payload, one, at)
            for payload, one in zip(payloads, sent, strict=True)
            if (at := seen.get(payload.document or "") or reads.get(payload.user_message or ""))
        ]
        receipts = [at - one.sent for payload, one, at in done if payload.document]
        read_latencies = [at - one.sent for payload, one, at in done if payload.user_message]
        acknowledged = [one.answered - one.sent for one in sent if one.ok and one.answered]
        first_sent, last_sent = min(one.sent for one in sent), max(one.sent for one in sent)
        last_done = max((at for _, _, at in done), default=last_sent)
        last_receipt = max((at for p, _, at in done if p.document), default=last_sent)
        users = len(user_messages)
        return Load(
            rate=rate,
            payloads=count,
            paths=Paths(
                Samples(tuple(acknowledged), count - len(acknowledged)),
                Samples(tuple(receipts), count - users - len(receipts)),
                Samples(tuple(read_latencies), users - len(read_latencies)),
            ),
            sent_rate=(count - 1) / (last_sent - first_sent) if count > 1 else rate,
            lateness=Distribution.of(one.sent - one.due for one in sent),
            in_flight=count - sum(at <= last_sent for _, _, at in done),
            throughput=_per_second(len(done), last_done - first_sent),
            receipts_per_second=_per_second(len(receipts), last_receipt - first_sent),
            cpu=used,
        )

    def _calls_for(self, user_messages: set[str], timeout: float) -> list[AgentEventCall]:
        def all_read(calls: list[AgentEventCall]) -> bool:
            return user_messages <= {c.message_id for c in calls if c.status == 200}

        try:
            return self._api.wait_for(all_read, timeout)
        except TimeoutError:  # those not read are counted as missing
            return self._api.calls()

    def _receipt(self, label: str, index: int) -> _Payload:
        return _receipt(self._stack, self._run, label, index)

    def _user_message(self, label: str, index: int) -> _Payload:
        message_id = f"{self._run}-{label}-{index}"
        event = rbm.text_message(
            "hello", phone=_phone(index), message_id=message_id, agent=f"{self._run}@rbm.goog"
        )
        return _Payload(_signed(self._stack, rbm.push(event)), None, message_id)


def _receipt(stack: LocalStack, run: str, label: str, index: int) -> _Payload:
    """A DELIVERED of the message `{run}-{label}-{index}`, from a user of its own."""
    phone, agent = _phone(index), run
    message_id = f"{run}-{label}-{index}"
    event = rbm.user_event("DELIVERED", message_id, phone=phone, agent=f"{agent}@rbm.goog")
    document = records.message_path(conversation_id(agent, phone), message_id)
    return _Payload(_signed(stack, rbm.push(event)), document, None)


def _signed(stack: LocalStack, body: bytes) -> Request:
    headers = rbm.signed_headers(body, stack.rbm_client_token)
    return Request(stack.rbm_url, body, headers)


def _post(session: requests.Session, request: Request) -> tuple[float, float | None]:
    """When it left, and when its 200 came back (None: another answer, or none)."""
    sent = time.monotonic()
    answer = session.post(request.url, data=request.body, headers=request.headers, timeout=60)
    return sent, time.monotonic() if answer.status_code == 200 else None


def _per_second(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def _first_reads(calls: list[AgentEventCall]) -> dict[str, float]:
    """When the first accepted READ of each user message arrived at the API."""
    first: dict[str, float] = {}
    for call in calls:
        if call.status == 200 and call.message_id is not None:
            first[call.message_id] = min(call.received, first.get(call.message_id, call.received))
    return first


def _phone(index: int) -> str:
    """A user of their own for each payload, as a business's traffic comes from many."""
    return f"+1555{index:07d}"


# --- the change stream ----------------------------------------------------------------------


class _ChangeConsumer(_PushEndpoint):
    """A consumer of the change stream (docs/change-stream.md): a sample is the subject of the
    event pushed to it, the message id of a receipt's status."""

    def sample_of(self, message: Mapping[str, Any]) -> str:
        return str(json.loads(base64.b64decode(message["data"]))["subject"])


@dataclass(frozen=True)
class StreamLatency:
    event: Samples  # a receipt's webhook request until its change event reaches a consumer
    floor: Samples  # a publish until its push arrives at an endpoint that does nothing


def change_stream_latency(stack: LocalStack, count: int) -> StreamLatency:
    """One receipt at a time (RBM DELIVERED, through the webhook and the recorder) until its
    event is pushed to a consumer subscribed to the changes topic, beside the floor."""
    run = f"bench-{uuid.uuid4().hex[:8]}"
    project = stack.settings.project
    subscriber = SubscriberClient()
    path = subscriber.subscription_path(project, f"{run}-consumer")
    with _serving(_ChangeConsumer()) as consumer, _serving(_PushEndpoint()) as endpoint:
        subscriber.create_subscription(
            request={
                "name": path,
                "topic": subscriber.topic_path(project, stack.settings.changes_topic),
                "push_config": {"push_endpoint": consumer.url},
            }
        )
        try:
            floor = _Floor(stack, endpoint, run).one_at_a_time(count)
            session = requests.Session()
            latencies: list[float] = []
            for index in range(count):
                _pause(index)
                receipt = _receipt(stack, run, "stream", index)
                sent, _ = _post(session, receipt.request)
                message_id = f"{run}-stream-{index}"
                arrived = consumer.arrivals({message_id}, LONE_TIMEOUT)
                latencies += [arrived[message_id] - sent] if arrived else []
        finally:
            subscriber.delete_subscription(subscription=path)
            subscriber.close()
    return StreamLatency(Samples(tuple(latencies), count - len(latencies)), floor)


# --- CPU ------------------------------------------------------------------------------------


class _CpuMeter:
    """CPU time each process took from its creation until cores() is called."""

    def __init__(self, stack: LocalStack, reader: ManagedProcess) -> None:
        functions = (WEBHOOK, RECORD_EVENTS, AGENT_READ_RECEIPTS)
        self._processes: dict[str, Callable[[], float]] = {
            **{f.target: stack.functions[f.target].cpu_seconds for f in functions},
            "Pub/Sub emulator": stack.pubsub.cpu_seconds,
            "Firestore emulator": stack.firestore.cpu_seconds,
            "Firestore reader": reader.cpu_seconds,
            "bench: load generator, API stand-in": time.process_time,
        }
        self._started = time.monotonic()
        self._before = {name: read() for name, read in self._processes.items()}
        self._machine_before = _machine_busy_seconds()

    def cores(self) -> dict[str, float]:
        seconds = time.monotonic() - self._started
        used = {name: read() - self._before[name] for name, read in self._processes.items()}
        machine = _machine_busy_seconds() - self._machine_before
        used["rest of the machine (other work)"] = max(0.0, machine - sum(used.values()))
        return {name: cpu / seconds for name, cpu in used.items()}


def _machine_busy_seconds() -> float:
    """CPU time every core spent on anything but idling, since boot (/proc/stat)."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")
