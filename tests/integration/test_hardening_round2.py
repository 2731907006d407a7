"""Issue 21, second round, on the real stack (HTTP in, Firestore and Pub/Sub read back): no
input yields a 500, deep nesting is parked and never poison, valid events are always
recorded, and times outside Firestore's range are parked at the boundary."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from google.cloud import firestore

from shared.core.events import payload_key
from shared.ops.replay import Replay
from shared.providers import chatapp
from tests.integration.conftest import PROCESSING_TIMEOUT, documents, recorded, send
from tests.integration.test_chatapp_queues import (
    STATUS,
    Rig,
    receipts_of,
    rig,  # noqa: F401 -- a fixture
)
from tests.integration.test_hardening import messages_of, new_user, parked_for
from tools.local.procs import ManagedProcess, free_port, wait_until
from tools.local.stack import LocalStack
from tools.payloads import bm as bm_payloads
from tools.payloads import chatapp as ca
from tools.payloads import rbm
from tools.topology import WEBHOOK

pytestmark = pytest.mark.integration


def body_of(response: requests.Response) -> bytes:
    body = response.request.body
    assert isinstance(body, bytes)
    return body


def with_nested(element: dict[str, Any], levels: int) -> str:
    """The element as JSON with a field holding maps nested `levels` deep (written as text:
    json.dumps would run out of stack before the pipeline does)."""
    text = json.dumps({**element, "Extra": 0})
    return text.replace('"Extra": 0', '"Extra": ' + '{"a":' * levels + "1" + "}" * levels)


def test_a_lone_surrogate_in_an_image_caption_sets_aside_that_element_only(
    stack: LocalStack, db: firestore.Client
) -> None:
    user = new_user()
    image = ca.inbound_image("bad-image", user, "https://chatapp.example/a.jpg")
    # In the Message string itself: JSON allows it, str.encode() refuses it (a 500 before).
    image["Message"] = '{"url": "https://chatapp.example/a.jpg", "caption": "\ud800"}'
    batch = [ca.inbound_text("ok-1", user, "hello"), image, ca.inbound_text("ok-2", user, "bye")]
    response = ca.push(stack.chatapp_url("inbound"), ca.encode(batch))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["code"], answer["accepted"], answer["setAside"]) == (0, 2, 1)
    [entry] = recorded(stack, response)
    assert (entry["userMessages"], entry["parked"]) == (2, 1)
    assert set(messages_of(db, user)) == {"ok-1", "ok-2"}
    [(parked_id, parked)] = parked_for(db, body_of(response)).items()
    assert parked_id.endswith("~payload")
    assert (parked["category"], parked["setAside"]) == ("UNSTORABLE", 1)
    [element] = parked["elements"]
    assert (element["index"], element["category"]) == (1, "UNSTORABLE")
    assert "lone surrogate" in element["reason"]
    assert parked["rawBody"] == body_of(response)


def test_an_element_nested_960_deep_is_parked_and_its_redrive_re_parks_into_the_same_document(
    stack: LocalStack, db: firestore.Client, replay: Replay
) -> None:
    user = new_user()
    deep = with_nested(ca.status("deep", "Sent", user), 960)
    valid = [
        json.dumps(ca.status("wa-1", "Sent", user)),
        json.dumps(ca.status("wa-2", "Read", user)),
    ]
    body = f"[{valid[0]}, {deep}, {valid[1]}]".encode()
    response = ca.push(stack.chatapp_url("status"), body)
    assert response.status_code == 200, response.text
    assert (response.json()["accepted"], response.json()["setAside"]) == (2, 1)
    [entry] = recorded(stack, response)  # recorded on the first delivery: no dead letter
    assert (entry["receipts"], entry["parked"]) == (2, 1)
    assert set(receipts_of(db, user)) == {"wa-1~Sent", "wa-2~Read"}
    [(parked_id, parked)] = parked_for(db, body_of(response)).items()
    assert "maps nested deeper than 16 levels" in parked["elements"][0]["reason"]

    since = len(stack.log_entries("record_events"))
    redriven = replay.redrive_parked([parked_id])
    assert (redriven.republished, redriven.refused) == ([parked_id], {})

    def again() -> dict[str, Any] | None:
        entries = stack.log_entries("record_events")[since:]
        key = payload_key(body_of(response))
        return next((e for e in entries if e.get("payloadKey") == key), None)

    replayed = wait_until(again, PROCESSING_TIMEOUT, "the redriven body recorded")
    assert isinstance(replayed, dict)
    assert (replayed["receipts"], replayed["parked"], replayed["writes"]) == (2, 1, 0)
    after = parked_for(db, body_of(response))[parked_id]  # the same document, not rewritten
    assert {k: v for k, v in after.items() if k not in ("replays", "replayTime")} == parked
    assert after["replays"] == 1
    dead = {payload_key(message.data) for message in replay.dead_letters()}
    assert payload_key(body_of(response)) not in dead


def test_valid_receipts_beside_unknown_statuses_are_all_recorded_and_counted_alike(
    stack: LocalStack, db: firestore.Client
) -> None:
    user = new_user()
    valid = [ca.status(f"wa-{n}", "Delivered", user) for n in range(20)]
    unknown = [{**ca.status(f"new-{n}", "Sent", user), "Status": "Brand-new"} for n in range(21)]
    response = ca.push(stack.chatapp_url("status"), ca.encode(valid + unknown))
    answer = response.json()
    assert (answer["accepted"], answer["setAside"]) == (20, 21)
    assert answer["msg"].startswith("accepted 41 events; 21 set aside with the reason (")
    [entry] = recorded(stack, response)
    assert (entry["receipts"], entry["parked"]) == (20, 21)
    receipts = receipts_of(db, user)
    assert set(receipts) == {f"wa-{n}~Delivered" for n in range(20)}
    [parked] = parked_for(db, body_of(response)).values()
    assert (parked["category"], parked["setAside"]) == ("REJECTED_RECEIPT", 21)
    assert parked["reason"] == "21 of 41 elements set aside: 21x Status is not a known status"
    assert [e["index"] for e in parked["elements"]] == list(range(20, 41))
    # What the webhook told Alibaba is what Firestore holds.
    assert (len(receipts), parked["setAside"]) == (answer["accepted"], answer["setAside"])


@pytest.fixture(scope="module")
def roomy_webhook(stack: LocalStack) -> Iterator[str]:
    """A webhook taking Chat App bodies of up to a MiB (its own bound), not the local
    stack's 64 KiB."""
    port = free_port()
    limit = {chatapp.PROVIDER.max_body_bytes_variable: str(chatapp.PROVIDER.max_body_bytes)}
    process: ManagedProcess = stack.function_process(WEBHOOK, port, limit)
    process.start(f"http://127.0.0.1:{port}/")
    yield f"http://127.0.0.1:{port}"
    process.stop()


def test_a_batch_of_1001_valid_receipts_is_recorded_whole_across_commits(
    stack: LocalStack, db: firestore.Client, roomy_webhook: str
) -> None:
    user = new_user()
    batch = [ca.status(f"wa-{n}", "Sent", user) for n in range(1001)]
    path = stack.chatapp_url("status").split("/chatapp/", 1)[1]
    response = ca.push(f"{roomy_webhook}/chatapp/{path}", ca.encode(batch))
    assert response.status_code == 200, response.text
    assert (response.json()["accepted"], response.json()["setAside"]) == (1001, 0)
    [entry] = recorded(stack, response)
    assert (entry["receipts"], entry["parked"]) == (1001, 0)
    assert (entry["writes"], entry["commits"]) == (1001, 3)
    assert len(receipts_of(db, user)) == 1001
    assert parked_for(db, body_of(response)) == {}


def test_an_integer_of_5000_digits_sets_aside_its_element_not_the_batch(
    stack: LocalStack, db: firestore.Client
) -> None:
    user = new_user()
    big = json.dumps({**ca.status("big", "Sent", user), "Extra": 0}).replace(
        '"Extra": 0', '"Extra": ' + "9" * 5000
    )
    body = b"[" + ca.encode([ca.status("wa-1", "Read", user)])[1:-1] + b", " + big.encode() + b"]"
    response = ca.push(stack.chatapp_url("status"), body)
    assert response.status_code == 200, response.text  # it was "not JSON" (400) before
    assert (response.json()["accepted"], response.json()["setAside"]) == (1, 1)
    [entry] = recorded(stack, response)
    assert (entry["receipts"], entry["parked"]) == (1, 1)
    assert set(receipts_of(db, user)) == {"wa-1~Read"}
    [parked] = parked_for(db, body).values()
    assert "an integer beyond 64 bits" in parked["elements"][0]["reason"]
    assert parked["rawBody"] == body


def test_a_bm_conversation_id_with_a_lone_surrogate_is_parked_not_a_500(
    stack: LocalStack, db: firestore.Client
) -> None:
    body = bm_payloads.encode(
        bm_payloads.user_text(f"conv-{uuid.uuid4().hex[:6]}\udfff", "m1", "hi")
    )
    response = send(stack, body)
    assert response.status_code == 200, response.text
    [entry] = recorded(stack, response)  # once: not redelivered
    assert entry["parked"] == 1
    [parked] = parked_for(db, body).values()
    assert parked["category"] == "UNSTORABLE"
    assert "lone surrogate" in parked["reason"]


def post_rbm(stack: LocalStack, event: dict[str, Any]) -> requests.Response:
    return rbm.post_signed(stack.rbm_url, rbm.encode(rbm.envelope(event)), "local-rbm-client-token")


def test_an_rbm_send_time_outside_firestores_range_is_parked_unstorable(
    stack: LocalStack, db: firestore.Client
) -> None:
    event = rbm.text_message("hi", phone="+4477009" + str(uuid.uuid4().int)[:5])
    event["sendTime"] = "0001-01-01T00:00:00+01:00"
    response = post_rbm(stack, event)
    assert response.status_code == 200, response.text
    [entry] = recorded(stack, response)  # once: the OverflowError redelivered it before
    assert entry["parked"] == 1
    [parked] = parked_for(db, rbm.CONTRACT_REQUESTS.published(body_of(response))).values()
    assert parked["category"] == "UNSTORABLE"
    assert parked["reason"] == "a time outside years 1 to 9999 (UTC)"


def test_an_rbm_event_type_with_a_lone_surrogate_is_parked_not_a_500(
    stack: LocalStack, db: firestore.Client
) -> None:
    event = rbm.user_event("DELIVERED", "m1", phone="+4477009" + str(uuid.uuid4().int)[:5])
    event["eventType"] = "DELIVERED\ud800"
    response = post_rbm(stack, event)
    assert response.status_code == 200, response.text
    [entry] = recorded(stack, response)
    assert entry["parked"] == 1
    [parked] = parked_for(db, rbm.CONTRACT_REQUESTS.published(body_of(response))).values()
    assert parked["category"] == "UNKNOWN_KIND"


def test_a_poisonous_queue_message_goes_alone_and_the_valid_ones_are_recorded(
    rig: Rig,  # noqa: F811 -- the fixture imported above
    db: firestore.Client,
) -> None:
    user = new_user()
    valid = [rig.alibaba.enqueue(STATUS, ca.status(f"wa-{n}", "Read", user)) for n in range(3)]
    surrogate = {**ca.status("bad-1", "Sent", user), "To": "\ud800"}
    deep = with_nested(ca.status("bad-2", "Sent", user), 960)
    poison = [  # as JSON says a lone surrogate: escaped
        rig.alibaba.enqueue(STATUS, text.encode()) for text in (json.dumps(surrogate), deep)
    ]

    rig.run_until_empty()
    recorded_ = rig.recorded()

    assert set(receipts_of(db, user)) == {f"wa-{n}~Read" for n in range(3)}
    assert not [e for e in rig.published() if e.get("parkedBecause")]  # none REDELIVERED
    for message_id in poison:
        [published] = rig.publishes_of(message_id)
        assert published["queueMessageIds"] == [message_id]  # alone
    assert all(len(rig.publishes_of(m)) == 1 for m in valid)
    assert sum(e["parked"] for e in recorded_.values()) >= 2


def test_a_body_longer_than_a_document_is_parked_whole_in_pieces_and_redriven_whole(
    stack: LocalStack, db: firestore.Client, replay: Replay, roomy_webhook: str
) -> None:
    user = new_user()
    long = {**ca.status("long", "Brand-new", user), "Padding": "x" * (1000 * 1024)}
    body = ca.encode([ca.status("wa-1", "Read", user), long])
    path = stack.chatapp_url("status").split("/chatapp/", 1)[1]
    response = ca.push(f"{roomy_webhook}/chatapp/{path}", body)
    assert response.status_code == 200, response.text
    [entry] = recorded(stack, response)
    assert (entry["receipts"], entry["parked"], entry["writes"]) == (1, 1, 3)  # receipt, 2 pieces
    [(parked_id, parked)] = parked_for(db, body).items()
    assert (parked["rawBodyBytes"], parked["rawBodyPieces"]) == (len(body), 2)
    [piece] = documents(db.collection(f"parked/{parked_id}/pieces")).values()
    assert parked["rawBody"] + piece["rawBody"] == body

    since = len(stack.log_entries("record_events"))
    assert replay.redrive_parked([parked_id]).republished == [parked_id]

    def again() -> dict[str, Any] | None:
        entries = stack.log_entries("record_events")[since:]
        return next((e for e in entries if e.get("payloadKey") == payload_key(body)), None)

    replayed = wait_until(again, PROCESSING_TIMEOUT, "the redriven body recorded")
    assert isinstance(replayed, dict)  # the same bytes came back: the same payloadKey
    assert (replayed["receipts"], replayed["writes"]) == (1, 0)
