"""`make replay redrive parked`: a body stored truncated is refused, said so, and never
republished; the other payloads named with it are still re-driven."""

import os
import uuid

import pytest
from google.cloud import firestore

from shared.core.events import NOT_JSON, payload_key
from shared.providers.chatapp import STATUS
from tests.integration.conftest import PROCESSING_TIMEOUT, Spy
from tests.python_process import run_python
from tools.local.procs import wait_until
from tools.local.stack import LocalStack
from tools.payloads import chatapp as ca

pytestmark = pytest.mark.integration


def park_whole(db: firestore.Client, body: bytes, kept: int) -> str:
    """A whole payload parked as the recorder parks one, keeping `kept` bytes of its body."""
    parked_id = f"{payload_key(body)}~payload"
    db.collection("parked").document(parked_id).create(
        {
            "category": NOT_JSON,
            "reason": "a test's parked payload",
            "provider": "chatapp",
            "kind": STATUS,
            "payloadKey": payload_key(body),
            "rawBody": body[:kept],
            "rawBodyBytes": len(body),
            "recordTime": firestore.SERVER_TIMESTAMP,
        }
    )
    return parked_id


def test_a_body_stored_truncated_is_refused_and_never_republished(
    stack: LocalStack, db: firestore.Client, spy: Spy
) -> None:
    user = "86139" + str(uuid.uuid4().int)[:8]
    truncated_body = ca.encode([ca.status(f"m{i}", "Sent", user) for i in range(5)])
    truncated = park_whole(db, truncated_body, kept=len(truncated_body) // 2)
    whole_body = ca.encode([ca.status("m-whole", "Sent", user)])
    whole = park_whole(db, whole_body, kept=len(whole_body))
    spy.drain()

    # The truncated one first: had it been published, it would be on the topic before the other.
    result = run_python(
        ["-m", "shared.ops.replay", "redrive", "parked", truncated, whole],
        {**os.environ, **stack.client_environment()},
    )

    assert result.returncode == 1  # an operator's script sees that something was refused
    assert result.stdout.strip() == "re-drove 1 parked payloads"
    kept, stored = len(truncated_body) // 2, len(truncated_body)
    assert result.stderr.strip() == (
        f"refused {truncated}, not republished: its body was stored truncated "
        f"({kept:,} of {stored:,} bytes kept): "
        "republishing it would hand the pipeline a different event"
    )

    def republished_whole() -> bool:
        spy.drain()
        return any(m["data"] == whole_body for m in spy.seen)

    wait_until(republished_whole, PROCESSING_TIMEOUT, "the whole payload on its topic")
    assert not [m for m in spy.seen if m["data"] == truncated_body[:kept]]
    assert "replayTime" not in (db.document(f"parked/{truncated}").get().to_dict() or {})
    assert (db.document(f"parked/{whole}").get().to_dict() or {})["replays"] == 1
