"""Which topic an event goes to.

Routing is by topic, not by subscription filter, because the Pub/Sub emulator ignores
filters: the same topology then behaves identically locally and on Google Cloud.

- EVENTS: everything the pipeline only persists.
- READABLE: user messages that also get the agent's READ receipt. Both the recorder and
  the READ-receipt sender subscribe here, so the sender is invoked only for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeGuard

EVENTS = "events"
READABLE = "readable"

MAX_ATTRIBUTE_BYTES = 1024  # Pub/Sub's limit on one attribute value


@dataclass(frozen=True)
class Description:
    """What the webhook learns of an authenticated body before publishing it unchanged."""

    kind: str
    topic_key: str
    attributes: Mapping[str, str]


def attributes(**values: object) -> dict[str, str]:
    """Attributes with only the values Pub/Sub accepts: a usable string within the limit.

    A value that cannot be an attribute is dropped, never the event: the subscriber reads
    the same fields from the body.
    """
    return {name: value for name, value in values.items() if _usable(value)}


def _usable(value: object) -> TypeGuard[str]:
    if not isinstance(value, str) or not value:
        return False
    try:
        return len(value.encode()) <= MAX_ATTRIBUTE_BYTES
    except UnicodeEncodeError:  # a lone surrogate, which JSON allows
        return False
