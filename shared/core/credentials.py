"""Checking what providers authenticate with: shared secrets, HMAC signatures, handshakes.

Every comparison is constant-time, and every configured secret is tried, so secrets can
rotate (several are configured while the platform switches from the old to the new one).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shared.core.ingress import Reply
from shared.core.storable import text_problem

SHA512_BYTES = hashlib.sha512().digest_size
# An unsigned body is parsed only when it is this small: only a handshake may come unsigned,
# and a handshake is two short strings. Anything else is refused before any parsing.
MAX_HANDSHAKE_BYTES = 4096


def matches_any(offered: str, secrets: Iterable[str]) -> bool:
    """Whether `offered` is one of the secrets; every one is compared, in constant time.

    Any string may be offered (JSON lets a client send a lone surrogate such as "\\ud800"):
    it is compared as bytes that always encode, so it is a mismatch, never an error.
    """
    matches = [hmac.compare_digest(_bytes(offered), _bytes(secret)) for secret in secrets]
    return bool(offered) and any(matches)


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def hmac_sha512(data: bytes, key: str) -> bytes:
    return hmac.new(key.encode(), data, hashlib.sha512).digest()


def hmac_sha512_header(data: bytes, key: str) -> str:
    """base64(HMAC-SHA512(key, data)): what Google sends in X-Goog-Signature."""
    return base64.b64encode(hmac_sha512(data, key)).decode()


def sha512_signature(header: str | None) -> bytes | None:
    """The digest a signature header offers, or None unless it is base64 of exactly 64 bytes:
    cheap enough to check before anything else is read."""
    if not header:
        return None
    try:
        offered = base64.b64decode(header.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return offered if len(offered) == SHA512_BYTES else None


def hmac_sha512_valid(data: bytes, header: str | None, keys: Iterable[str]) -> bool:
    """base64(HMAC-SHA512(key, data)) against every configured key, in constant time."""
    offered = sha512_signature(header)
    if offered is None:
        return False
    matches = [hmac.compare_digest(offered, hmac_sha512(data, key)) for key in keys]
    return any(matches)


@dataclass(frozen=True)
class Handshake:
    client_token: str
    secret: str


def handshake(document: Any) -> Handshake | None:
    """Google's webhook verification request: a JSON object of exactly clientToken and secret."""
    if (
        isinstance(document, dict)
        and document.keys() == {"clientToken", "secret"}
        and isinstance(document["clientToken"], str)
        and isinstance(document["secret"], str)
    ):
        return Handshake(document["clientToken"], document["secret"])
    return None


def handshake_reply(document: Any, client_tokens: Iterable[str]) -> Reply | None:
    """The answer to Google's webhook verification, or None when the document is none:
    200 with exactly the secret as plain text for a configured token, 403 otherwise."""
    shake = handshake(document)
    if shake is None:
        return None
    if not matches_any(shake.client_token, client_tokens):
        return Reply(403, {"error": "clientToken does not match"}, reason="handshake token")
    if text_problem(shake.secret) is not None:  # no answer can echo it (a lone surrogate)
        return Reply(400, {"error": "secret is not text"}, reason="handshake secret")
    return Reply(200, shake.secret)


HUB_SIGNATURE_PREFIX = "sha256="
_HUB_SIGNATURE_CHARS = len(HUB_SIGNATURE_PREFIX) + 2 * hashlib.sha256().digest_size
_HEX_DIGITS = frozenset("0123456789abcdef")


def hub_signature(data: bytes, secret: str) -> str:
    """`sha256=` + lowercase hex HMAC-SHA256(secret, data): how Meta signs a webhook's raw body
    (X-Hub-Signature-256, for WhatsApp, Messenger and Instagram alike)."""
    return HUB_SIGNATURE_PREFIX + hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def hub_signature_valid(data: bytes, header: str | None, secrets: Iterable[str]) -> bool:
    """The header against every secret, in constant time. A header of any other shape is
    refused before any HMAC is computed."""
    offered = (header or "").lower()
    digits = offered[len(HUB_SIGNATURE_PREFIX) :]
    if (
        len(offered) != _HUB_SIGNATURE_CHARS
        or not offered.startswith(HUB_SIGNATURE_PREFIX)
        or not _HEX_DIGITS.issuperset(digits)
    ):
        return False
    matches = [hmac.compare_digest(offered, hub_signature(data, secret)) for secret in secrets]
    return any(matches)
