"""Receipts, user messages and agent READ receipts through the whole real stack."""

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from google.cloud import firestore

from tests.integration.conftest import (
    Spy,
    delivery,
    documents,
    recorded,
    recorded_receipts,
    send,
    settled,
)
from tools.local.procs import free_port, wait_until
from tools.local.stack import LocalStack, pubsub_push
from tools.payloads import bm as bm
from tools.standins.bm_api import BusinessMessagesStandIn
from tools.topology import AGENT_READ_RECEIPTS

pytestmark = pytest.mark.integration


WIDGET = {"url": "https://shop.example", "widgetContext": "w"}


def new_conversation() -> str:
    return f"conv-{uuid.uuid4().hex[:12]}"


def conversation(db: firestore.Client, cid: str) -> dict[str, dict[str, dict[str, Any]]]:
    root = db.document(f"conversations/{cid}")
    return {
        "conversation": {cid: root.get().to_dict() or {}},
        "messages": documents(root.collection("messages")),
        "receipts": recorded_receipts(db, cid),
    }


def read_receipt_settled(stack: LocalStack, *responses: requests.Response) -> list[dict[str, Any]]:
    deliveries = [delivery(r) for r in responses]
    return settled(stack, AGENT_READ_RECEIPTS.target, "agent READ receipt settled", deliveries)


# --- receipts -------------------------------------------------------------------------


def test_a_payload_of_three_receipts_records_all_three(
    stack: LocalStack, db: firestore.Client
) -> None:
    cid = new_conversation()
    payload = bm.receipts(cid, ("a1", "DELIVERED"), ("a2", "DELIVERED"), ("a3", "READ"))
    [entry] = recorded(stack, send(stack, bm.encode(payload)))
    assert (entry["receipts"], entry["commits"]) == (3, 1)
    assert entry["receiptStatuses"] == {"DELIVERED": 2, "READ": 1}  # the per-status metrics
    state = conversation(db, cid)
    assert set(state["receipts"]) == {"a1~DELIVERED", "a2~DELIVERED", "a3~READ"}
    receipt = state["receipts"]["a1~DELIVERED"]
    assert receipt["messageId"] == "a1"
    assert receipt["receiptType"] == "DELIVERED"
    assert receipt["time"].isoformat().startswith(payload["receipts"]["createTime"][:19])
    assert receipt["sendTime"] is not None
    statuses = {m: d["status"] for m, d in state["messages"].items()}
    assert statuses == {"a1": "DELIVERED", "a2": "DELIVERED", "a3": "READ"}
    assert state["messages"]["a3"]["readTime"] is not None
    assert {d["agent"] for d in state["messages"].values()} == {bm.AGENT}
    assert state["conversation"][cid] == {}  # receipts write no document they share


def test_the_same_payload_twice_is_one_set_of_records(
    stack: LocalStack, db: firestore.Client
) -> None:
    cid = new_conversation()
    body = bm.encode(bm.receipts(cid, ("a1", "DELIVERED"), ("a2", "READ")))
    first = recorded(stack, send(stack, body))
    before = conversation(db, cid)
    second = recorded(stack, send(stack, body))
    assert first[0]["writes"] == 2  # a1 and a2, each holding its receipt
    assert second[0]["writes"] == 0
    assert conversation(db, cid) == before


def test_ten_concurrent_copies_of_a_payload_are_one_set_of_records(
    stack: LocalStack, db: firestore.Client
) -> None:
    cid = new_conversation()
    body = bm.encode(bm.receipts(cid, ("a1", "DELIVERED"), ("a2", "DELIVERED"), ("a3", "READ")))
    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(lambda _: send(stack, body), range(10)))
    entries = recorded(stack, *responses)
    assert sorted(e["writes"] for e in entries) == [0] * 9 + [3]
    state = conversation(db, cid)
    assert len(state["receipts"]) == 3
    assert {m: d["status"] for m, d in state["messages"].items()} == {
        "a1": "DELIVERED",
        "a2": "DELIVERED",
        "a3": "READ",
    }


def test_read_then_a_late_delivered_stays_read_and_keeps_both_times(
    stack: LocalStack, db: firestore.Client
) -> None:
    cid = new_conversation()
    recorded(stack, send(stack, bm.encode(bm.receipts(cid, ("a1", "READ")))))
    late = bm.receipts(cid, ("a1", "DELIVERED"))
    [entry] = recorded(stack, send(stack, bm.encode(late)))
    assert entry["writes"] == 1  # the message: its deliveredTime and the DELIVERED receipt
    message = conversation(db, cid)["messages"]["a1"]
    assert message["status"] == "READ"
    assert message["readTime"] is not None
    assert message["deliveredTime"] is not None
    assert len(conversation(db, cid)["receipts"]) == 2


def test_unspecified_receipts_are_parked_without_losing_the_valid_ones(
    stack: LocalStack, db: firestore.Client
) -> None:
    cid = new_conversation()
    payload = bm.receipts(cid, ("a1", "READ"), ("a2", "RECEIPT_TYPE_UNSPECIFIED"))
    [entry] = recorded(stack, send(stack, bm.encode(payload)))
    assert (entry["receipts"], entry["parked"]) == (1, 1)
    assert set(conversation(db, cid)["receipts"]) == {"a1~READ"}
    parked = documents(db.collection("parked"))
    [rejected] = [d for d in parked.values() if d["conversationId"] == cid]
    assert (rejected["category"], rejected["setAside"]) == ("REJECTED_RECEIPT", 1)
    assert rejected["elements"] == [
        {
            "index": 1,
            "category": "REJECTED_RECEIPT",
            "reason": "receiptType is RECEIPT_TYPE_UNSPECIFIED",
        }
    ]


# --- user messages --------------------------------------------------------------------


def test_every_kind_of_user_event_joins_the_conversation_history(
    stack: LocalStack, db: firestore.Client
) -> None:
    cid = new_conversation()
    image = "https://storage.googleapis.com/business-messages-us/1/abc?x-goog-signature=ff"
    events = [
        bm.user_text(cid, "u1", "Do you deliver?", widget=WIDGET),
        bm.user_text(cid, "u2", image),
        bm.suggestion_response(cid, "u3", "delivery-yes", "Yes please"),
        bm.user_status(cid, requestedLiveAgent=True),
        bm.user_event(cid, "surveyResponse", rating="VERY_SATISFIED", survey="s1"),
        bm.user_event(cid, "authenticationResponse", code="oauth-code", redirectUri="https://r"),
    ]
    recorded(stack, *[send(stack, bm.encode(event)) for event in events])
    messages = conversation(db, cid)["messages"]
    assert messages["u1"]["text"] == "Do you deliver?"
    assert messages["u1"]["direction"] == "USER"
    assert messages["u1"]["context"]["widget"] == {
        "url": "https://shop.example",
        "widgetContext": "w",
    }
    assert messages["u1"]["context"]["userInfo"]["displayName"] == "Demo User"
    assert messages["u2"]["imageUrl"] == image
    assert messages["u3"]["postbackData"] == "delivery-yes"
    by_kind = {d["kind"]: d for d in messages.values()}
    assert by_kind["userStatus"]["requestedLiveAgent"] is True
    assert by_kind["surveyResponse"]["rating"] == "VERY_SATISFIED"
    assert by_kind["authenticationResponse"]["codeReceived"] is True
    assert "oauth-code" not in json.dumps(by_kind["authenticationResponse"], default=str)
    root = conversation(db, cid)["conversation"][cid]
    assert root["customAgentId"] == "demo-custom-agent"
    assert root["lastActivityTime"] is not None
    assert root["context"] == messages["u2"]["context"]  # the latest event that had one


# --- agent READ receipts --------------------------------------------------------------


def test_a_user_message_delivered_twice_gets_exactly_one_read_receipt(
    stack: LocalStack, db: firestore.Client, standin: BusinessMessagesStandIn
) -> None:
    cid = new_conversation()
    body = bm.encode(bm.user_text(cid, "u1", "hello"))
    first = send(stack, body)
    read_receipt_settled(stack, first)
    second = send(stack, body)
    [entry] = read_receipt_settled(stack, second)
    assert (entry["state"], entry["provider"]) == ("SENT", "bm")  # the READ metric's labels
    assert [c.status for c in standin.calls_for("u1") if c.conversation_id == cid] == [200]
    state = conversation(db, cid)["messages"]["u1"]["agentReadReceipt"]
    assert (state["state"], state["attempts"], state["error"]) == ("SENT", 1, None)
    assert state["sentTime"] is not None


def test_concurrent_duplicates_of_a_user_message_send_one_read_receipt(
    stack: LocalStack, standin: BusinessMessagesStandIn
) -> None:
    cid = new_conversation()
    body = bm.encode(bm.user_text(cid, "u1", "hello"))
    with ThreadPoolExecutor(max_workers=5) as pool:
        responses = list(pool.map(lambda _: send(stack, body), range(5)))
    read_receipt_settled(stack, *responses)
    assert [c.status for c in standin.calls if c.conversation_id == cid] == [200]


def test_the_api_answering_503_then_200_is_retried_to_one_success(
    stack: LocalStack, db: firestore.Client, standin: BusinessMessagesStandIn
) -> None:
    cid = new_conversation()
    message_id = f"u-{uuid.uuid4().hex[:8]}"
    standin.script(message_id, [503, 503])
    read_receipt_settled(stack, send(stack, bm.encode(bm.user_text(cid, message_id, "hi"))))
    assert [c.status for c in standin.calls_for(message_id)] == [503, 503, 200]
    state = conversation(db, cid)["messages"][message_id]["agentReadReceipt"]
    assert (state["state"], state["attempts"]) == ("SENT", 3)


def test_a_404_is_recorded_as_failed_and_never_retried(
    stack: LocalStack, db: firestore.Client, standin: BusinessMessagesStandIn
) -> None:
    cid = new_conversation()
    message_id = f"u-{uuid.uuid4().hex[:8]}"
    standin.script(message_id, [404])
    body = bm.encode(bm.user_text(cid, message_id, "hi"))
    [entry] = read_receipt_settled(stack, send(stack, body))
    assert (entry["state"], entry["provider"]) == ("FAILED", "bm")
    read_receipt_settled(stack, send(stack, body))  # Google redelivers the message
    assert [c.status for c in standin.calls_for(message_id)] == [404]
    state = conversation(db, cid)["messages"][message_id]["agentReadReceipt"]
    assert (state["state"], state["attempts"], state["error"]) == (
        "FAILED",
        1,
        "HTTP 404 NOT_FOUND",
    )


def test_an_api_outage_past_the_retry_deadline_is_redelivered_until_sent(
    stack: LocalStack, db: firestore.Client, standin: BusinessMessagesStandIn
) -> None:
    cid = new_conversation()
    message_id = f"u-{uuid.uuid4().hex[:8]}"
    standin.script(message_id, [503] * 6)  # longer than one 5-second retry window
    response = send(stack, bm.encode(bm.user_text(cid, message_id, "hi")))
    read_receipt_settled(stack, response)  # settles only through Pub/Sub's redelivery
    statuses = [c.status for c in standin.calls_for(message_id)]
    assert statuses == [503] * 6 + [200]
    state = conversation(db, cid)["messages"][message_id]["agentReadReceipt"]
    assert (state["state"], state["attempts"]) == ("SENT", 7)


def test_auto_read_receipts_off_sends_none(
    stack: LocalStack, standin: BusinessMessagesStandIn
) -> None:
    """A second READ-receipt server with AUTO_READ_RECEIPTS=false, given a real push body."""
    port = free_port()
    process = stack.function_process(AGENT_READ_RECEIPTS, port, {"AUTO_READ_RECEIPTS": "false"})
    cid = new_conversation()
    body = bm.encode(bm.user_text(cid, "u1", "hi"))
    push = pubsub_push(body, {"provider": "bm", "kind": "message"})
    process.start(f"http://127.0.0.1:{port}/")
    try:
        response = requests.post(f"http://127.0.0.1:{port}/", json=push, timeout=10)
    finally:
        process.stop()
    assert response.status_code == 200
    assert [c for c in standin.calls if c.conversation_id == cid] == []


# --- Pub/Sub outage -------------------------------------------------------------------


def test_pubsub_down_is_503_and_nothing_lost_once_it_is_back(
    stack: LocalStack, db: firestore.Client, spy: Spy
) -> None:
    cid = new_conversation()
    body = bm.encode(bm.receipts(cid, ("a1", "DELIVERED")))
    stack.pubsub.stop()
    try:
        refused = send(stack, body)
        assert refused.status_code == 503
    finally:
        stack.restart_pubsub()
        spy.attach()  # the emulator keeps no state: the spy's subscriptions went with it
    # Business Messages retries a refused delivery: once Pub/Sub is back it goes through.
    retried = wait_until(
        lambda: (r := send(stack, body)).status_code == 200 and r,
        60,
        "the webhook to publish again",
    )
    assert isinstance(retried, requests.Response)
    recorded(stack, retried)
    assert set(conversation(db, cid)["receipts"]) == {"a1~DELIVERED"}
