"""The request RBM sends: a Pub/Sub-push-shaped JSON envelope around one event (pure).

`{"message": {"data": "<base64 JSON>", "messageId", "publishTime", "attributes"?},
"subscription": "projects/.../subscriptions/..."}`. The event is in `message.data`, and
`X-Goog-Signature` signs its decoded bytes, so the envelope is read before the signature
can be checked. Nothing else in it is signed: the webhook publishes the canonical envelope
of the signed bytes instead, and the normaliser reads both forms, ignoring the rest.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from shared.core.ingress import parse_json


@dataclass(frozen=True)
class Envelope:
    data: bytes  # the event's JSON, decoded: what the signature covers


def parse(body: bytes) -> Envelope | str:
    """The envelope, or why it is not one (a clear message for a 400)."""
    document = parse_json(body)
    message = document.get("message") if isinstance(document, dict) else None
    if not isinstance(message, dict) or not isinstance(message.get("data"), str):
        return "body must be a JSON object with message.data"
    try:
        data = base64.b64decode(message["data"], validate=True)
    except (binascii.Error, ValueError):
        return "message.data is not base64"
    return Envelope(data)


def canonical(data: bytes) -> bytes:
    """The envelope of these signed bytes and nothing else: every copy of one signed event,
    whatever its unsigned attributes, padding or message ids, is this same body."""
    message = {"message": {"data": base64.b64encode(data).decode()}}
    return json.dumps(message, separators=(",", ":")).encode()
