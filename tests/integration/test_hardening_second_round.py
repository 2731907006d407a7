"""Issue 21 on the real stack: template reviews ordered by first arrival (through the spool
too), no phone number in any function's log, Chat App conversation ids that no two number
pairs share, and the drainer reading the spool in pages within its byte budget."""

import uuid
from typing import Any

import pytest
import requests
from google.cloud import firestore

from shared.adapters.spool import FirestoreSpool
from shared.core import arrival, records
from shared.providers.chatapp import STATUS
from shared.providers.chatapp.normalise import conversation_id as chatapp_conversation
from shared.providers.rbm.normalise import conversation_id as rbm_conversation
from tests.integration.conftest import (
    PROCESSING_TIMEOUT,
    Spy,
    delivery,
    documents,
    recorded,
    recorded_receipts,
    send,
    settled,
)
from tools.local.procs import ManagedProcess, free_port, wait_until
from tools.local.stack import LocalStack
from tools.payloads import bm as bm
from tools.payloads import chatapp as ca
from tools.payloads import rbm as rbm
from tools.topology import FUNCTIONS, Function

pytestmark = pytest.mark.integration

DRAIN_SPOOL: Function = next(f for f in FUNCTIONS if f.target == "drain_spool")


def new_user() -> str:
    return "86139" + str(uuid.uuid4().int)[:8]


def review_of(db: firestore.Client, template: str) -> dict[str, Any]:
    path = records.template_review_path(("waba-1", template, "en_US"))
    return db.document(path).get().to_dict() or {}


def history_of(db: firestore.Client, template: str) -> dict[str, dict[str, Any]]:
    path = records.template_review_path(("waba-1", template, "en_US"))
    return documents(db.document(path).collection("history"))


# --- 5: the order of template reviews -----------------------------------------------------


def test_of_two_reviews_of_a_template_in_one_batch_the_last_element_is_its_status(
    stack: LocalStack, db: firestore.Client
) -> None:
    template = f"batch_{uuid.uuid4().hex[:6]}"
    batch = [
        ca.audit(template, "en_US", "fail", "Variable format"),
        ca.audit(template, "en_US", "pass"),
    ]
    recorded(stack, ca.push(stack.chatapp_url("audit"), ca.encode(batch)))
    assert review_of(db, template)["status"] == "pass"
    assert len(history_of(db, template)) == 2


def test_a_review_spooled_in_an_outage_does_not_override_a_newer_one_once_drained(
    stack: LocalStack, db: firestore.Client, spool_db: firestore.Client
) -> None:
    """The old review reaches Pub/Sub only after the newer one: the drainer republishes it
    late. Before the fix its publish time made it the newest."""
    template = f"spooled_{uuid.uuid4().hex[:6]}"
    old = ca.encode([ca.audit(template, "en_US", "fail", "Variable format")])
    stack.pubsub.freeze()
    try:
        # The webhook's first spool write may miss its second (a cold client): it answers
        # 503, and Alibaba pushes again.
        for _ in range(3):
            answer = ca.push(stack.chatapp_url("audit"), old)
            if "spoolId" in answer.json():
                break
        spooled = spool_db.document(f"spool/{answer.json()['spoolId']}")
        fields = spooled.get().to_dict()
        spooled.delete()  # set aside: the drainer gets to it only after the newer review
    finally:
        stack.pubsub.thaw()
    assert (answer.status_code, answer.json()["code"]) == (200, 0)
    assert isinstance(fields, dict)
    assert arrival.RECEIVED_TIME in fields["attributes"]  # the spool keeps the first arrival

    newer = ca.push(stack.chatapp_url("audit"), ca.encode([ca.audit(template, "en_US", "pass")]))
    recorded(stack, newer)
    assert review_of(db, template)["status"] == "pass"

    spooled.create(fields)  # back in the spool, as the webhook wrote it
    wait_until(lambda: len(history_of(db, template)) == 2, PROCESSING_TIMEOUT, "the drainer")
    assert review_of(db, template)["status"] == "pass"
    fail = next(d for d in history_of(db, template).values() if d["status"] == "fail")
    assert fail["reviewTime"] < review_of(db, template)["reviewTime"]


# --- 6: no phone number in any log ----------------------------------------------------------


def function_logs(stack: LocalStack) -> str:
    """Everything the product's functions (and any extra server of one) have logged."""
    targets = {function.target for function in FUNCTIONS}
    return "\n".join(
        path.read_text(errors="replace")
        for path in sorted(stack.log_dir.glob("*.log"))
        if path.stem.split("-")[0] in targets
    )


def test_no_function_logs_a_users_phone_number(stack: LocalStack, rbm_standin: Any) -> None:
    rbm_phone = "+4477009" + str(uuid.uuid4().int)[:5]
    chatapp_user = new_user()
    tag = uuid.uuid4().hex[:8]
    rbm_text = rbm.post_signed(
        stack.rbm_url,
        rbm.encode(rbm.envelope(rbm.text_message("hello", phone=rbm_phone))),
        "local-rbm-client-token",
    )
    rbm_receipt = rbm.post_signed(
        stack.rbm_url,
        rbm.encode(rbm.envelope(rbm.user_event("READ", f"{tag}-r", phone=rbm_phone))),
        "local-rbm-client-token",
    )
    bm_text = send(stack, bm.encode(bm.user_text(f"bm-{tag}", f"{tag}-b", "hi")))
    chatapp_status = ca.push(
        stack.chatapp_url("status"), ca.encode([ca.status(f"{tag}-s", "Delivered", chatapp_user)])
    )
    chatapp_text = ca.push(
        stack.chatapp_url("inbound"),
        ca.encode([ca.inbound_text(f"{tag}-i", chatapp_user, "hello")]),
    )
    answers = [rbm_text, rbm_receipt, bm_text, chatapp_status, chatapp_text]
    recorded(stack, *answers)
    settled(stack, "agent_read_receipts", "agent READ receipt settled", [delivery(rbm_text)])

    logs = function_logs(stack)
    for line in ("event published", "event recorded", "agent READ receipt settled"):
        assert line in logs  # every function that saw the conversation was read
    for phone in (rbm_phone, chatapp_user):
        assert phone.removeprefix("+") not in logs, phone  # +E.164 or digits alone


# --- 7: conversation ids are injective ------------------------------------------------------


def test_the_issues_two_number_pairs_are_two_conversations(
    stack: LocalStack, db: firestore.Client
) -> None:
    tag = uuid.uuid4().hex[:6]
    first = ca.status(f"{tag}-1", "Sent", "2")
    first["From"] = f"page{tag}:1"
    second = ca.status(f"{tag}-2", "Sent", "1:2")
    second["From"] = f"page{tag}"
    recorded(stack, ca.push(stack.chatapp_url("status"), ca.encode([first, second])))
    one = chatapp_conversation(f"page{tag}:1", "2")
    other = chatapp_conversation(f"page{tag}", "1:2")
    assert one != other
    assert set(recorded_receipts(db, one)) == {f"{tag}-1~Sent"}
    assert set(recorded_receipts(db, other)) == {f"{tag}-2~Sent"}
    assert rbm_conversation("a:b", "c") != rbm_conversation("a", "b:c")


# --- 9a: the drainer pages the spool within its byte budget ---------------------------------


def test_a_drain_with_a_small_budget_republishes_everything_over_pages_in_order(
    stack: LocalStack, db: firestore.Client, spy: Spy
) -> None:
    """A drainer of its own, on a spool database of its own: the stack's drainer never
    touches these events. Its budget holds two documents of the largest size."""
    database = f"drain-pages-{uuid.uuid4().hex[:6]}"
    spool = FirestoreSpool(firestore.Client(project=stack.settings.project, database=database))
    user = new_user()
    bodies = [ca.encode([ca.status(f"m{n}", "Sent", user)]) for n in range(5)]
    attributes = {"provider": "chatapp", "kind": STATUS, "events": "1"}
    for body in bodies:
        spool.add(body, "events", attributes)
    spy.drain()
    port = free_port()
    overrides = {"SPOOL_DATABASE": database, "DRAIN_BUDGET_BYTES": str(2 * 1024 * 1024)}
    process: ManagedProcess = stack.function_process(DRAIN_SPOOL, port, overrides)
    process.start(f"http://127.0.0.1:{port}/")  # its readiness request is a drain
    try:
        requests.post(f"http://127.0.0.1:{port}/", timeout=120).raise_for_status()
        runs = [e for e in stack.log_entries(process.name) if e["message"] == "spool drained"]
    finally:
        process.stop()
    [drained] = [run for run in runs if run["republished"]]
    assert (drained["republished"], drained["pages"], drained["remaining"]) == (5, 3, False)
    wait_until(
        lambda: len(recorded_receipts(db, chatapp_conversation(ca.BUSINESS, user))) == 5,
        PROCESSING_TIMEOUT,
        "every drained event recorded",
    )
    published = [m for m in spy.drain() if m["data"] in bodies]
    in_publish_order = sorted(published, key=lambda m: int(m["messageId"]))
    assert [m["data"] for m in in_publish_order] == bodies  # the order of arrival
