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

SHA512_BYTES = hashlib.sha512().digest_size


def matches_any(offered: str, secrets: Iterable[str]) -> bool:
    """Whether `offered` is one of the secrets; every one is compared, in constant time."""
    matches = [hmac.compare_digest(offered.encode(), secret.encode()) for secret in secrets]
    return bool(offered) and any(matches)


def hmac_sha512(data: bytes, key: str) -> bytes:
    return hmac.new(key.encode(), data, hashlib.sha512).digest()


def hmac_sha512_header(data: bytes, key: str) -> str:
    """base64(HMAC-SHA512(key, data)): what Google sends in X-Goog-Signature."""
    return base64.b64encode(hmac_sha512(data, key)).decode()


def hmac_sha512_valid(data: bytes, header: str | None, keys: Iterable[str]) -> bool:
    """base64(HMAC-SHA512(key, data)) against every configured key, in constant time."""
    if not header:
        return False
    try:
        offered = base64.b64decode(header.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(offered) != SHA512_BYTES:
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
