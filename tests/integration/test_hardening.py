"""The security review's findings, on the real stack: what a token holder or a provider quirk
could do before, and what happens now."""

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from google.cloud import firestore
from google.cloud.pubsub_v1 import PublisherClient

from shared.adapters.store import FirestoreRecorder
from shared.core.config import DEFAULT_DEAD_LETTER
from shared.core.events import Payload, UserMessage, payload_key, raw_pieces
from shared.ops.replay import Replay
from shared.providers.chatapp import SCALE
from shared.providers.chatapp.normalise import conversation_id as chatapp_conversation
from tests.integration.conftest import BODY_LIMIT, PROCESSING_TIMEOUT, documents, recorded
from tools.local.procs import ManagedProcess, free_port, wait_until
from tools.local.stack import LocalStack
from tools.payloads import bm as bm_payloads
from tools.payloads import chatapp as ca
from tools.topology import WEBHOOK

pytestmark = pytest.mark.integration


def new_user() -> str:
    return "86139" + str(uuid.uuid4().int)[:8]


def parked_for(db: firestore.Client, raw: bytes) -> dict[str, dict[str, Any]]:
    key = payload_key(raw)
    query = db.collection("parked").where(filter=firestore.FieldFilter("payloadKey", "==", key))
    return {snapshot.id: snapshot.to_dict() or {} for snapshot in query.stream()}


def messages_of(db: firestore.Client, user: str) -> dict[str, dict[str, Any]]:
    cid = chatapp_conversation(ca.BUSINESS, user)
    return documents(db.collection(f"conversations/{cid}/messages"))


def unstorable_batch(user: str) -> list[dict[str, Any]]:
    """Values the Firestore client refuses before sending, beside valid messages."""
    image = ca.inbound_image("x", user, "https://chatapp.example/a.jpg")
    return [
        ca.inbound_text("ok-1", user, "hello"),
        ca.inbound_text("surrogate", user, "\ud800"),
        {**image, "MessageId": "empty-key", "Message": '{"": 1}'},
        {**image, "MessageId": "huge-int", "Message": '{"size": 99999999999999999999}'},
        ca.inbound_text("ok-2", user, "bye"),
    ]


def test_one_unstorable_element_is_parked_and_the_batch_recorded_on_first_delivery(
    stack: LocalStack, db: firestore.Client
) -> None:
    user = new_user()
    response = ca.push(stack.chatapp_url("inbound"), ca.encode(unstorable_batch(user)))
    assert response.json()["code"] == 0
    [entry] = recorded(stack, response)  # logged once: recorded, not failed and redelivered
    assert (entry["userMessages"], entry["parked"]) == (2, 3)
    assert set(messages_of(db, user)) == {"ok-1", "ok-2"}
    [parked] = parked_for(db, response.request.body).values()  # type: ignore[arg-type]
    reasons = {e["index"]: e["reason"] for e in parked["elements"]}
    assert (parked["category"], parked["setAside"]) == ("UNSTORABLE", 3)
    assert {e["category"] for e in parked["elements"]} == {"UNSTORABLE"}
    assert sorted(reasons) == [1, 2, 3]
    assert "surrogate" in reasons[1]
    assert "map key" in reasons[2]
    assert "64 bits" in reasons[3]
    assert parked["rawBody"] == response.request.body


def test_what_the_client_refuses_at_commit_is_parked_as_firestore_refusing_it(
    db: firestore.Client,
) -> None:
    """The backstop, for a value the screening would not know: here one put past it."""
    raw = f"backstop-{uuid.uuid4().hex}".encode()
    cid = f"conv-{uuid.uuid4().hex[:8]}"
    unscreened = Payload(
        provider="chatapp",
        kind="ChatAppInbound",
        key=payload_key(raw),
        scale=SCALE,
        conversation_id=cid,
        user_messages=(UserMessage("m1", "message", None, {"text": "\udfff"}),),
        raw=raw,
    )
    recorded_ = FirestoreRecorder(db).record([unscreened])
    assert recorded_.commits == 1
    [parked] = parked_for(db, raw).values()
    assert parked["category"] == "UNSTORABLE"
    assert parked["reason"].startswith("Firestore refused it:")
    assert parked["rawBody"] == raw
    assert documents(db.collection(f"conversations/{cid}/messages")) == {}


def test_a_dead_lettered_batch_of_old_is_replayed_into_records_and_parked_elements(
    stack: LocalStack, db: firestore.Client, replay: Replay
) -> None:
    """Before the screening, such a batch was answered 200, never recorded, dead-lettered."""
    user = new_user()
    raw = ca.encode(unstorable_batch(user))
    publisher = PublisherClient()
    topic = publisher.topic_path(stack.settings.project, DEFAULT_DEAD_LETTER)
    attributes = {"provider": "chatapp", "kind": "ChatAppInbound", "events": "5"}
    dead = publisher.publish(topic, raw, **attributes).result(timeout=30)
    assert replay.redrive_dead_letters([dead]) == 1
    wait_until(lambda: len(messages_of(db, user)) == 2, PROCESSING_TIMEOUT, "the replayed batch")
    [parked] = parked_for(db, raw).values()
    assert parked["setAside"] == 3
    assert dead not in {m.message_id for m in replay.dead_letters()}


def test_a_request_of_a_megabyte_of_zeros_is_one_parked_document_kept_whole(
    stack: LocalStack, db: firestore.Client
) -> None:
    limit = BODY_LIMIT
    zeros = b"[" + b"0," * (limit // 2 - 2) + b"0]"
    elements = limit // 2 - 1
    response = ca.push(stack.chatapp_url("status"), zeros)
    assert response.json()["code"] == 0
    assert (response.json()["accepted"], response.json()["setAside"]) == (0, elements)
    [entry] = recorded(stack, response)
    pieces = len(raw_pieces(zeros))
    assert (entry["writes"], entry["commits"]) == (pieces, 1)  # one document, in its pieces
    [(parked_id, parked)] = parked_for(db, zeros).items()
    assert (parked["category"], parked["setAside"]) == ("REJECTED_RECEIPT", elements)
    assert (parked["rawBodyBytes"], parked.get("rawBodyPieces", 1)) == (len(zeros), pieces)
    rest = documents(db.collection(f"parked/{parked_id}/pieces"))
    body = parked["rawBody"] + b"".join(rest[str(n)]["rawBody"] for n in range(1, pieces))
    assert body == zeros


def test_the_same_message_twice_in_one_batch_is_recorded_once(
    stack: LocalStack, db: firestore.Client
) -> None:
    user = new_user()
    message = ca.inbound_text("mo-twice", user, "hello")
    response = ca.push(stack.chatapp_url("inbound"), ca.encode([message, message]))
    [entry] = recorded(stack, response)
    assert (entry["writes"], entry["parked"]) == (2, 0)  # the message and its conversation
    assert set(messages_of(db, user)) == {"mo-twice"}
    assert parked_for(db, response.request.body) == {}  # type: ignore[arg-type]


def test_refusals_cannot_flood_the_logs(stack: LocalStack) -> None:
    since = len(stack.log_entries("webhook"))
    body = bm_payloads.encode(bm_payloads.user_status("conv-flood", isTyping=True))
    started = datetime.now(UTC)
    with requests.Session() as session:
        for _ in range(100):
            assert (
                bm_payloads.post_signed(stack.webhook_url, body, "forged", session).status_code
                == 401
            )
    elapsed = (datetime.now(UTC) - started).total_seconds()

    def refusals() -> list[dict[str, Any]]:
        entries = stack.log_entries("webhook")[since:]
        return [e for e in entries if e.get("message") == "refused a request"]

    logged = len(refusals())
    # At most a burst of 20 (less what earlier refusals in this process used), then one a second.
    assert 1 <= logged <= 20 + elapsed + 1
    assert all(e["reason"] == "signature" and e["status"] == 401 for e in refusals())

    def all_hundred_accounted_for() -> bool:
        # A logged line counts the refusals suppressed since the one before it, so the last
        # of the hundred are counted by the first line logged after them: keep refusing.
        assert bm_payloads.post_signed(stack.webhook_url, body, "forged").status_code == 401
        return sum(int(e.get("suppressed", 0)) for e in refusals()) + len(refusals()) >= 101

    wait_until(all_hundred_accounted_for, 10, "a refusal line counting the suppressed ones")
    assert any("suppressed" in e for e in refusals())


@pytest.fixture(scope="module")
def guarded_webhook(stack: LocalStack) -> Iterator[str]:
    """A webhook behind an external load balancer (two trusted hops) with an allow-list."""
    port = free_port()
    process: ManagedProcess = stack.function_process(
        WEBHOOK,
        port,
        {"CHATAPP_ALLOWED_IPS": "203.0.113.0/24", "TRUSTED_PROXY_HOPS": "2"},
    )
    process.start(f"http://127.0.0.1:{port}/")
    yield f"http://127.0.0.1:{port}"
    process.stop()


def test_the_allow_list_comes_first_and_answers_as_a_wrong_token_does(
    stack: LocalStack, guarded_webhook: str
) -> None:
    body = ca.encode([ca.status("m1", "Sent", new_user())])
    token = stack.chatapp_url("status").rsplit("/", 1)[1]

    def push(token: str, forwarded: str) -> requests.Response:
        headers = {"Content-Type": "application/json", "X-Forwarded-For": forwarded}
        url = f"{guarded_webhook}/chatapp/status/{token}"
        return requests.post(url, data=body, headers=headers, timeout=30)

    # The client's own claim comes first; the load balancer then our front end append theirs.
    inside = push(token, "198.51.100.7, 203.0.113.5, 10.0.0.1")
    assert inside.status_code == 200, inside.text
    outside_right_token = push(token, "203.0.113.5, 198.51.100.7, 10.0.0.1")
    outside_wrong_token = push("guess", "203.0.113.5, 198.51.100.7, 10.0.0.1")
    inside_wrong_token = push("guess", "198.51.100.7, 203.0.113.5, 10.0.0.1")
    answers = {
        (r.status_code, r.text)
        for r in (outside_right_token, outside_wrong_token, inside_wrong_token)
    }
    [(status, text)] = answers  # the same bytes, whichever check failed
    assert (status, json.loads(text)) == (401, {"code": 401, "msg": "unknown callback token"})
    too_few_hops = push(token, "203.0.113.5")  # not through both proxies: no address to trust
    assert too_few_hops.status_code == 401
