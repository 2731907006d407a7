"""What Firestore would refuse, found before anything is written (pure).

The Firestore client refuses some values before sending them (a lone surrogate in a
string, an empty map key, an integer beyond 64 bits) and the server refuses others (an
array directly inside an array, maps nested past 20 levels). Either refusal sinks the
whole commit, so each value is checked while a payload is normalised, and what would be
refused is parked with the reason instead.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import Any

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_MAP_DEPTH = 20  # Firestore's limit on nested maps
MAX_IDENTIFIER_CHARS = 500  # document ids hold 1,500 bytes; a provider's id is far shorter


def value_problem(value: Any, depth: int = 0, in_array: bool = False) -> str | None:
    """Why Firestore would refuse to store this value, or None when it can."""
    if value is None or isinstance(value, bool | float | bytes | datetime):
        return None
    if isinstance(value, int):
        return None if INT64_MIN <= value <= INT64_MAX else "an integer beyond 64 bits"
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, Mapping):
        if depth >= MAX_MAP_DEPTH:
            return f"maps nested deeper than {MAX_MAP_DEPTH} levels"
        for key, item in value.items():
            if not isinstance(key, str) or not key:
                return "an empty or non-text map key"
            problem = text_problem(key) or value_problem(item, depth + 1)
            if problem:
                return problem
        return None
    if isinstance(value, list | tuple):
        if in_array:
            return "an array directly inside an array"
        return next(filter(None, (value_problem(v, depth, in_array=True) for v in value)), None)
    return f"a value of type {type(value).__name__}"


def text_problem(text: str) -> str | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "text that is not valid Unicode (a lone surrogate)"
    return None


def identifier_problem(identifier: str) -> str | None:
    """Why a provider's id cannot name a document or an API path, or None when it can."""
    if identifier.strip() in ("", ".", ".."):
        return f"the identifier {identifier!r} names no document"
    if len(identifier) > MAX_IDENTIFIER_CHARS:
        return f"an identifier longer than {MAX_IDENTIFIER_CHARS} characters"
    if any(unicodedata.category(c) == "Cc" for c in identifier):
        return "an identifier with a control character"
    return text_problem(identifier)


def ascii_digits(text: str) -> str | None:
    """A number's digits in ASCII (fullwidth or Arabic-Indic digits are the same number),
    without `+`, spaces or dashes; None when it is not a number."""
    stripped = text.strip().removeprefix("+").replace(" ", "").replace("-", "")
    if not stripped or not all(unicodedata.decimal(c, None) is not None for c in stripped):
        return None
    return "".join(str(unicodedata.decimal(c)) for c in stripped)
