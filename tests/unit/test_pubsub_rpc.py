"""The webhook's publisher: Pub/Sub's Publish RPC as the client library sends it, confirmed
before it returns, batched while others are in flight, retried only when Pub/Sub says the
failure is transient, and authorised with the metadata server's token.

A gRPC server on a free port plays Pub/Sub; a loopback HTTP server plays the metadata server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import grpc
import pytest
from google.pubsub_v1 import PublishRequest, PublishResponse, PubsubMessage

from shared.adapters.publisher import PublishFailed
from shared.adapters.pubsub_rpc import (
    REFRESH_MARGIN_SECONDS,
    Batcher,
    Endpoint,
    MetadataServerTokens,
    Pending,
    RpcPublisher,
    Tokens,
    decode_message_ids,
    encode_message,
    encode_publish_request,
)
from tools.local.procs import wait_until
from tools.standins.loopback import LoopbackServer, send_json

TOPIC = "projects/p/topics/t"


def soon() -> float:
    """A deadline no test reaches."""
    return time.monotonic() + 30


Answer = Callable[[PublishRequest, grpc.ServicerContext], PublishResponse]


@dataclass
class FakePubSub:
    """Answers each Publish with `answer` (by default: ids 1, 2, ... in order)."""

    port: int
    requests: list[PublishRequest] = field(default_factory=list)
    metadata: list[dict[str, str]] = field(default_factory=list)
    answer: Answer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, raw: bytes, context: grpc.ServicerContext) -> bytes:
        request = PublishRequest.deserialize(raw)
        with self._lock:
            self.requests.append(request)
            self.metadata.append(dict(context.invocation_metadata()))
            published = sum(len(r.messages) for r in self.requests)
        if self.answer is not None:
            return bytes(PublishResponse.serialize(self.answer(request, context)))
        first = published - len(request.messages) + 1
        ids = [str(i) for i in range(first, published + 1)]
        return bytes(PublishResponse.serialize(PublishResponse(message_ids=ids)))

    def publisher(self, tokens: Tokens | None = None, **options: int) -> RpcPublisher:
        endpoint = Endpoint(f"127.0.0.1:{self.port}", secure=False, tokens=tokens)
        return RpcPublisher("p", {"events": "t"}, timeout=2.0, endpoint=endpoint, **options)


@pytest.fixture
def pubsub() -> Iterator[FakePubSub]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    port = server.add_insecure_port("127.0.0.1:0")
    fake = FakePubSub(port)
    handler = grpc.unary_unary_rpc_method_handler(fake.handle)  # bytes in, bytes out
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("google.pubsub.v1.Publisher", {"Publish": handler})]
    )
    server.start()
    yield fake
    server.stop(grace=None)


# --- the wire format ------------------------------------------------------------------------


def test_a_publish_request_is_what_the_client_library_sends() -> None:
    messages = [
        (b"{}", {"provider": "rbm", "kind": "DELIVERED"}),
        (b"\x00\xff" * 300, {}),
        (b"", {"k": "é"}),
    ]
    encoded = encode_publish_request(TOPIC, [encode_message(d, a) for d, a in messages])

    assert PublishRequest.deserialize(encoded) == PublishRequest(
        topic=TOPIC, messages=[PubsubMessage(data=d, attributes=a) for d, a in messages]
    )


def test_message_ids_are_read_from_the_client_librarys_response() -> None:
    response = PublishResponse.serialize(PublishResponse(message_ids=["17", "18", "x" * 200]))

    assert decode_message_ids(response) == ["17", "18", "x" * 200]
    assert decode_message_ids(b"\x08\x96\x01" + response) == ["17", "18", "x" * 200]  # a varint
    with pytest.raises(ValueError, match="truncated"):
        decode_message_ids(response[:-1])


# --- publishing -----------------------------------------------------------------------------


def test_a_publish_returns_the_id_pubsub_gave(pubsub: FakePubSub) -> None:
    publisher = pubsub.publisher()

    assert publisher.publish("events", b"body", {"provider": "bm"}) == "1"
    assert publisher.publish("events", b"body", {"provider": "bm"}) == "2"
    request = pubsub.requests[0]
    assert request.topic == TOPIC
    assert [(m.data, dict(m.attributes)) for m in request.messages] == [
        (b"body", {"provider": "bm"})
    ]
    assert pubsub.metadata[0]["x-goog-request-params"] == "topic=projects%2Fp%2Ftopics%2Ft"
    assert "authorization" not in pubsub.metadata[0]  # the emulator takes no credentials
    publisher.close()


def test_a_transient_failure_is_tried_again(pubsub: FakePubSub) -> None:
    failures = [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED]

    def flaky(request: PublishRequest, context: grpc.ServicerContext) -> PublishResponse:
        if failures:
            context.abort(failures.pop(0), "try again")
        return PublishResponse(message_ids=["9"])

    pubsub.answer = flaky

    assert pubsub.publisher().publish("events", b"body", {}) == "9"
    assert len(pubsub.requests) == 3


def test_a_refusal_is_final_and_not_confirmed(pubsub: FakePubSub) -> None:
    def refuse(request: PublishRequest, context: grpc.ServicerContext) -> PublishResponse:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "attribute too long")
        raise AssertionError("abort raises")

    pubsub.answer = refuse

    with pytest.raises(PublishFailed, match="INVALID_ARGUMENT"):
        pubsub.publisher().publish("events", b"body", {})
    assert len(pubsub.requests) == 1


def test_no_answer_within_the_deadline_is_not_confirmed(pubsub: FakePubSub) -> None:
    released = threading.Event()

    def stall(request: PublishRequest, context: grpc.ServicerContext) -> PublishResponse:
        released.wait(10)  # Pub/Sub too slow: longer than the publisher's 2 s
        return PublishResponse(message_ids=["1"])

    pubsub.answer = stall
    try:
        with pytest.raises(PublishFailed, match="not confirmed"):
            pubsub.publisher().publish("events", b"body", {})
    finally:
        released.set()


def test_fewer_ids_than_messages_is_not_confirmed(pubsub: FakePubSub) -> None:
    pubsub.answer = lambda request, context: PublishResponse(message_ids=[])

    with pytest.raises(PublishFailed, match="0 message ids for 1 messages"):
        pubsub.publisher().publish("events", b"body", {})


def test_an_unknown_topic_key_is_not_confirmed(pubsub: FakePubSub) -> None:
    with pytest.raises(PublishFailed, match="no such topic key"):
        pubsub.publisher().publish("readable", b"body", {})
    assert not pubsub.requests


def test_the_naive_settings_send_every_message_alone(pubsub: FakePubSub) -> None:
    publisher = pubsub.publisher(max_in_flight=8, max_batch=1)
    threads = [
        threading.Thread(target=publisher.publish, args=("events", bytes([i]), {}))
        for i in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert [len(request.messages) for request in pubsub.requests] == [1] * 6


# --- batching -------------------------------------------------------------------------------


def test_a_lone_message_goes_alone_and_those_published_meanwhile_go_together() -> None:
    batches: list[list[bytes]] = []
    first_in_flight = threading.Event()
    release = threading.Event()

    def send(batch: list[Pending]) -> None:
        batches.append([pending.encoded for pending in batch])
        if len(batches) == 1:
            first_in_flight.set()
            assert release.wait(10)
        for index, pending in enumerate(batch):
            pending.message_id = f"{len(batches)}.{index}"

    batcher = Batcher(send, max_in_flight=1, max_batch=1000)
    ids: dict[bytes, str | None] = {}

    def publish(data: bytes) -> None:
        pending = Pending(data, deadline=soon())
        batcher.publish(pending)
        ids[data] = pending.message_id

    first = threading.Thread(target=publish, args=(b"1",))
    first.start()
    assert first_in_flight.wait(10)
    meanwhile = [threading.Thread(target=publish, args=(data,)) for data in (b"2", b"3")]
    for thread in meanwhile:
        thread.start()
    wait_until(lambda: batcher.waiting == 2, 10, "both to wait for the first request")
    release.set()
    for thread in [first, *meanwhile]:
        thread.join(10)
    publish(b"4")  # nothing in flight again

    assert sorted(batches[1]) == [b"2", b"3"]
    assert [batches[0], batches[2]] == [[b"1"], [b"4"]]
    assert (ids[b"1"], ids[b"4"]) == ("1.0", "3.0")
    assert {ids[b"2"], ids[b"3"]} == {"2.0", "2.1"}


def test_a_message_still_waiting_at_its_deadline_is_never_sent() -> None:
    release = threading.Event()
    sent: list[bytes] = []

    def send(batch: list[Pending]) -> None:
        sent.extend(pending.encoded for pending in batch)
        release.wait(10)
        for pending in batch:
            pending.message_id = "1"

    batcher = Batcher(send, max_in_flight=1, max_batch=1000)
    first = threading.Thread(target=batcher.publish, args=(Pending(b"first", soon()),))
    first.start()
    wait_until(lambda: sent, 10, "the first request")
    late = Pending(b"late", deadline=0.0)  # its publisher has given up already

    batcher.publish(late)
    release.set()
    first.join(10)

    assert late.error == "no answer within the publish deadline"
    assert sent == [b"first"]


# --- credentials ----------------------------------------------------------------------------


def metadata_handler(calls: list[dict[str, str]]) -> type[BaseHTTPRequestHandler]:
    """The metadata server's token endpoint: a new token at each call, which it records."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            calls.append(dict(self.headers))
            send_json(self, 200, {"access_token": f"token-{len(calls)}", "expires_in": 3599})

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@dataclass
class MetadataServer:
    host: str
    calls: list[dict[str, str]]


@pytest.fixture
def metadata_server() -> Iterator[MetadataServer]:
    calls: list[dict[str, str]] = []
    server = LoopbackServer(metadata_handler(calls)).start()
    yield MetadataServer(server.address, calls)
    server.stop()


def test_a_token_is_kept_until_shortly_before_it_expires(metadata_server: MetadataServer) -> None:
    now = [1000.0]
    tokens = MetadataServerTokens({"GCE_METADATA_HOST": metadata_server.host}, lambda: now[0])

    assert tokens.authorization(soon()) == "Bearer token-1"
    now[0] += 3599 - REFRESH_MARGIN_SECONDS - 1
    assert tokens.authorization(soon()) == "Bearer token-1"
    now[0] += 1
    assert tokens.authorization(soon()) == "Bearer token-2"
    tokens.forget()
    assert tokens.authorization(soon()) == "Bearer token-3"
    assert all(call["Metadata-Flavor"] == "Google" for call in metadata_server.calls)


def test_pubsub_is_called_with_the_instances_token_and_a_refused_one_is_replaced(
    pubsub: FakePubSub, metadata_server: MetadataServer
) -> None:
    def refuse_the_first(request: PublishRequest, context: grpc.ServicerContext) -> PublishResponse:
        if len(pubsub.requests) == 1:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "token revoked")
        return PublishResponse(message_ids=["5"])

    pubsub.answer = refuse_the_first
    tokens = MetadataServerTokens({"GCE_METADATA_HOST": metadata_server.host})

    assert pubsub.publisher(tokens).publish("events", b"body", {}) == "5"
    assert [m["authorization"] for m in pubsub.metadata] == ["Bearer token-1", "Bearer token-2"]


def test_pubsub_itself_is_reached_over_tls_with_the_instances_token() -> None:
    endpoint = Endpoint.from_env({"GCE_METADATA_HOST": "127.0.0.1:9"})

    assert (endpoint.address, endpoint.secure) == ("pubsub.googleapis.com:443", True)
    assert isinstance(endpoint.tokens, MetadataServerTokens)
    emulator = Endpoint.from_env({"PUBSUB_EMULATOR_HOST": "127.0.0.1:8085"})
    assert emulator == Endpoint("127.0.0.1:8085", secure=False, tokens=None)
