"""`make bench`, part 6: Chat App's SMQ queue mode. Queue messages drained from the Alibaba
stand-in into Firestore by the puller, against a loop that only receives and deletes from
the same kind of stand-in (the ceiling: what the queue itself allows), in the same run."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from shared.providers.chatapp.queue import DEFAULT_MAX_POLLERS
from shared.providers.chatapp.smq import RECEIVE_BATCH, QueueClient, TokenClient
from tools.bench.measure import SETTLE_TIMEOUT, Settings, receipts_stored
from tools.local.procs import ManagedProcess, free_port, wait_until
from tools.local.stack import LocalStack
from tools.payloads import chatapp as ca
from tools.standins.alibaba import AlibabaStandIn
from tools.topology import PULL_QUEUES, RECORD_EVENTS

STATUS = "ChatAppStatus"
STATUSES = ("Sent", "Delivered", "Read")  # each message's reports, in the order they come


@dataclass(frozen=True)
class QueueDrain:
    path: str
    messages: int
    seconds: float  # until every message was deleted from the queue
    persisted_seconds: float | None = None  # until every receipt was in Firestore
    publishes: int = 0  # Pub/Sub messages that carried them
    cpu_seconds: Mapping[str, float] = field(default_factory=dict)  # by process, meanwhile


def queue_drain(stack: LocalStack, settings: Settings) -> list[QueueDrain]:
    """`queue_messages` status reports (three per business message, a user each) through
    both paths, each from a stand-in of its own holding the same messages."""
    run = str(uuid.uuid4().int)[:6]
    receipts = [
        ca.status(f"q{run}-{n // 3}", STATUSES[n % 3], _user(run, n // 3))
        for n in range(settings.queue_messages)
    ]
    return [_receive_and_delete(receipts), _pulled(stack, receipts, run)]


def _user(run: str, number: int) -> str:
    return f"861{run}{number:06d}"


def _filled(receipts: list[dict[str, Any]]) -> AlibabaStandIn:
    alibaba = AlibabaStandIn().start()
    for receipt in receipts:
        alibaba.enqueue(STATUS, receipt)
    return alibaba


def _receive_and_delete(receipts: list[dict[str, Any]]) -> QueueDrain:
    """The ceiling: as many threads as the puller's most pollers, each receiving 16 at a time
    and deleting them, with the puller's own clients and nothing else."""
    alibaba = _filled(receipts)
    try:
        endpoint, queue = alibaba.endpoint, alibaba.queue_name(STATUS)
        token = TokenClient(endpoint, alibaba.access_key_id, alibaba.access_key_secret).query(
            STATUS, queue
        )

        def drain() -> None:
            client = QueueClient(endpoint, queue)
            while messages := client.receive(token, RECEIVE_BATCH, 0):
                client.delete(token, [message.receipt_handle for message in messages])

        started = time.perf_counter()
        threads = [threading.Thread(target=drain) for _ in range(DEFAULT_MAX_POLLERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
        assert alibaba.counts(STATUS).deleted == len(receipts)
    finally:
        alibaba.stop()
    return QueueDrain("receive and delete only (ceiling)", len(receipts), seconds)


def _pulled(stack: LocalStack, receipts: list[dict[str, Any]], run: str) -> QueueDrain:
    """The puller (functions-framework, as deployed) publishing to the stack's Pub/Sub, and
    the recorder writing Firestore; timed from the run's start."""
    alibaba = _filled(receipts)
    port = free_port()
    process = stack.function_process(
        PULL_QUEUES,
        port,
        {
            "CHATAPP_SMQ_QUEUES": f"{STATUS}={alibaba.queue_name(STATUS)}",
            "CHATAPP_SMQ_ENDPOINT": alibaba.endpoint,
            "CHATAPP_SMQ_TOKEN_ENDPOINT": alibaba.endpoint,
            "ALIBABA_CLOUD_ACCESS_KEY_ID": alibaba.access_key_id,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": alibaba.access_key_secret,
            "RUN_PERIOD_SECONDS": str(SETTLE_TIMEOUT),  # one run, stopped once measured
        },
    )
    db = stack.firestore_client()
    low = f"chatapp:{ca.BUSINESS}:861{run}"
    try:
        process.start(f"http://127.0.0.1:{port}/")
        processes = {
            "puller": process,
            "recorder": stack.functions[RECORD_EVENTS.target],
            "Pub/Sub emulator": stack.pubsub,
            "Firestore emulator": stack.firestore,
        }
        cpu_before = _cpu(processes)
        started = time.perf_counter()
        threading.Thread(target=_run, args=(f"http://127.0.0.1:{port}/",), daemon=True).start()
        wait_until(
            lambda: alibaba.counts(STATUS).deleted == len(receipts),
            SETTLE_TIMEOUT,
            "the puller to drain the queue",
        )
        drained = time.perf_counter() - started
        wait_until(
            lambda: receipts_stored(db, low, f"{low}:") == len(receipts),
            SETTLE_TIMEOUT,
            "every pulled receipt to be persisted",
            interval=0.05,
        )
        persisted = time.perf_counter() - started
        cpu = {name: used - cpu_before[name] for name, used in _cpu(processes).items()}
        published = [
            entry
            for entry in stack.log_entries(process.name)
            if entry.get("message") == "queue messages published"
        ]
    finally:
        alibaba.stop()  # first: its long polls answer, so the puller stops between calls
        process.stop()
    path = "puller: receive → publish → delete, recorder → Firestore"
    return QueueDrain(path, len(receipts), drained, persisted, len(published), cpu)


def _cpu(processes: Mapping[str, ManagedProcess]) -> dict[str, float]:
    return {name: process.cpu_seconds() for name, process in processes.items()}


def _run(url: str) -> None:
    with contextlib.suppress(requests.RequestException):  # stopped under it once measured
        requests.post(url, timeout=SETTLE_TIMEOUT + 60)
