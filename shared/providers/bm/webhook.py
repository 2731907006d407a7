"""Business Messages' webhook part: the verification handshake and the request signature.

Header `X-Goog-Signature`: base64 of HMAC-SHA512 over the raw request body, keyed with the
partner key (older guide, every sample) or the webhook's client token (newer guide); both
may be configured, and several of each so keys can rotate. A sign-in is published with its
OAuth code redacted (`redaction`), once the signature over the raw body has been checked.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from shared.core import routing
from shared.core.config import Env
from shared.core.credentials import MAX_HANDSHAKE_BYTES, handshake_reply, hmac_sha512_valid
from shared.core.ingress import Incoming, Publish, Reply, parse_json
from shared.core.provider import Receiver
from shared.providers.bm import NAME, kind_of, topic_key
from shared.providers.bm.redaction import redacted

SIGNATURE_HEADER = "X-Goog-Signature"


@dataclass(frozen=True)
class BmWebhookSettings:
    signing_keys: tuple[str, ...]
    client_token: str


def receiver(env: Env) -> Receiver:
    """Business Messages is on when its keys are configured; then both are required."""
    settings = BmWebhookSettings(env.secrets("BM_SIGNING_KEY"), env.required("BM_CLIENT_TOKEN"))
    return functools.partial(receive, settings=settings)


def receive(request: Incoming, settings: BmWebhookSettings) -> Reply | Publish:
    """Answers the handshake, refuses what is not signed, and hands the rest off unchanged
    (but for a sign-in's OAuth code, redacted).

    A signed body's signature is checked on the raw bytes before anything parses it; an
    unsigned one is parsed only when small enough to be the handshake.
    """
    signature = request.headers.get(SIGNATURE_HEADER)
    if signature is None:
        small = len(request.body) <= MAX_HANDSHAKE_BYTES
        shake = (
            handshake_reply(parse_json(request.body), [settings.client_token]) if small else None
        )
        return shake or _UNSIGNED
    if not hmac_sha512_valid(request.body, signature, settings.signing_keys):
        return _UNSIGNED
    document = parse_json(request.body)
    shake = handshake_reply(document, [settings.client_token])
    if shake is not None:
        return shake
    description = describe(document)
    return Publish(
        topic_key=description.topic_key,
        attributes=description.attributes,
        accepted={"status": "accepted"},
        refused=Reply(503, {"error": "event could not be stored, retry later"}),
        body=redacted(document),
    )


_UNSIGNED = Reply(401, {"error": "missing or invalid X-Goog-Signature"}, reason="signature")


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
