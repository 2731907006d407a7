"""WhatsApp (Meta's Cloud API) through the whole real stack: the handshake and signed POSTs at
/whatsapp, every update of a batch recorded, and the agent's READ at the Graph API stand-in
(bearer token, Meta's error codes, one call per burst, never past 30 days)."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from google.cloud import firestore

from shared.core import records
from shared.providers.whatsapp.normalise import conversation_id
from tests.integration.conftest import PROCESSING_TIMEOUT, Spy, delivery, documents, recorded
from tools.local.procs import wait_until
from tools.local.stack import LocalStack
from tools.payloads import whatsapp as wa
from tools.standins.graph_api import GraphApiStandIn, GraphCall
from tools.topology import AGENT_READ_RECEIPTS

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def graph(stack: LocalStack) -> GraphApiStandIn:
    assert stack.graph_standin is not None
    return stack.graph_standin


def new_user() -> str:
    return "1650555" + str(uuid.uuid4().int)[:5]


def post(
    stack: LocalStack, *changes: dict[str, Any], secret: str | None = None
) -> requests.Response:
    raw = wa.encode(wa.body(wa.entry(*changes)))
    standin = stack.graph_standin.endpoint if stack.graph_standin else None
    return wa.post(
        stack.whatsapp_url,
        raw,
        secret or stack.settings.secret("WHATSAPP_APP_SECRET"),
        graph_standin=standin,
    )


def messages_of(db: firestore.Client, user: str) -> dict[str, dict[str, Any]]:
    cid = conversation_id(wa.PHONE_NUMBER_ID, user)
    return documents(db.collection(f"{records.conversation_path(cid)}/{records.MESSAGES}"))


def calls_for(graph: GraphApiStandIn, *message_ids: str) -> list[GraphCall]:
    return [call for call in graph.calls() if call.message_id in message_ids]


def test_the_handshake_answers_exactly_the_challenge_for_a_configured_token(
    stack: LocalStack, spy: Spy
) -> None:
    spy.drain()
    token = stack.settings.secret("WHATSAPP_VERIFY_TOKEN")
    good = requests.get(f"{stack.whatsapp_url}?{wa.handshake_query(token, 'c-81')}", timeout=30)
    assert (good.status_code, good.text) == (200, "c-81")
    assert good.headers["Content-Type"].startswith("text/plain")
    for query in (wa.handshake_query("guess", "c-81"), wa.handshake_query(token, "c", "x"), ""):
        refused = requests.get(f"{stack.whatsapp_url}?{query}", timeout=30)
        assert refused.status_code == 403
        assert "c-81" not in refused.text
    assert requests.put(stack.whatsapp_url, timeout=30).status_code == 405
    assert [m for m in spy.drain() if m["attributes"].get("provider") == "whatsapp"] == []


def test_every_status_of_every_entry_and_change_is_recorded_once_and_never_lowered(
    stack: LocalStack, db: firestore.Client
) -> None:
    first, second, failing = new_user(), new_user(), new_user()
    a, b, c = (wa.wamid(f"{uuid.uuid4().hex}-{n}") for n in range(3))
    t0 = int(wa.now_seconds())
    batch = wa.body(
        wa.entry(
            wa.change(
                statuses=[
                    wa.status(a, "sent", first, at=str(t0), biz_opaque_callback_data="order-7")
                ]
            ),
            wa.change(statuses=[wa.status(a, "read", first, at=str(t0 + 5))]),
        ),
        wa.entry(
            wa.change(statuses=[wa.status(b, "delivered", second, at=str(t0 + 1))]),
            wa.change(
                statuses=[wa.failed(c, failing, 131026, "Message undeliverable", "no WhatsApp")]
            ),
        ),
    )
    raw = wa.encode(batch)
    secret = stack.settings.secret("WHATSAPP_APP_SECRET")
    responses = [wa.post(stack.whatsapp_url, raw, secret) for _ in range(2)]  # Meta redelivers
    late = post(stack, wa.change(statuses=[wa.status(a, "delivered", first, at=str(t0 + 4))]))
    entries = recorded(stack, *responses, late)
    assert [e["receipts"] for e in entries] == [4, 4, 1]
    # The same batch twice writes once: whichever delivery came second wrote nothing.
    assert sorted(e["writes"] for e in entries[:2]) == [0, 3]  # one write per message
    message = messages_of(db, first)[a]
    assert message["status"] == "read"  # sent -> read without delivered; a late delivered...
    assert message["deliveredTime"] == datetime.fromtimestamp(t0 + 4, UTC)  # ...is still timed
    assert message["bizOpaqueCallbackData"] == "order-7"
    assert message["receipts"]["sent"]["pricing"]["category"] == "utility"
    assert messages_of(db, second)[b]["status"] == "delivered"
    failure = messages_of(db, failing)[c]
    assert (failure["status"], failure["errorCode"]) == ("failed", "131026")
    assert failure["errorDescription"] == "Message undeliverable"
    assert failure["receipts"]["failed"]["errors"][0]["details"] == "no WhatsApp"


def test_a_batch_of_a_thousand_updates_and_three_megabytes_is_recorded_whole(
    stack: LocalStack, db: firestore.Client
) -> None:
    tag = uuid.uuid4().hex[:8]
    padding = "x" * 3000  # fields the pipeline does not read: a body as large as Meta's
    statuses = [
        wa.status(f"{tag}-{n}", "delivered", f"1777{n:07d}", padding=padding) for n in range(1000)
    ]
    changes = [wa.change(statuses=statuses[i : i + 100]) for i in range(0, 1000, 100)]
    response = post(stack, *changes)
    assert response.status_code == 200, response.text
    assert len(response.request.body or b"") > 3_000_000
    [entry] = recorded(stack, response)
    assert (entry["receipts"], entry["parked"]) == (1000, 0)
    assert entry["commits"] >= 2  # more than one Firestore commit holds
    sample = messages_of(db, "17770000999")
    assert sample[f"{tag}-999"]["status"] == "delivered"


def test_users_messages_are_recorded_and_one_read_covers_a_burst(
    stack: LocalStack, db: firestore.Client, graph: GraphApiStandIn
) -> None:
    user = new_user()
    t0 = int(wa.now_seconds())
    ids = [wa.wamid(f"{user}-{kind}") for kind in ("text", "image", "interactive")]
    replied_to = wa.wamid(f"{user}-ours")
    burst = [
        wa.message(ids[0], "text", user, at=str(t0)),
        wa.message(ids[1], "image", user, at=str(t0 + 1)),
        wa.message(
            ids[2],
            "interactive",
            user,
            at=str(t0 + 2),
            context={"from": wa.DISPLAY_PHONE_NUMBER, "id": replied_to},
        ),
    ]
    response = post(stack, wa.change(messages=burst, contacts=[wa.contact(user, "Sheena")]))
    assert response.status_code == 200, response.text
    assert response.json()["messageId"]

    def settled() -> dict[str, dict[str, Any]] | None:
        found = messages_of(db, user)
        states = [found.get(m, {}).get("agentReadReceipt", {}).get("state") for m in ids]
        return found if states == ["SENT"] * 3 else None

    wait_until(settled, PROCESSING_TIMEOUT, "the burst's READs")
    found = messages_of(db, user)
    assert [call.message_id for call in calls_for(graph, *ids)] == [ids[2]]  # the newest
    assert [found[m]["agentReadReceipt"].get("coveredBy") for m in ids] == [ids[2], ids[2], None]
    assert graph.unread_messages(wa.PHONE_NUMBER_ID, user) == []  # Meta marked them all
    assert found[ids[0]]["text"] == wa.MESSAGE_OBJECTS["text"]["body"]
    assert found[ids[1]]["mediaId"] == wa.MESSAGE_OBJECTS["image"]["id"]
    assert found[ids[2]]["context"]["replyTo"] == replied_to
    conversation = (
        db.document(records.conversation_path(conversation_id(wa.PHONE_NUMBER_ID, user)))
        .get()
        .to_dict()
        or {}
    )
    assert conversation["profileName"] == "Sheena"


def test_a_username_user_without_a_phone_number_is_recorded_and_marked_read(
    stack: LocalStack, db: firestore.Client, graph: GraphApiStandIn
) -> None:
    bsuid = f"US.{uuid.uuid4().int % 10**20}"
    message_id = wa.wamid(f"{bsuid}-hi")
    hello = wa.message(message_id, "text", None, user_id=bsuid)
    response = post(
        stack, wa.change(messages=[hello], contacts=[wa.contact(None, "Ana", user_id=bsuid)])
    )
    assert response.status_code == 200, response.text
    wait_until(lambda: calls_for(graph, message_id), PROCESSING_TIMEOUT, "the username user's READ")
    wait_until(  # the READ sender may create the document before the recorder fills it in
        lambda: messages_of(db, bsuid).get(message_id, {}).get("direction") == "USER",
        PROCESSING_TIMEOUT,
        "the username user's message recorded under their BSUID",
    )


def test_a_refused_token_is_final_and_reported_and_an_old_message_is_never_marked(
    stack: LocalStack, db: firestore.Client, graph: GraphApiStandIn
) -> None:
    user = new_user()
    refused, old = wa.wamid(f"{user}-refused"), wa.wamid(f"{user}-old")
    graph.fail_next(190)
    first = post(stack, wa.change(messages=[wa.message(refused, "text", user)]))
    month_ago = datetime.now(UTC) - timedelta(days=31)
    second = post(
        stack,
        wa.change(messages=[wa.message(old, "text", user, at=str(int(month_ago.timestamp())))]),
    )
    entries = stack.logged_for(
        AGENT_READ_RECEIPTS.target,
        "agent READ receipt settled",
        [delivery(first), delivery(second)],
        PROCESSING_TIMEOUT,
    )
    by_message = {entry["messageId"]: entry for entry in entries.values()}
    assert by_message[refused]["state"] == "FAILED"
    assert by_message[refused]["credentialsRejected"] is True  # the alert counts these
    assert by_message[old]["state"] == "FAILED"
    assert calls_for(graph, old) == []  # Meta refuses a mark past 30 days: never sent
    assert "too old" in messages_of(db, user)[old]["agentReadReceipt"]["error"]
    assert [call.code for call in calls_for(graph, refused)] == [190]


def test_other_fields_and_template_reviews_are_kept_never_an_error(
    stack: LocalStack, db: firestore.Client
) -> None:
    name = f"order_update_{uuid.uuid4().hex[:6]}"
    response = post(
        stack,
        wa.template_update(name, "en_US", "APPROVED"),
        wa.field_change("account_update", {"event": "VERIFIED_ACCOUNT"}),
    )
    assert response.status_code == 200, response.text
    [entry] = recorded(stack, response)
    assert (entry["reviews"], entry["parked"]) == (1, 1)
    reviews = db.collection(records.TEMPLATE_REVIEWS).where(
        filter=firestore.FieldFilter("templateName", "==", name)
    )
    assert [(snap.to_dict() or {})["status"] for snap in reviews.stream()] == ["APPROVED"]
    key = delivery(response)[1]
    parked = db.collection(records.PARKED).where(
        filter=firestore.FieldFilter("payloadKey", "==", key)
    )
    assert [(snap.to_dict() or {})["category"] for snap in parked.stream()] == ["OTHER_FIELD"]
