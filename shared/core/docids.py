"""Deterministic Firestore document IDs built from provider identifiers.

Deterministic IDs are what make writes idempotent: the same receipt always lands on the
same document. Provider values are escaped so that no value can form an invalid ID
(`/`, `.`, `..`, `__x__`) or address another document.
"""

from __future__ import annotations

import hashlib
from urllib.parse import quote

MAX_ID_BYTES = 1500
SEPARATOR = "~"


def doc_id(*parts: str) -> str:
    # The separator is escaped inside a part (quote leaves "~" alone), so that no two
    # tuples of parts share an id: ("a~b", "c") and ("a", "b~c") differ.
    escaped = SEPARATOR.join(
        quote(part, safe="-_.@:+=").replace(SEPARATOR, "%7E") for part in parts
    )
    if escaped in {"", ".", ".."} or (escaped.startswith("__") and escaped.endswith("__")):
        escaped = "%" + escaped
    if len(escaped.encode()) > MAX_ID_BYTES:
        return "sha256-" + hashlib.sha256(escaped.encode()).hexdigest()
    return escaped


def compound_id(*parts: str) -> str:
    """One id from several provider values: joined by ":", with "%" and ":" escaped inside a
    part, so that no two tuples of parts share an id (("a:b", "c") and ("a", "b:c") differ)."""
    return ":".join(part.replace("%", "%25").replace(":", "%3A") for part in parts)
