"""One real local stack for the integration tests: gcloud emulators, functions-framework
servers, push subscriptions, and the Business Messages stand-in."""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from google.api_core.exceptions import AlreadyExists
from google.cloud import firestore
from google.cloud.pubsub_v1 import SubscriberClient

from shared.adapters.change_stream import ChangeStream, ChangeStreamSettings
from shared.adapters.publisher import PubSubSettings
from shared.core import records
from shared.core.config import DEFAULT_DEAD_LETTER
from shared.core.events import payload_key
from shared.core.provider import DEFAULT_MAX_BODY_BYTES
from shared.core.times import utc_now
from shared.ops.replay import Replay
from shared.providers import REGISTRY
from tests.change_consumer import ChangeConsumer
from tools.local import demo
from tools.local.stack import Delivery, LocalStack, StackSettings
from tools.payloads import CONTRACT_REQUESTS_BY_PROVIDER
from tools.payloads import bm as bm_payloads
from tools.standins.bm_api import BusinessMessagesStandIn
from tools.standins.rbm_api import RbmApiStandIn

# The routes of the common 1 MiB bound get this one, so that oversized bodies stay quick to
# send; a route made to take more (WhatsApp's batches of ~3 MB) keeps its own, as deployed.
BODY_LIMIT = 64 * 1024
PROCESSING_TIMEOUT = 90  # contended transactions in the emulator take seconds each
SPOOL_MAX_ATTEMPTS = 3  # the drainer parks an event after this many failures of its own


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    settings = StackSettings(
        work_dir=tmp_path_factory.mktemp("stack"),
        provider_env={
            "BM_SIGNING_KEY": "local-signing-key,previous-signing-key",
            "RBM_CLIENT_TOKEN": "local-rbm-client-token,previous-rbm-client-token",
        },
        drain_interval_seconds=1,
        pull_period_seconds=2,
        max_delivery_attempts=5,
        function_env={
            "PUBLISH_TIMEOUT_SECONDS": "2",
            "BM_API_RETRY_DEADLINE_SECONDS": "2",
            "RBM_API_RETRY_DEADLINE_SECONDS": "2",
            "WHATSAPP_API_RETRY_DEADLINE_SECONDS": "2",
            "READ_RECEIPT_LEASE_SECONDS": "30",
            **{
                p.max_body_bytes_variable: str(BODY_LIMIT)
                for p in REGISTRY
                if p.max_body_bytes <= DEFAULT_MAX_BODY_BYTES
            },
            "SPOOL_MAX_ATTEMPTS": str(SPOOL_MAX_ATTEMPTS),
        },
    )
    running = LocalStack(settings).start()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def consumer(stack: LocalStack) -> Iterator[ChangeConsumer]:
    """The change stream, pushed to a local endpoint as a business's consumer receives it."""
    started = ChangeConsumer(stack, "test-change-consumer").start()
    yield started
    started.stop()


@pytest.fixture(scope="session")
def change_stream(stack: LocalStack) -> ChangeStream:
    """Publishes to the stack's change stream, as the functions do."""
    settings = stack.settings
    return ChangeStreamSettings(settings.project, settings.changes_topic, timeout=10).connect()


@dataclass(frozen=True)
class DemoRun:
    shown: str  # what `make demo` printed
    started: datetime
    finished: datetime


@pytest.fixture(scope="session")
def demo_run(stack: LocalStack, consumer: ChangeConsumer) -> DemoRun:
    """`make demo`, played once per session with the change stream followed from the start:
    its conversations (every provider) and its simulated week."""
    shown = io.StringIO()
    started = utc_now()
    with contextlib.redirect_stdout(shown):
        demo.play(demo.Target.of(stack))
    return DemoRun(shown.getvalue(), started, utc_now())


@pytest.fixture(scope="session")
def db(stack: LocalStack) -> firestore.Client:
    return stack.firestore_client()


@pytest.fixture(scope="session")
def spool_db(stack: LocalStack) -> firestore.Client:
    """The spool's own database, as in production (SPOOL_DATABASE)."""
    return stack.spool_client()


@pytest.fixture(scope="session")
def standin(stack: LocalStack) -> BusinessMessagesStandIn:
    assert stack.standin is not None
    return stack.standin


@pytest.fixture(scope="session")
def rbm_standin(stack: LocalStack) -> RbmApiStandIn:
    assert stack.rbm_standin is not None
    return stack.rbm_standin


class Spy:
    """Pull subscriptions beside the push ones: what the webhook really published."""

    def __init__(self, stack: LocalStack) -> None:
        self._stack = stack
        self._client = SubscriberClient()
        self.seen: list[dict[str, Any]] = []
        self.attach()

    def attach(self) -> None:
        project = self._stack.settings.project
        for topic in self._stack.settings.topics.values():
            with contextlib.suppress(AlreadyExists):
                self._client.create_subscription(
                    name=self._path(topic), topic=f"projects/{project}/topics/{topic}"
                )

    def _path(self, topic: str) -> str:
        path: str = self._client.subscription_path(self._stack.settings.project, f"spy-{topic}")
        return path

    def drain(self) -> list[dict[str, Any]]:
        """Everything published since the last drain (pulled until a topic is empty)."""
        new: list[dict[str, Any]] = []
        for topic in self._stack.settings.topics.values():
            while pulled := self._pull(topic):
                new += pulled
        self.seen += new
        return new

    def _pull(self, topic: str) -> list[dict[str, Any]]:
        with warnings.catch_warnings():
            # Deprecated for production pulls, but the way to drain a topic in a test
            # without waiting out a timeout when it is empty.
            warnings.simplefilter("ignore", DeprecationWarning)
            response = self._client.pull(
                subscription=self._path(topic),
                max_messages=1000,
                timeout=5,
                return_immediately=True,
            )
        if response.received_messages:
            self._client.acknowledge(
                subscription=self._path(topic),
                ack_ids=[m.ack_id for m in response.received_messages],
            )
        return [
            {
                "topic": topic,
                "data": received.message.data,
                "attributes": dict(received.message.attributes),
                "messageId": received.message.message_id,
            }
            for received in response.received_messages
        ]

    def published(self, conversation_id: str) -> list[dict[str, Any]]:
        self.drain()
        return [m for m in self.seen if m["attributes"].get("conversationId") == conversation_id]


@pytest.fixture(scope="session")
def spy(stack: LocalStack) -> Spy:
    return Spy(stack)


def settled(
    stack: LocalStack, target: str, message: str, deliveries: list[Delivery]
) -> list[dict[str, Any]]:
    """`target`'s log entries saying `message` for these deliveries, once it logged them all."""
    found = stack.logged_for(target, message, deliveries, PROCESSING_TIMEOUT)
    return [found[d] for d in deliveries]


def send(stack: LocalStack, body: bytes, key: str | None = None) -> requests.Response:
    return bm_payloads.post_signed(stack.webhook_url, body, key or stack.signing_key)


def delivery(response: requests.Response) -> Delivery:
    """The Pub/Sub message an accepted webhook request became, and the identity of the body
    published (the request's, or the form its provider publishes instead)."""
    assert response.status_code == 200, response.text
    body = response.request.body
    assert isinstance(body, bytes)
    route = urlsplit(str(response.request.url)).path.strip("/").split("/")[0]
    [provider] = [p for p in REGISTRY if p.route == route]
    return response.json()["messageId"], payload_key(
        CONTRACT_REQUESTS_BY_PROVIDER[provider.name].published(body)
    )


def recorded(stack: LocalStack, *responses: requests.Response) -> list[dict[str, Any]]:
    """The recorder's log entries for these accepted webhook requests, once all are processed."""
    return settled(stack, "record_events", "event recorded", [delivery(r) for r in responses])


def documents(collection: firestore.CollectionReference) -> dict[str, dict[str, Any]]:
    return {snap.id: snap.to_dict() or {} for snap in collection.stream()}


def recorded_receipts(db: firestore.Client, conversation_id: str) -> dict[str, dict[str, Any]]:
    """The receipts recorded in a conversation, `{messageId}~{status}` -> what each said:
    they live on the messages they are about (records.RECEIPTS)."""
    messages = db.collection(f"{records.conversation_path(conversation_id)}/{records.MESSAGES}")
    return {key: dict(receipt) for key, receipt in records.receipts_of(documents(messages)).items()}


@pytest.fixture
def replay(stack: LocalStack, db: firestore.Client, spool_db: firestore.Client) -> Replay:
    settings = stack.settings
    topics = {name.removesuffix("_TOPIC").lower(): topic for name, topic in settings.topics.items()}
    subscriber = SubscriberClient()
    return Replay(
        PubSubSettings(settings.project, topics, timeout=10).publisher(),
        subscriber,
        subscriber.subscription_path(settings.project, DEFAULT_DEAD_LETTER),
        db,
        spool_db,
    )
