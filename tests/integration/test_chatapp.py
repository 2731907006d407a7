"""Chat App batch pushes through the whole real stack."""

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from google.cloud import firestore

from shared.core.events import payload_key
from shared.providers.chatapp.normalise import conversation_id as chatapp_conversation
from tests.integration.conftest import Spy, documents, recorded, recorded_receipts
from tools.local.stack import LocalStack
from tools.payloads import chatapp as ca
from tools.standins.bm_api import BusinessMessagesStandIn

pytestmark = pytest.mark.integration


def new_user() -> str:
    return "86139" + str(uuid.uuid4().int)[:8]


def push(stack: LocalStack, kind: str, events: list[dict[str, Any]]) -> requests.Response:
    return ca.push(stack.chatapp_url(kind), ca.encode(events))


def history(db: firestore.Client, user: str) -> dict[str, Any]:
    cid = chatapp_conversation(ca.BUSINESS, user)
    root = db.document(f"conversations/{cid}")
    return {
        "conversation": root.get().to_dict() or {},
        "messages": documents(root.collection("messages")),
        "receipts": recorded_receipts(db, cid),
    }


def test_a_batch_of_five_mixed_statuses_is_recorded(
    stack: LocalStack, db: firestore.Client
) -> None:
    user = new_user()
    batch = [
        ca.status("m1", "Sent", user),
        ca.status("m1", "Delivered", user),
        ca.status("m2", "Sent", user),
        ca.status("m2", "Read", user),
        ca.status("m3", "Deleted", user),
    ]
    response = push(stack, "status", batch)
    assert response.json()["code"] == 0
    assert response.json()["msg"] == "accepted 5 events"
    [entry] = recorded(stack, response)
    assert (entry["receipts"], entry["commits"]) == (5, 1)
    # One batch mixes statuses: each is counted on its own, for the per-status metrics.
    assert entry["receiptStatuses"] == {"Sent": 2, "Delivered": 1, "Read": 1, "Deleted": 1}
    state = history(db, user)
    assert set(state["receipts"]) == {"m1~Sent", "m1~Delivered", "m2~Sent", "m2~Read", "m3~Deleted"}
    assert {m: d["status"] for m, d in state["messages"].items()} == {
        "m1": "Delivered",
        "m2": "Read",
        "m3": "Deleted",
    }
    m2 = state["messages"]["m2"]
    assert m2["sentTime"] is not None
    assert m2["readTime"] is not None
    assert "deliveredTime" not in m2  # no Delivered receipt came for m2
    receipt = state["receipts"]["m1~Delivered"]
    assert (receipt["messageId"], receipt["receiptType"], receipt["to"]) == (
        "m1",
        "Delivered",
        user,
    )
    assert state["messages"]["m1"]["provider"] == "chatapp"
    assert state["conversation"] == {}  # status reports write no document they share


def test_the_same_batch_twice_and_concurrently_is_one_record_per_message_and_status(
    stack: LocalStack, db: firestore.Client
) -> None:
    user = new_user()
    body = ca.encode([ca.status("m1", "Sent", user), ca.status("m1", "Delivered", user)])
    url = stack.chatapp_url("status")
    first = recorded(stack, ca.push(url, body))
    with ThreadPoolExecutor(max_workers=5) as pool:
        responses = list(pool.map(lambda _: ca.push(url, body), range(5)))
    again = recorded(stack, *responses)
    assert first[0]["writes"] == 1  # the message, holding both receipts
    assert [e["writes"] for e in again] == [0] * 5
    state = history(db, user)
    assert set(state["receipts"]) == {"m1~Sent", "m1~Delivered"}
    assert state["messages"]["m1"]["status"] == "Delivered"


def test_read_before_a_late_delivered_stays_read(stack: LocalStack, db: firestore.Client) -> None:
    user = new_user()
    sent_at = ca.now_millis()
    recorded(stack, push(stack, "status", [ca.status("m1", "Read", user, at=sent_at + 5000)]))
    recorded(stack, push(stack, "status", [ca.status("m1", "Delivered", user, at=sent_at + 2000)]))
    message = history(db, user)["messages"]["m1"]
    assert message["status"] == "Read"
    assert message["deliveredTime"] < message["readTime"]


def test_failed_keeps_its_error_code(stack: LocalStack, db: firestore.Client) -> None:
    user = new_user()
    batch = [ca.status("m1", "Sent", user), ca.failed("m1", user, "131026", "Receiver incapable")]
    recorded(stack, push(stack, "status", batch))
    state = history(db, user)
    message = state["messages"]["m1"]
    assert (message["status"], message["errorCode"], message["errorDescription"]) == (
        "Failed",
        "131026",
        "Receiver incapable",
    )
    assert state["receipts"]["m1~Failed"]["errorCode"] == "131026"
    assert message["failedTime"] is not None


def test_inbound_text_and_image_join_the_conversation_of_that_number(
    stack: LocalStack, db: firestore.Client, standin: BusinessMessagesStandIn
) -> None:
    user = new_user()
    url = "https://chatapp.example/media/receipt.jpg"
    recorded(stack, push(stack, "status", [ca.status("m1", "Delivered", user)]))
    batch = [
        ca.inbound_text("u1", user, "Where is my parcel?"),
        ca.inbound_image("u2", user, url, "this one"),
    ]
    [entry] = recorded(stack, push(stack, "inbound", batch))
    assert entry["userMessages"] == 2
    state = history(db, user)
    assert set(state["messages"]) == {"m1", "u1", "u2"}  # one conversation: receipts and messages
    text, image = state["messages"]["u1"], state["messages"]["u2"]
    assert (text["direction"], text["kind"], text["messageType"], text["text"]) == (
        "USER",
        "message",
        "TEXT",
        "Where is my parcel?",
    )
    assert (image["messageType"], image["imageUrl"], image["text"]) == ("IMAGE", url, "this one")
    assert text["context"]["displayName"] == "Demo Customer"
    assert state["conversation"]["context"]["displayName"] == "Demo Customer"
    # Alibaba documents no agent READ receipt: none is sent for Chat App messages.
    assert "agentReadReceipt" not in text
    assert not [
        c for c in standin.calls if c.message_id in ("u1", "u2") and user in c.conversation_id
    ]


def test_a_template_review_fail_then_pass_keeps_both_and_shows_the_latest(
    stack: LocalStack, db: firestore.Client
) -> None:
    template = f"order_update_{uuid.uuid4().hex[:6]}"
    recorded(stack, push(stack, "audit", [ca.audit(template, "en_US", "fail", "Variable format")]))
    recorded(stack, push(stack, "audit", [ca.audit(template, "en_US", "pass")]))
    again = recorded(
        stack, push(stack, "audit", [ca.audit(template, "en_US", "pass")])
    )  # re-pushed
    assert again[0]["writes"] == 0
    review = db.document(f"templateReviews/waba-1~{template}~en_US")
    latest = review.get().to_dict() or {}
    assert (latest["status"], latest["templateCode"], latest["language"]) == (
        "pass",
        template,
        "en_US",
    )
    assert latest["reason"] is None  # the fail's reason went with it
    past = sorted(documents(review.collection("history")).values(), key=lambda d: d["reviewTime"])
    assert [(d["status"], d.get("reason")) for d in past] == [
        ("fail", "Variable format"),
        ("pass", None),
    ]


def test_a_wrong_or_missing_token_is_refused_and_changes_nothing(
    stack: LocalStack, db: firestore.Client, spy: Spy
) -> None:
    user = new_user()
    body = ca.encode([ca.status("m1", "Sent", user)])
    spy.drain()
    wrong = ca.push(stack.chatapp_url("status").rsplit("/", 1)[0] + "/not-the-token", body)
    missing = ca.push(f"{stack.webhook_url}/chatapp/status", body)
    assert (wrong.status_code, wrong.json()["code"]) == (401, 401)
    assert (missing.status_code, missing.json()["code"]) == (401, 401)
    marker = push(stack, "audit", [ca.audit(f"marker_{uuid.uuid4().hex[:6]}", "en", "pass")])
    recorded(stack, marker)
    assert [m["messageId"] for m in spy.drain()] == [marker.json()["messageId"]]
    assert history(db, user)["receipts"] == {}


def test_a_body_that_is_not_an_array_is_400_and_changes_nothing(
    stack: LocalStack, spy: Spy
) -> None:
    spy.drain()
    for body in (b'{"MessageId": "m1"}', b"garbage"):
        response = ca.push(stack.chatapp_url("status"), body)
        assert response.status_code == 400
        assert response.json() == {"code": 400, "msg": "body must be a JSON array of events"}
    assert spy.drain() == []


def test_one_malformed_element_is_parked_and_the_rest_kept(
    stack: LocalStack, db: firestore.Client
) -> None:
    user = new_user()
    broken = {"MessageId": "m9", "From": ca.BUSINESS, "To": user, "Status": "Read"}  # no Timestamp
    response = push(
        stack, "status", [ca.status("m1", "Read", user), broken, ca.status("m2", "Sent", user)]
    )
    answer = response.json()
    assert answer["code"] == 0  # everything is safely handed off: nothing to push again
    assert (answer["accepted"], answer["setAside"]) == (2, 1)
    assert (
        "1 set aside with the reason (element 1: Timestamp is not Unix milliseconds)"
        in (answer["msg"])
    )
    [entry] = recorded(stack, response)
    assert (entry["receipts"], entry["parked"], entry["commits"]) == (2, 1, 1)
    assert set(history(db, user)["receipts"]) == {"m1~Read", "m2~Sent"}
    key = payload_key(response.request.body)  # type: ignore[arg-type]
    [mine] = [d for d in documents(db.collection("parked")).values() if d["payloadKey"] == key]
    assert mine["elements"] == [
        {"index": 1, "category": "REJECTED_RECEIPT", "reason": "Timestamp is not Unix milliseconds"}
    ]
    assert mine["rawBody"] == response.request.body  # the whole body: it can be redriven


def test_what_firestore_refuses_is_parked_with_its_reason_not_redelivered_forever(
    stack: LocalStack, db: firestore.Client
) -> None:
    user, other = new_user(), new_user()
    media: dict[str, Any] = {"url": "https://chatapp.example/x.jpg"}
    for _ in range(30):  # Firestore holds maps at most 20 levels deep
        media = {"nested": media}
    too_deep = {**ca.inbound_text("u1", user, "x"), "Type": "IMAGE", "Message": json.dumps(media)}
    fine = ca.inbound_text("u2", other, "hello")
    response = push(stack, "inbound", [too_deep, fine])
    assert response.json()["code"] == 0
    [entry] = recorded(stack, response)
    assert (entry["commits"], entry["parked"]) == (1, 1)  # found before anything was sent
    assert set(history(db, other)["messages"]) == {"u2"}
    assert history(db, user)["messages"] == {}
    parked = [
        d for d in documents(db.collection("parked")).values() if d["category"] == "UNSTORABLE"
    ]
    key = payload_key(response.request.body)  # type: ignore[arg-type]
    [mine] = [d for d in parked if d.get("payloadKey") == key]
    [element] = mine["elements"]
    assert (element["index"], element["reason"]) == (
        0,
        "Message: maps nested deeper than 16 levels",
    )
    assert response.json()["setAside"] == 1  # the answer knew it too
