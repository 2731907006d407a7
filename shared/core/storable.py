"""What Firestore would refuse, or what code could trip on, found before anything is written
(pure).

The Firestore client refuses some values before sending them (a lone surrogate in a
string, an empty map key, an integer beyond 64 bits, a time it cannot convert to UTC) and
the server refuses others (an array directly inside an array, maps nested past 20 levels).
Either refusal sinks the whole commit, so each value from outside is checked at the
boundary, and what would be refused is parked with the reason instead. The check walks
the value with a stack of its own, so no depth an attacker chooses can exhaust Python's.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_MAP_DEPTH = 20  # Firestore's limit on nested maps
# Maps nested in a value from outside (a Chat App element, a media message's JSON) before
# anything reads it: what is stored of it sits at most three levels below a document's
# root, so what passes this is within Firestore's 20 too.
MAX_INPUT_DEPTH = 16
MAX_IDENTIFIER_CHARS = 500  # document ids hold 1,500 bytes; a provider's id is far shorter


def value_problem(value: Any, max_map_depth: int = MAX_MAP_DEPTH) -> str | None:
    """Why Firestore would refuse to store this value (or the change stream to write it as
    JSON), or None when it can."""
    stack: list[tuple[Any, int, bool]] = [(value, 0, False)]  # value, maps around it, in array
    while stack:
        value, depth, in_array = stack.pop()
        if type(value) in _PLAIN_SCALARS:  # most values: no need to ask any further
            continue
        if isinstance(value, Mapping):
            if depth >= max_map_depth:
                return f"maps nested deeper than {max_map_depth} levels"
            for key, item in value.items():
                if not isinstance(key, str) or not key:
                    return "an empty or non-text map key"
                problem = text_problem(key)
                if problem:
                    return problem
                stack.append((item, depth + 1, False))
        elif isinstance(value, list | tuple):
            if in_array:
                return "an array directly inside an array"
            stack.extend((item, depth, True) for item in value)
        else:
            problem = _scalar_problem(value)
            if problem:
                return problem
    return None


_PLAIN_SCALARS = frozenset({type(None), bool, bytes})


def _scalar_problem(value: Any) -> str | None:
    if value is None or isinstance(value, bool | bytes):
        return None
    if isinstance(value, float):  # Python's JSON reads NaN and Infinity; JSON has neither,
        # so no consumer of the change stream could read them back
        return None if math.isfinite(value) else "a number JSON does not have (NaN, Infinity)"
    if isinstance(value, int):
        return None if INT64_MIN <= value <= INT64_MAX else "an integer beyond 64 bits"
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, datetime):
        return time_problem(value)
    return f"a value of type {type(value).__name__}"


def time_problem(time: datetime) -> str | None:
    """Why Firestore cannot store this time (its range is years 1 to 9999 in UTC), or None."""
    try:
        time.astimezone(UTC) if time.tzinfo else time.replace(tzinfo=UTC)
    except OverflowError:
        return "a time outside years 1 to 9999 (UTC)"
    return None


def text_problem(text: str) -> str | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "text that is not valid Unicode (a lone surrogate)"
    return None


def readable(text: str) -> str:
    """The text with any lone surrogate written as its escape: storable, and still telling."""
    return text.encode("utf-8", "backslashreplace").decode()


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
