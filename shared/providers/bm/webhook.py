"""Business Messages' webhook half: the verification handshake and the request signature.

Header `X-Goog-Signature`: base64 of HMAC-SHA512 over the raw request body, keyed with the
partner key (older guide, every sample) or the webhook's client token (newer guide); both
may be configured, and several of each so keys can rotate.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

from shared.core import routing
from shared.core.config import Env
from shared.core.credentials import handshake, hmac_sha512_valid, matches_any
from shared.core.ingress import Incoming, Publish, Reply, parse_json
from shared.core.provider import Receiver
from shared.providers.bm import NAME, kind_of, topic_key

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Goog-Signature"


@dataclass(frozen=True)
class Config:
    signing_keys: tuple[str, ...]
    client_token: str


def receiver(env: Env) -> Receiver:
    """Business Messages is on when its keys are configured; then both are required."""
    config = Config(env.secrets("BM_SIGNING_KEY"), env.required("BM_CLIENT_TOKEN"))
    return functools.partial(receive, config=config)


def receive(request: Incoming, config: Config) -> Reply | Publish:
    """Answers the handshake, refuses what is not signed, and hands the rest off unchanged."""
    document = parse_json(request.body)
    shake = handshake(document)
    if shake is not None:
        if not matches_any(shake.client_token, [config.client_token]):
            log.warning("refused a webhook handshake with a wrong clientToken")
            return Reply(403, {"error": "clientToken does not match"})
        log.info("answered the webhook verification handshake")
        return Reply(200, shake.secret)
    if not hmac_sha512_valid(
        request.body, request.headers.get(SIGNATURE_HEADER), config.signing_keys
    ):
        log.warning("rejected a request without a valid signature", extra={"status": 401})
        return Reply(401, {"error": "missing or invalid X-Goog-Signature"})
    description = describe(document)
    return Publish(
        topic_key=description.topic_key,
        attributes=description.attributes,
        accepted={"status": "accepted"},
        refused=Reply(503, {"error": "event could not be stored, retry later"}),
    )


def describe(document: Any) -> routing.Description:
    kind = kind_of(document)
    fields = document if isinstance(document, dict) else {}
    return routing.Description(
        kind=kind,
        topic_key=topic_key(kind),
        attributes=routing.attributes(
            provider=NAME,
            kind=kind,
            conversationId=fields.get("conversationId"),
            requestId=fields.get("requestId"),
        ),
    )
