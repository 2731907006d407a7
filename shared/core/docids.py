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


def compound_id(*parts: str, separator: str = ":") -> str:
    """One id of several parts (`chatapp:{business}:{user}`), distinct for distinct parts.

    `%` and the separator are percent-escaped inside a part, so ("page:1", "2") and
    ("page", "1:2") differ; a part with neither stays as it is, so ids of plain parts
    (every id stored so far: phone numbers, agent ids) keep their documents.
    """
    escaped_separator = "".join(f"%{byte:02X}" for byte in separator.encode())
    return separator.join(
        part.replace("%", "%25").replace(separator, escaped_separator) for part in parts
    )
