"""RBM's webhook part: the verification handshake and the signature of each event.

`X-Goog-Signature` is base64 of HMAC-SHA512 keyed with the webhook's clientToken over the
base64-decoded `message.data` (never over the raw body, unlike Business Messages). Several
client tokens may be configured, so one can rotate. Google treats any answer but exactly
200 as a failure and retries for 7 days.

Only signed bytes decide anything: a header that cannot be a signature is refused before
the body is parsed, the body is bounded by the provider's MAX_BODY_BYTES, and what is
published is the canonical envelope of the signed event (`envelope.canonical`), never the
unsigned attributes, ids or padding around it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from shared.core import routing
from shared.core.config import Env
from shared.core.credentials import (
    MAX_HANDSHAKE_BYTES,
    handshake_reply,
    hmac_sha512_valid,
    sha512_signature,
)
from shared.core.ingress import Incoming, Publish, Reply, parse_json
from shared.core.provider import Receiver
from shared.providers.rbm import NAME, TYPING, envelope, kind_of, topic_key

SIGNATURE_HEADER = "X-Goog-Signature"


@dataclass(frozen=True)
class RbmWebhookSettings:
    client_tokens: tuple[str, ...]  # the handshake's tokens, and the signature's keys


def receiver(env: Env) -> Receiver:
    settings = RbmWebhookSettings(env.secrets("RBM_CLIENT_TOKEN"))
    return functools.partial(receive, settings=settings)


def receive(request: Incoming, settings: RbmWebhookSettings) -> Reply | Publish:
    """`POST /rbm`: the handshake, or one signed event handed off in its canonical envelope."""
    if request.path:
        return Reply(404, {"error": "no such endpoint"}, reason="no such route")
    signature = request.headers.get(SIGNATURE_HEADER)
    if signature is None:  # only the handshake comes unsigned; only a small body is read
        small = len(request.body) <= MAX_HANDSHAKE_BYTES
        shake = handshake_reply(parse_json(request.body), settings.client_tokens) if small else None
        return shake or _UNSIGNED
    if sha512_signature(signature) is None:  # refused before the body is parsed
        return _UNSIGNED
    parsed = envelope.parse(request.body)
    if isinstance(parsed, str):
        return Reply(400, {"error": parsed}, reason="envelope")
    if not hmac_sha512_valid(parsed.data, signature, settings.client_tokens):
        return _UNSIGNED
    kind = kind_of(parse_json(parsed.data))
    if kind == TYPING:  # a typing indicator is stale in seconds: acknowledged, never stored
        return Reply(200, {"status": "typing indicator acknowledged, not stored"})
    return Publish(
        topic_key=topic_key(kind),
        attributes=routing.attributes(provider=NAME, kind=kind),
        accepted={"status": "accepted"},
        refused=Reply(503, {"error": "event could not be stored, retry later"}),
        body=envelope.canonical(parsed.data),
    )


_UNSIGNED = Reply(401, {"error": "missing or invalid X-Goog-Signature"}, reason="signature")
