"""The webhook's request handling: bounds, handshake, signature, hand-off.

An event is acknowledged (2xx) only once Pub/Sub has confirmed the publish; everything
authenticated is published unchanged, whatever its kind, so nothing is ever dropped here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from flask import Request, Response, jsonify

from shared import routing
from shared.config import Env
from shared.providers import bm
from shared.publisher import PublishFailed

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_PUBLISH_TIMEOUT_SECONDS = 10.0


class Publisher(Protocol):
    def publish(self, topic_key: str, data: bytes, attributes: Mapping[str, str]) -> str: ...


@dataclass(frozen=True)
class WebhookConfig:
    project: str
    signing_keys: tuple[str, ...]
    client_token: str
    topics: Mapping[str, str]
    max_body_bytes: int
    publish_timeout: float

    @classmethod
    def from_env(cls, env: Env | None = None) -> WebhookConfig:
        env = env or Env()
        config = cls(
            project=env.project(),
            signing_keys=env.secrets("BM_SIGNING_KEY"),
            client_token=env.required("BM_CLIENT_TOKEN"),
            topics=env.topics(),
            max_body_bytes=int(env.number("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, minimum=1)),
            publish_timeout=env.number(
                "PUBLISH_TIMEOUT_SECONDS", DEFAULT_PUBLISH_TIMEOUT_SECONDS, minimum=0.1
            ),
        )
        env.check("webhook")
        return config


class Webhook:
    def __init__(self, config: WebhookConfig, publisher: Publisher) -> None:
        self._config = config
        self._publisher = publisher

    def __call__(self, request: Request) -> Response:
        if request.method != "POST":
            return _error(405, "only POST is accepted", Allow="POST")
        body = read_bounded(request, self._config.max_body_bytes)
        if body is None:
            return _error(413, f"body exceeds {self._config.max_body_bytes} bytes")
        document = bm.parse_json(body)
        handshake = bm.handshake(document)
        if handshake is not None:
            return self._answer_handshake(handshake)
        signature = request.headers.get(bm.SIGNATURE_HEADER)
        if not bm.signature_valid(body, signature, self._config.signing_keys):
            log.warning("rejected a request without a valid signature", extra={"status": 401})
            return _error(401, "missing or invalid X-Goog-Signature")
        return self._hand_off(body, bm.describe(document))

    def _answer_handshake(self, handshake: bm.Handshake) -> Response:
        if not bm.token_matches(handshake.client_token, self._config.client_token):
            log.warning("refused a webhook handshake with a wrong clientToken")
            return _error(403, "clientToken does not match")
        log.info("answered the webhook verification handshake")
        return Response(handshake.secret, status=200, mimetype="text/plain")

    def _hand_off(self, body: bytes, description: routing.Description) -> Response:
        fields = {"kind": description.kind, **description.attributes}
        try:
            message_id = self._publisher.publish(
                description.topic_key, body, description.attributes
            )
        except PublishFailed as failure:
            log.error("event not acknowledged: %s", failure, extra=fields)
            return _error(503, "event could not be stored, retry later")
        log.info("event published", extra={**fields, "pubsubMessageId": message_id})
        return jsonify(status="accepted", messageId=message_id)


def read_bounded(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is over the limit; never reads more than limit + 1 bytes."""
    if request.content_length is not None and request.content_length > limit:
        return None
    body: bytes = request.stream.read(limit + 1)
    return None if len(body) > limit else body


def _error(status: int, message: str, **headers: str) -> Response:
    response = jsonify(error=message)
    response.status_code = status
    response.headers.update(headers)
    return response
