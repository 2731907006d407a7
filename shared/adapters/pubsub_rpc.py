"""The webhook's publisher: Pub/Sub's Publish RPC on a gRPC channel, without the client library.

Why: importing google-cloud-pubsub (its proto-plus types, api-core, and google-auth, which
loads `cryptography`) took ~0.17 s, most of the webhook's cold start (`make bench`,
section 2); `grpc` alone takes ~0.03 s. The RPC is the same one the client library sends, on
the same kind of channel, so Pub/Sub (and its emulator) sees no difference. What the client
library gave the webhook is kept:

- a message is confirmed only once Pub/Sub returned its id;
- concurrent publishes are batched: a message goes at once when no request to its topic is
  in flight, and the messages published meanwhile go together in one request as soon as one
  returns (no timer, so a lone push never waits for a batch that will not fill);
- failures Pub/Sub calls transient (the client library's list) are retried with backoff
  within the publish deadline; any other refusal is final;
- credentials: the access token of the instance's service account, from the metadata
  server (what google-auth does on Cloud Run), cached until shortly before it expires, over
  TLS; none for the emulator (PUBSUB_EMULATOR_HOST), as the client libraries do.

The two messages involved are encoded and decoded here (`encode_publish_request`,
`decode_message_ids`): the protobuf wire format of `google.pubsub.v1.PublishRequest` and
`PublishResponse`, a few fields long. A unit test checks them against the client library's.
"""

from __future__ import annotations

import functools
import http.client
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

import grpc

from shared.adapters.publisher import PublishFailed

PUBSUB_TARGET = "pubsub.googleapis.com:443"
PUBLISH_METHOD = "/google.pubsub.v1.Publisher/Publish"
METADATA_HOST = "metadata.google.internal"
TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"  # noqa: S105
# google-auth refreshes a token this long before it expires; so does this.
REFRESH_MARGIN_SECONDS = 225.0
# Pub/Sub takes at most 1,000 messages and 10 MB per publish request.
MAX_BATCH_MESSAGES = 1000
MAX_BATCH_BYTES = 9 * 1024 * 1024
# The client library's: what it retries, how soon and how often, and its channel's options.
TRANSIENT = frozenset(
    {
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.UNKNOWN,
    }
)
FIRST_BACKOFF_SECONDS = 0.1
MAX_BACKOFF_SECONDS = 1.0
CHANNEL_OPTIONS = (
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.keepalive_time_ms", 30_000),
)


# --- the two messages, in protobuf's wire format ------------------------------------------


def encode_publish_request(topic: str, messages: Sequence[bytes]) -> bytes:
    """PublishRequest{topic = 1; repeated PubsubMessage messages = 2}, from messages already
    encoded by `encode_message`."""
    return _field(1, topic.encode()) + b"".join(_field(2, message) for message in messages)


def encode_message(data: bytes, attributes: Mapping[str, str]) -> bytes:
    """PubsubMessage{bytes data = 1; map<string, string> attributes = 2}."""
    entries = (
        _field(2, _field(1, key.encode()) + _field(2, value.encode()))
        for key, value in attributes.items()
    )
    return (_field(1, data) if data else b"") + b"".join(entries)


def decode_message_ids(response: bytes) -> list[str]:
    """PublishResponse{repeated string message_ids = 1}; other fields are skipped."""
    return [value.decode() for number, value in _fields(response) if number == 1]


def _field(number: int, value: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _fields(message: bytes) -> Iterator[tuple[int, bytes]]:
    """(field number, value) of each length-delimited field; other wire types are skipped."""
    position = 0
    while position < len(message):
        key, position = _read_varint(message, position)
        wire_type = key & 7
        if wire_type == 0:
            position = _read_varint(message, position)[1]
        elif wire_type == 1:
            position += 8
        elif wire_type == 5:
            position += 4
        elif wire_type == 2:
            length, position = _read_varint(message, position)
            if position + length > len(message):
                raise ValueError("truncated field")
            yield key >> 3, message[position : position + length]
            position += length
        else:
            raise ValueError(f"unknown wire type {wire_type}")
    if position != len(message):
        raise ValueError("truncated field")


def _read_varint(message: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(message) or shift > 63:
            raise ValueError("malformed varint")
        byte = message[position]
        value |= (byte & 0x7F) << shift
        position += 1
        shift += 7
        if byte < 0x80:
            return value, position


# --- credentials ----------------------------------------------------------------------------


class _Attempt(Exception):
    """One failed request; `transient` failures are tried again while the deadline allows."""

    def __init__(self, reason: str, transient: bool) -> None:
        super().__init__(reason)
        self.transient = transient


class Tokens(Protocol):
    def authorization(self, deadline: float) -> str: ...

    def forget(self) -> None: ...


class MetadataServerTokens:
    """The instance's service-account access token, from the metadata server, cached until
    REFRESH_MARGIN_SECONDS before it expires. GCE_METADATA_HOST moves the server, as it
    does for google-auth."""

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        host = (os.environ if environ is None else environ).get("GCE_METADATA_HOST", "")
        self._host = host.strip() or METADATA_HOST
        self._clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = threading.Lock()

    def authorization(self, deadline: float) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._refresh_at:
                self._token, lifetime = self._fetch(deadline)
                self._refresh_at = self._clock() + lifetime - REFRESH_MARGIN_SECONDS
            return f"Bearer {self._token}"

    def forget(self) -> None:
        """After UNAUTHENTICATED: the next request fetches a token again."""
        with self._lock:
            self._token = None

    def _fetch(self, deadline: float) -> tuple[str, float]:
        """A token and its lifetime in seconds. A new connection each time: a token is
        fetched about once an hour."""
        timeout = max(0.001, deadline - time.monotonic())
        connection = http.client.HTTPConnection(self._host, timeout=timeout)
        try:
            connection.request("GET", TOKEN_PATH, headers={"Metadata-Flavor": "Google"})
            response = connection.getresponse()
            status, body = response.status, response.read()
        except (OSError, http.client.HTTPException) as error:
            raise _Attempt(f"metadata server token: {error!r}", transient=True) from error
        finally:
            connection.close()
        if status != 200:
            raise _Attempt(f"metadata server token: HTTP {status}", transient=True)
        try:
            answer = json.loads(body)
            return str(answer["access_token"]), float(answer["expires_in"])
        except (ValueError, KeyError, TypeError) as error:
            raise _Attempt(f"metadata server token: {error!r}", transient=True) from error


@dataclass(frozen=True)
class Endpoint:
    """Where to publish: the emulator (PUBSUB_EMULATOR_HOST; plain, no credentials), or
    Pub/Sub itself (TLS, the instance's token)."""

    address: str
    secure: bool
    tokens: Tokens | None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Endpoint:
        environ = os.environ if environ is None else environ
        emulator = environ.get("PUBSUB_EMULATOR_HOST", "").strip()
        if emulator:
            return cls(emulator, secure=False, tokens=None)
        return cls(PUBSUB_TARGET, secure=True, tokens=MetadataServerTokens(environ))


# --- batching -------------------------------------------------------------------------------


@dataclass
class Pending:
    """A message waiting for its publish, and then what came of it."""

    encoded: bytes  # a PubsubMessage
    deadline: float  # time.monotonic() after which its publisher gives up
    message_id: str | None = None
    error: str | None = None
    taken: bool = False  # in a request: no longer waiting

    @property
    def settled(self) -> bool:
        return self.message_id is not None or self.error is not None


class Batcher:
    """One topic's queue: whoever publishes while a request slot is free sends everything
    waiting (up to Pub/Sub's limits) in one request; the others wait for their answer."""

    def __init__(
        self, send: Callable[[list[Pending]], None], max_in_flight: int, max_batch: int
    ) -> None:
        self._send = send
        self._max_in_flight = max_in_flight
        self._max_batch = max_batch
        self._waiting: deque[Pending] = deque()
        self._in_flight = 0
        self._changed = threading.Condition()

    @property
    def waiting(self) -> int:
        """Messages not yet in a request."""
        with self._changed:
            return len(self._waiting)

    def publish(self, pending: Pending) -> None:
        """Returns once `pending` is settled: with its message id, or with an error."""
        with self._changed:
            self._waiting.append(pending)
            while not pending.settled:
                if self._in_flight < self._max_in_flight and self._waiting:
                    self._send_batch()
                    continue
                remaining = pending.deadline - time.monotonic()
                if remaining <= 0:
                    if not pending.taken:  # never sent: drop it, so it is not published late
                        self._waiting.remove(pending)
                    pending.error = "no answer within the publish deadline"
                    return
                self._changed.wait(remaining)

    def _send_batch(self) -> None:
        """Called holding the lock; sends without it."""
        batch = self._take_batch()
        self._in_flight += 1
        self._changed.release()
        try:
            self._send(batch)
        finally:
            self._changed.acquire()
            self._in_flight -= 1
            for pending in batch:
                if not pending.settled:  # only if sending raised: never leave one waiting
                    pending.error = "the publish request failed"
            self._changed.notify_all()

    def _take_batch(self) -> list[Pending]:
        batch: list[Pending] = []
        size = 0
        while self._waiting and len(batch) < self._max_batch:
            size += len(self._waiting[0].encoded)
            if batch and size > MAX_BATCH_BYTES:
                break
            pending = self._waiting.popleft()
            pending.taken = True
            batch.append(pending)
        return batch


# --- the publisher --------------------------------------------------------------------------


class RpcPublisher:
    """Publishes each message and returns its Pub/Sub message id once Pub/Sub holds it; raises
    PublishFailed when that was not confirmed within `timeout` seconds.

    The channel is opened at the first publish, in the process that serves requests (the
    web server's worker, after its fork). `max_batch` 1 and a large `max_in_flight` send
    every message in a request of its own (the bench's naive baseline).
    """

    def __init__(
        self,
        project: str,
        topics: Mapping[str, str],
        timeout: float,
        endpoint: Endpoint | None = None,
        max_in_flight: int = 1,
        max_batch: int = MAX_BATCH_MESSAGES,
    ) -> None:
        self._endpoint = endpoint or Endpoint.from_env()
        self._timeout = timeout
        self._channel: grpc.Channel | None = None
        self._call: Callable[..., bytes] | None = None
        self._channel_lock = threading.Lock()
        self._topics = {
            key: Batcher(
                functools.partial(self._send, f"projects/{project}/topics/{topic}"),
                max_in_flight,
                max_batch,
            )
            for key, topic in topics.items()
        }

    def publish(self, topic_key: str, data: bytes, attributes: Mapping[str, str]) -> str:
        topic = self._topics.get(topic_key)
        if topic is None:
            raise PublishFailed(f"publish to {topic_key} not confirmed: no such topic key")
        pending = Pending(encode_message(data, attributes), time.monotonic() + self._timeout)
        topic.publish(pending)
        if pending.message_id is None:
            raise PublishFailed(f"publish to {topic_key} not confirmed: {pending.error}")
        return pending.message_id

    def close(self) -> None:
        with self._channel_lock:
            if self._channel is not None:
                self._channel.close()
            self._channel = self._call = None

    def _send(self, topic: str, batch: list[Pending]) -> None:
        """One publish request for the batch, tried again on transient failures until the
        deadline of the message that waited longest; settles every message of the batch."""
        request = encode_publish_request(topic, [pending.encoded for pending in batch])
        routing = ("x-goog-request-params", f"topic={quote(topic, safe='')}")
        deadline = min(pending.deadline for pending in batch)
        backoff = FIRST_BACKOFF_SECONDS
        while True:
            try:
                ids = self._publish_once(request, routing, deadline)
                if len(ids) != len(batch):
                    raise _Attempt(f"{len(ids)} message ids for {len(batch)} messages", False)
                for pending, message_id in zip(batch, ids, strict=True):
                    pending.message_id = message_id
                return
            except _Attempt as failure:
                if not failure.transient or time.monotonic() + backoff >= deadline:
                    for pending in batch:
                        pending.error = str(failure)
                    return
            time.sleep(backoff)  # backing off from Pub/Sub, within the publish deadline
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    def _publish_once(self, request: bytes, routing: tuple[str, str], deadline: float) -> list[str]:
        tokens = self._endpoint.tokens
        metadata = [routing]
        if tokens is not None:
            metadata.append(("authorization", tokens.authorization(deadline)))
        timeout = deadline - time.monotonic()
        if timeout <= 0:
            raise _Attempt("no time left before the publish deadline", transient=False)
        try:
            response = self._publish_call()(request, timeout=timeout, metadata=metadata)
        except grpc.RpcError as error:
            code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
            if code is grpc.StatusCode.UNAUTHENTICATED and tokens is not None:
                tokens.forget()  # expired or revoked early: fetch another, try again
                raise _Attempt(code.name, transient=True) from error
            raise _Attempt(code.name, transient=code in TRANSIENT) from error
        try:
            return decode_message_ids(response)
        except ValueError as error:
            raise _Attempt(f"unreadable answer: {error}", transient=False) from error

    def _publish_call(self) -> Callable[..., bytes]:
        with self._channel_lock:
            if self._call is None:
                address = self._endpoint.address
                if self._endpoint.secure:
                    tls = grpc.ssl_channel_credentials()
                    self._channel = grpc.secure_channel(address, tls, CHANNEL_OPTIONS)
                else:
                    self._channel = grpc.insecure_channel(address, CHANNEL_OPTIONS)
                # Bytes in, bytes out: the messages are encoded above.
                self._call = self._channel.unary_unary(PUBLISH_METHOD)
            return self._call
