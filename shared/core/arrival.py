"""When an event first arrived: a Pub/Sub attribute that survives the spool and every redrive.

Pub/Sub's publish time is when the event was last published: an event spooled during an
outage and republished by the drainer, or a redriven dead letter, would look newer than
what arrived after it. The webhook (and the queue puller) stamp `receivedTime` once; the
spool, the drainer and the dead-letter redrive pass attributes on unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from shared.core.times import parse_rfc3339

RECEIVED_TIME = "receivedTime"


def stamp(time: datetime) -> str:
    """RFC 3339 in UTC with microseconds: `2026-12-07T19:54:18.123456Z`."""
    return time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def received(attributes: Mapping[str, str], published: datetime) -> datetime:
    """The first arrival the attributes record; the publish time when they record none."""
    value = attributes.get(RECEIVED_TIME)
    stamped = parse_rfc3339(value) if value and value.endswith("Z") else None
    return stamped or published
