"""WhatsApp's webhook part: Meta's verification handshake (GET) and each signed batch (POST).

- GET `?hub.mode=subscribe&hub.verify_token=T&hub.challenge=C`: 200 with exactly C as plain
  text when T is a configured verify token (every one compared, in constant time); else 403.
- POST: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(raw body, app secret)>`, checked
  against every configured app secret (rotation, several Meta apps) before anything is
  parsed. The body is then handed off unchanged; what it holds decides only its topic.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from shared.core import routing
from shared.core.config import Env
from shared.core.credentials import hub_signature_valid, matches_any
from shared.core.ingress import Incoming, Publish, Reply, parse_json
from shared.core.provider import Receiver
from shared.core.storable import text_problem
from shared.providers.whatsapp import (
    APP_SECRET,
    METHODS,
    NAME,
    UPDATES,
    USER_MESSAGES,
    VERIFY_TOKEN,
    envelope,
    topic_key,
)

SIGNATURE_HEADER = "X-Hub-Signature-256"


@dataclass(frozen=True)
class WhatsAppWebhookSettings:
    app_secrets: tuple[str, ...]
    verify_tokens: tuple[str, ...]


def receiver(env: Env) -> Receiver:
    """On when WHATSAPP_APP_SECRET is set; the handshake needs WHATSAPP_VERIFY_TOKEN."""
    settings = WhatsAppWebhookSettings(env.secrets(APP_SECRET), env.secrets(VERIFY_TOKEN))
    return functools.partial(receive, settings=settings)


def receive(request: Incoming, settings: WhatsAppWebhookSettings) -> Reply | Publish:
    """`GET /whatsapp`: the handshake; `POST /whatsapp`: one signed batch."""
    if request.path:
        return Reply(404, {"error": "no such endpoint"}, reason="no such route")
    if request.method == "GET":
        return handshake(request, settings)
    if request.method != "POST":
        allowed = ", ".join(sorted(METHODS))
        return Reply(405, {"error": f"only {allowed}"}, {"Allow": allowed}, reason="method")
    if not hub_signature_valid(
        request.body, request.headers.get(SIGNATURE_HEADER), settings.app_secrets
    ):
        return _UNSIGNED
    document = parse_json(request.body)
    if not envelope.is_envelope(document):
        return Reply(400, {"error": "body must be a whatsapp_business_account object with entry"})
    changes = list(envelope.changes(document))
    updates = sum(envelope.updates(change) for change in changes)
    if not updates:
        return Reply(200, {"status": "no updates"})
    kind = USER_MESSAGES if any(map(envelope.holds_user_messages, changes)) else UPDATES
    return Publish(
        topic_key=topic_key(kind),
        attributes=routing.attributes(provider=NAME, kind=kind, events=str(updates)),
        accepted={"status": "accepted", "updates": updates},
        refused=Reply(503, {"error": "updates could not be stored, retry later"}),
    )


def handshake(request: Incoming, settings: WhatsAppWebhookSettings) -> Reply:
    """Meta's verification of the callback URL: the challenge back, for a known token only."""
    token = request.query.get("hub.verify_token", "")
    challenge = request.query.get("hub.challenge", "")
    subscribing = request.query.get("hub.mode") == "subscribe"
    # Only text that is Unicode is compared or echoed (a lone surrogate is neither).
    usable = text_problem(token) is None and text_problem(challenge) is None
    if usable and subscribing and challenge and matches_any(token, settings.verify_tokens):
        return Reply(200, challenge)
    return Reply(403, {"error": "verification refused"}, reason="handshake token")


_UNSIGNED = Reply(401, {"error": "missing or invalid X-Hub-Signature-256"}, reason="signature")
