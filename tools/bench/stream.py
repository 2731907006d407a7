"""The change stream's price and latency (docs/change-stream.md).

The price: each cost payload (tools/bench/measure.py) is sent alone, and the events the
recorder publishes for it are pulled from a subscription of the bench's own, so their bytes
are the real events'; the publish requests are the recorder's own count (its log line).
Priced as Pub/Sub bills them (tools/bench/prices.py): a publish request, and one delivery of
each event to one subscriber by push, at least 1,000 bytes each. Its latency, from a
webhook request to a consumer's push: tools/bench/latency.py (change_stream_latency).
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from google.cloud.pubsub_v1 import SubscriberClient
from google.pubsub_v1 import PubsubMessage

from shared.core import changes
from tools.bench import prices
from tools.bench.latency import StreamLatency, change_stream_latency
from tools.bench.measure import SETTLE_TIMEOUT, CostPayload, Settings, cost_payloads
from tools.local.procs import wait_until
from tools.local.stack import LocalStack
from tools.topology import RECORD_EVENTS

TARGET = 0.10  # USD per million one-receipt payloads, added to the busy figure


@dataclass(frozen=True)
class StreamCost:
    payload: str
    receipts: int
    events: int  # the changes the recorder published for it
    requests: int  # publish requests, as the recorder counted them
    event_bytes: int  # the events' data volume: body, attributes, timestamp, message id
    billable_bytes: int  # its publish requests, and a push of each event to one subscriber

    @property
    def usd_per_million_receipts(self) -> float:
        return self.billable_bytes * prices.PUBSUB_PER_BYTE * 1_000_000 / self.receipts


@dataclass(frozen=True)
class Stream:
    costs: list[StreamCost]
    latency: StreamLatency


def stream(stack: LocalStack, settings: Settings) -> Stream:
    run = f"bench-stream-{uuid.uuid4().hex[:8]}"
    subscriber = SubscriberClient()
    project = stack.settings.project
    path = subscriber.subscription_path(project, f"{run}-costs")
    topic = subscriber.topic_path(project, stack.settings.changes_topic)
    subscriber.create_subscription(name=path, topic=topic)
    try:
        payloads = cost_payloads(stack, run, settings.payload_sizes)
        costs = [_cost(stack, subscriber, path, payload) for payload in payloads]
    finally:
        subscriber.delete_subscription(subscription=path)
        subscriber.close()
    return Stream(costs, change_stream_latency(stack, settings.latency.lone_samples))


def _cost(
    stack: LocalStack, subscriber: SubscriberClient, path: str, payload: CostPayload
) -> StreamCost:
    """Sent alone: every event the subscription receives until the recorder's count is in
    is this payload's."""
    mark = len(stack.log_entries(RECORD_EVENTS.target))
    delivery = payload.send(stack)
    logged = stack.logged_for(
        RECORD_EVENTS.target, "event recorded", [delivery], SETTLE_TIMEOUT, mark
    )
    record = logged[delivery]
    events: dict[str, PubsubMessage] = {}  # by message id: a redelivery is the same one

    def all_pulled() -> bool:
        events.update((m.message_id, m) for m in _pull(subscriber, path))
        return len(events) >= int(record["changes"])

    wait_until(all_pulled, SETTLE_TIMEOUT, f"the change events of {payload.name}")
    messages = list(events.values())
    volumes = {m.data: _volume(m) for m in messages}  # each event's body is its own
    # The publish requests as the recorder's publisher grouped them (nearly always one).
    requests = changes.requests([(m.data, dict(m.attributes)) for m in messages])
    publishes = sum(_billable(sum(volumes[data] for data, _ in request)) for request in requests)
    deliveries = sum(_billable(volume) for volume in volumes.values())  # a push each
    return StreamCost(
        payload=payload.name,
        receipts=payload.receipts,
        events=len(messages),
        requests=int(record["changeRequests"]),
        event_bytes=sum(volumes.values()),
        billable_bytes=publishes + deliveries,
    )


def _volume(message: PubsubMessage) -> int:
    """A message's data volume as Pub/Sub counts it: its body, each attribute's key and value,
    20 bytes of timestamp and its message id (cloud.google.com/pubsub/pricing)."""
    attributes = sum(len(k) + len(v) for k, v in message.attributes.items())
    return len(message.data) + attributes + 20 + len(message.message_id)


def _billable(volume: int) -> int:
    """A request's billed volume: at least 1,000 bytes."""
    return max(prices.PUBSUB_MINIMUM_BYTES, volume)


def _pull(subscriber: SubscriberClient, path: str) -> Sequence[PubsubMessage]:
    with warnings.catch_warnings():
        # Deprecated for production pulls, but the way to read what is there without
        # waiting out a timeout when nothing is.
        warnings.simplefilter("ignore", DeprecationWarning)
        response = subscriber.pull(
            subscription=path, max_messages=1000, timeout=10, return_immediately=True
        )
    if response.received_messages:
        ack_ids = [m.ack_id for m in response.received_messages]
        subscriber.acknowledge(subscription=path, ack_ids=ack_ids)
    return [received.message for received in response.received_messages]
