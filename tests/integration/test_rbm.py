"""RCS Business Messaging through the whole real stack: the webhook at /rbm, the records, and
the agent's READ at the loopback RBM API (google-auth's real token flow)."""

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from google.cloud import firestore

from shared.core import records
from shared.providers.rbm.normalise import conversation_id
from shared.providers.rbm.read_receipts import event_id
from tests.integration.conftest import (
    PROCESSING_TIMEOUT,
    Spy,
    delivery,
    documents,
    recorded,
    recorded_receipts,
)
from tools.local.procs import wait_until
from tools.local.stack import LocalStack
from tools.payloads import rbm
from tools.standins.rbm_api import RbmApiStandIn

pytestmark = pytest.mark.integration


def new_phone() -> str:
    return "+4477009" + str(uuid.uuid4().int)[:5]


def post(stack: LocalStack, event: dict[str, Any], token: str | None = None) -> requests.Response:
    return rbm.post_signed(
        stack.rbm_url, rbm.encode(rbm.envelope(event)), token or "local-rbm-client-token"
    )


def conversation(db: firestore.Client, phone: str) -> dict[str, Any]:
    cid = conversation_id(rbm.AGENT_ID, phone)
    root = db.document(records.conversation_path(cid))
    return {
        "conversation": root.get().to_dict() or {},
        "messages": documents(root.collection("messages")),
        "receipts": recorded_receipts(db, cid),
    }


def read_sent(rbm_standin: RbmApiStandIn, phone: str, message_id: str, timeout: float = 60) -> None:
    wait_until(
        lambda: any(c.status == 200 for c in rbm_standin.calls_for(phone, message_id)),
        timeout,
        f"the agent's READ of {message_id}",
    )


def test_the_handshake_answers_exactly_the_secret_for_a_configured_token(
    stack: LocalStack, spy: Spy
) -> None:
    spy.drain()  # what earlier tests published
    for token in ("local-rbm-client-token", "previous-rbm-client-token"):
        response = rbm.post_handshake(stack.rbm_url, token, "s3cr3t")
        assert (response.status_code, response.text) == (200, "s3cr3t")
        assert response.headers["Content-Type"].startswith("text/plain")
    wrong = rbm.post_handshake(stack.rbm_url, "guess", "s3cr3t")
    assert wrong.status_code == 403
    assert "s3cr3t" not in wrong.text
    assert [m for m in spy.drain() if m["attributes"].get("provider") == "rbm"] == []


def test_a_signature_over_the_raw_body_is_refused(stack: LocalStack, spy: Spy) -> None:
    body = rbm.encode(rbm.envelope(rbm.text_message("hello", phone=new_phone())))
    raw_signed = {"X-Goog-Signature": rbm.signature(body, "local-rbm-client-token")}
    response = requests.post(stack.rbm_url, data=body, headers=raw_signed, timeout=30)
    assert response.status_code == 401
    assert [m for m in spy.drain() if m["data"] == body] == []


def test_a_user_message_is_recorded_once_and_marked_read_once_however_often_it_arrives(
    stack: LocalStack, db: firestore.Client, rbm_standin: RbmApiStandIn
) -> None:
    phone, message_id = new_phone(), f"msg-{uuid.uuid4().hex[:8]}"
    event = rbm.text_message("Where is my parcel?", phone=phone, message_id=message_id)
    body = rbm.encode(rbm.envelope(event))

    def deliver(_: int) -> requests.Response:
        return rbm.post_signed(stack.rbm_url, body, "previous-rbm-client-token")

    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(deliver, range(10)))
    assert {r.status_code for r in responses} == {200}
    entries = recorded(stack, *responses)
    assert sum(e["writes"] > 0 for e in entries) == 1
    read_sent(rbm_standin, phone, message_id)
    stored = conversation(db, phone)
    message = stored["messages"][message_id]
    assert (message["direction"], message["text"], message["messageType"]) == (
        "USER",
        "Where is my parcel?",
        "text",
    )
    assert stored["conversation"]["userNumber"] == phone
    assert stored["conversation"]["agentId"] == rbm.AGENT_ID
    wait_until(
        lambda: (
            (conversation(db, phone)["messages"][message_id].get("agentReadReceipt") or {}).get(
                "state"
            )
            == "SENT"
        ),
        PROCESSING_TIMEOUT,
        "the READ recorded as SENT",
    )
    [call] = [c for c in rbm_standin.calls_for(phone, message_id) if c.status == 200]
    assert (call.agent_id, call.event_type, call.event_id) == (
        rbm.AGENT_ID,
        "READ",
        event_id(rbm.AGENT_ID, message_id),
    )
    assert len([c for c in rbm_standin.delivered() if c.message_id == message_id]) == 1


def test_read_before_delivered_stays_read_and_a_duplicate_event_changes_nothing(
    stack: LocalStack, db: firestore.Client
) -> None:
    phone, agent_message = new_phone(), f"agent-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    read = rbm.user_event("READ", agent_message, phone=phone, at=now)
    delivered = rbm.user_event(
        "DELIVERED", agent_message, phone=phone, at=now - timedelta(seconds=5)
    )
    first = post(stack, read)
    recorded(stack, first)
    late = post(stack, delivered)
    again = post(stack, read)  # the same eventId again
    entries = recorded(stack, late, again)
    assert entries[1]["writes"] == 0
    stored = conversation(db, phone)
    message = stored["messages"][agent_message]
    assert message["status"] == "READ"
    assert message["deliveredTime"] < message["readTime"]
    assert set(stored["receipts"]) == {f"{agent_message}~READ", f"{agent_message}~DELIVERED"}


def test_the_api_answering_503_then_200_sends_one_read(
    stack: LocalStack, db: firestore.Client, rbm_standin: RbmApiStandIn
) -> None:
    phone, message_id = new_phone(), f"msg-{uuid.uuid4().hex[:8]}"
    rbm_standin.fail_for(phone, message_id, 503)
    delivery(post(stack, rbm.text_message("hi", phone=phone, message_id=message_id)))
    read_sent(rbm_standin, phone, message_id)
    assert [c.status for c in rbm_standin.calls_for(phone, message_id)] == [503, 200]


def test_a_user_without_rcs_is_a_final_404_recorded_and_never_retried(
    stack: LocalStack, db: firestore.Client, rbm_standin: RbmApiStandIn
) -> None:
    phone, message_id = new_phone(), f"msg-{uuid.uuid4().hex[:8]}"
    rbm_standin.without_rcs(phone)
    delivery(post(stack, rbm.text_message("hi", phone=phone, message_id=message_id)))

    def failed() -> dict[str, Any] | None:
        state = conversation(db, phone)["messages"].get(message_id, {}).get("agentReadReceipt")
        return state if state and state.get("state") == "FAILED" else None

    state = wait_until(failed, PROCESSING_TIMEOUT, "the READ recorded as FAILED")
    assert isinstance(state, dict)
    assert state["error"] == "HTTP 404 NOT_FOUND"
    assert len(rbm_standin.calls_for(phone, message_id)) == 1


def test_every_kind_of_user_message_joins_the_history(
    stack: LocalStack, db: firestore.Client, rbm_standin: RbmApiStandIn
) -> None:
    phone = new_phone()
    sent = {
        "tap": rbm.suggestion_response(
            "track-order", "Track my order", phone=phone, message_id="tap"
        ),
        "where": rbm.location_message(51.5, -0.12, phone=phone, message_id="where"),
        "photo": rbm.file_message(phone=phone, message_id="photo"),
    }
    recorded(stack, *(post(stack, event) for event in sent.values()))
    messages = conversation(db, phone)["messages"]
    assert (messages["tap"]["kind"], messages["tap"]["postbackData"]) == (
        "suggestionResponse",
        "track-order",
    )
    assert messages["where"]["location"] == {"latitude": 51.5, "longitude": -0.12}
    photo = messages["photo"]
    assert photo["mimeType"] == "image/jpeg"
    assert photo["fileUri"].startswith("https://storage.googleapis.com/")
    for message_id in sent:
        read_sent(rbm_standin, phone, message_id)


def test_subscription_changes_keep_the_latest_and_typing_is_never_stored(
    stack: LocalStack, db: firestore.Client, spy: Spy
) -> None:
    phone, now = new_phone(), datetime.now(UTC)
    unsubscribed = post(stack, rbm.user_event("UNSUBSCRIBE", phone=phone, at=now))
    older = post(stack, rbm.user_event("SUBSCRIBE", phone=phone, at=now - timedelta(minutes=1)))
    recorded(stack, unsubscribed, older)
    stored = conversation(db, phone)
    assert stored["conversation"]["subscribed"] is False  # the later event wins
    assert sorted(m["kind"] for m in stored["messages"].values()) == ["subscribe", "unsubscribe"]
    spy.drain()
    typing = post(stack, rbm.user_event("IS_TYPING", phone=phone))
    assert typing.status_code == 200
    assert "messageId" not in typing.json()
    assert [m for m in spy.drain() if m["attributes"].get("kind") == "IS_TYPING"] == []


def test_server_and_launch_events_are_stored_or_parked_never_lost(
    stack: LocalStack, db: firestore.Client
) -> None:
    phone, agent_message = new_phone(), f"agent-{uuid.uuid4().hex[:8]}"
    ttl = post(stack, rbm.server_event("TTL_EXPIRATION_REVOKED", agent_message, phone=phone))
    launch = post(stack, rbm.agent_launch_event("LAUNCHED"))
    recorded(stack, ttl, launch)
    stored = conversation(db, phone)
    assert set(stored["receipts"]) == {f"{agent_message}~TTL_EXPIRATION_REVOKED"}
    assert "status" not in stored["messages"][agent_message]  # it never reached the user
    assert isinstance(launch.request.body, bytes)
    body = rbm.CONTRACT_REQUESTS.published(launch.request.body)  # the canonical envelope is parked
    parked = [d for d in documents(db.collection("parked")).values() if d.get("rawBody") == body]
    assert [(d["category"], d["reason"]) for d in parked] == [
        ("AGENT_LAUNCH", "agent launch event: PENDING -> LAUNCHED in /v1/regions/fi-rcs")
    ]
