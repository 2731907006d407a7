"""Chat App's SMQ queue mode on the real stack: the puller (functions-framework) pulls the
Alibaba stand-in's queues into the real Pub/Sub emulator, and the recorder writes Firestore.

Each rig is a stand-in with a 2 s visibility timeout and a puller of its own, run by hand
(a POST, as Cloud Scheduler calls it) for runs of a few seconds.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from shared.core.polling import Schedule
from shared.providers.chatapp.normalise import conversation_id
from shared.providers.chatapp.smq import QueueClient, QueueToken
from tests.integration.conftest import PROCESSING_TIMEOUT, documents, recorded_receipts
from tools.local.procs import ManagedProcess, free_port, wait_until
from tools.local.stack import Delivery, LocalStack
from tools.payloads import chatapp as ca
from tools.standins.alibaba import AlibabaStandIn
from tools.standins.alibaba.queues import BATCH_DELETE_MESSAGE, BATCH_RECEIVE_MESSAGE, QueueCounts
from tools.standins.alibaba.token_service import DYBASEAPI_ACTION
from tools.topology import PULL_QUEUES, RECORD_EVENTS

pytestmark = pytest.mark.integration

STATUS, INBOUND, AUDIT = "ChatAppStatus", "ChatAppInbound", "ChatAppAudit"
RUN_SECONDS = 3  # each run polls for this, less its hand-over
SETTLE_RUNS = 12


@dataclass
class Rig:
    """A stand-in and a puller of its own, on the session's stack."""

    stack: LocalStack
    alibaba: AlibabaStandIn
    process: ManagedProcess
    url: str
    runs: list[requests.Response] = field(default_factory=list)

    def run(self) -> requests.Response:
        """One run, as Cloud Scheduler starts it (without a schedule time: a whole period)."""
        answer = requests.post(self.url, timeout=60)
        self.runs.append(answer)
        return answer

    def run_until_empty(self) -> None:
        """Runs until every queue is empty (everything received was deleted)."""
        for _ in range(SETTLE_RUNS):
            self.run()
            if all(self.left(kind) == 0 for kind in (STATUS, INBOUND, AUDIT)):
                return
        pytest.fail(f"queues not emptied after {SETTLE_RUNS} runs: {self.log()[-5:]}")

    def left(self, kind: str) -> int:
        counts = self.alibaba.counts(kind)
        return counts.visible + counts.in_flight

    def log(self) -> list[dict[str, Any]]:
        return self.stack.log_entries(self.process.name)

    def published(self) -> list[dict[str, Any]]:
        return [e for e in self.log() if e.get("message") == "queue messages published"]

    def publishes_of(self, queue_message_id: str) -> list[dict[str, Any]]:
        return [e for e in self.published() if queue_message_id in e["queueMessageIds"]]

    def recorded(self) -> dict[Delivery, dict[str, Any]]:
        """The recorder's entries for everything this puller published, once all are in."""
        deliveries = [(str(e["pubsubMessageId"]), str(e["payloadKey"])) for e in self.published()]
        return self.stack.logged_for(
            RECORD_EVENTS.target, "event recorded", deliveries, PROCESSING_TIMEOUT
        )


def start_rig(stack: LocalStack, **settings: Any) -> Rig:
    environment = settings.pop("environment", {})
    alibaba = AlibabaStandIn(visibility_timeout_seconds=2, **settings).start()
    port = free_port()
    queues = ",".join(f"{kind}={queue}" for kind, queue in alibaba.queue_names.items())
    process = stack.function_process(
        PULL_QUEUES,
        port,
        {
            "CHATAPP_SMQ_QUEUES": queues,
            "CHATAPP_SMQ_ENDPOINT": alibaba.endpoint,
            "CHATAPP_SMQ_TOKEN_ENDPOINT": alibaba.endpoint,
            "ALIBABA_CLOUD_ACCESS_KEY_ID": alibaba.access_key_id,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": alibaba.access_key_secret,
            "RUN_PERIOD_SECONDS": str(RUN_SECONDS),
            "PUBLISH_TIMEOUT_SECONDS": "2",
            "CHATAPP_SMQ_MAX_RECEIVES": "4",
            **environment,
        },
    )
    try:
        process.start(f"http://127.0.0.1:{port}/")
    except BaseException:
        alibaba.stop()
        raise
    return Rig(stack, alibaba, process, f"http://127.0.0.1:{port}/")


@pytest.fixture(scope="module")
def rig(stack: LocalStack) -> Iterator[Rig]:
    started = start_rig(stack)
    yield started
    started.process.stop()
    started.alibaba.stop()


@pytest.fixture
def another_rig(stack: LocalStack) -> Iterator[Callable[..., Rig]]:
    """For tests that need a stand-in or puller of other settings."""
    started: list[Rig] = []

    def start(**settings: Any) -> Rig:
        started.append(start_rig(stack, **settings))
        return started[-1]

    yield start
    for each in started:
        each.process.stop()
        each.alibaba.stop()


def new_user() -> str:
    return "86139" + str(uuid.uuid4().int)[:8]


def conversation(db: firestore.Client, user: str) -> firestore.DocumentReference:
    return db.document(f"conversations/{conversation_id(ca.BUSINESS, user)}")


def receipts_of(db: firestore.Client, user: str) -> dict[str, dict[str, Any]]:
    return recorded_receipts(db, conversation_id(ca.BUSINESS, user))


def test_every_message_lands_once_through_duplicates_and_redeliveries(
    rig: Rig, db: firestore.Client
) -> None:
    user, template = new_user(), f"queue_tpl_{uuid.uuid4().hex[:6]}"
    t0 = ca.now_millis()
    delivered = ca.status("wa-1", "Delivered", user, at=t0 + 1_000)
    rig.alibaba.enqueue(STATUS, ca.status("wa-1", "Sent", user, at=t0))
    rig.alibaba.enqueue(STATUS, delivered)
    rig.alibaba.enqueue(STATUS, delivered)  # Alibaba's receipts are not idempotent
    read = rig.alibaba.enqueue(STATUS, ca.status("wa-1", "Read", user, at=t0 + 5_000))
    rig.alibaba.enqueue(STATUS, ca.failed("wa-2", user, "131026", "Receiver is incapable"))
    rig.alibaba.enqueue(INBOUND, ca.inbound_text("mo-1", user, "Has it shipped?"))
    rig.alibaba.enqueue(INBOUND, ca.inbound_image("mo-2", user, "https://example.com/p.jpg"))
    rig.alibaba.enqueue(AUDIT, ca.audit(template, "en_US", "pass"))
    rig.alibaba.reject_deletes(message_ids=[read])  # published, not deleted: it comes back

    rig.run_until_empty()
    rig.recorded()

    talk = conversation(db, user)
    assert set(receipts_of(db, user)) == {
        "wa-1~Sent",
        "wa-1~Delivered",
        "wa-1~Read",
        "wa-2~Failed",
    }
    messages = documents(talk.collection("messages"))
    assert {m: d.get("status") or d.get("messageType") for m, d in messages.items()} == {
        "wa-1": "Read",
        "wa-2": "Failed",
        "mo-1": "TEXT",
        "mo-2": "IMAGE",
    }
    assert messages["mo-1"]["text"] == "Has it shipped?"
    assert messages["wa-2"]["errorCode"] == "131026"
    review = db.document(f"templateReviews/waba-1~{template}~en_US").get().to_dict() or {}
    assert review["status"] == "pass"
    # The Read was published twice (its delete was refused), and recorded once.
    assert len(rig.publishes_of(read)) == 2
    assert rig.alibaba.dequeue_count(read) == 2
    parked = db.collection("parked").where(filter=FieldFilter("conversationId", "==", talk.id))
    assert list(parked.stream()) == []
    assert all(run.status_code in (200, 503) for run in rig.runs)


def test_pubsub_down_deletes_nothing_and_everything_arrives_after_it_is_back(
    rig: Rig, stack: LocalStack, db: firestore.Client
) -> None:
    user = new_user()
    ids = [rig.alibaba.enqueue(STATUS, ca.status(f"wa-{n}", "Delivered", user)) for n in range(5)]
    deleted_before = rig.alibaba.counts(STATUS).deleted
    stack.pubsub.freeze()  # keeps its state, answers nothing
    try:
        down = rig.run()
        second = rig.run()  # the gate: nothing received while Pub/Sub confirms nothing
    finally:
        stack.pubsub.thaw()

    assert down.status_code == second.status_code == 503
    assert any("Pub/Sub" in problem for problem in down.json()["problems"])
    assert second.json().get("received", 0) == 0
    assert rig.alibaba.counts(STATUS).deleted == deleted_before
    rig.run_until_empty()
    rig.recorded()
    receipts = receipts_of(db, user)
    assert set(receipts) == {f"wa-{n}~Delivered" for n in range(5)}
    assert max(rig.alibaba.dequeue_count(i) for i in ids) <= 2  # not handed out over and over


def test_a_token_revoked_mid_run_is_renewed_and_nothing_is_lost(
    rig: Rig, db: firestore.Client
) -> None:
    user = new_user()
    issued_before = len(rig.alibaba.tokens_issued)
    running = threading.Thread(target=rig.run, daemon=True)
    running.start()
    rig.alibaba.enqueue(STATUS, ca.status("wa-1", "Sent", user))
    wait_until(lambda: rig.left(STATUS) == 0, 10, "the first receipt to be pulled")
    rig.alibaba.expire_tokens()  # the queue refuses every token issued so far (403)
    rig.alibaba.enqueue(STATUS, ca.status("wa-1", "Delivered", user))
    running.join(timeout=30)

    rig.run_until_empty()
    rig.recorded()
    receipts = receipts_of(db, user)
    assert set(receipts) == {"wa-1~Sent", "wa-1~Delivered"}
    refused = [c for c in rig.alibaba.calls_for(BATCH_RECEIVE_MESSAGE) if c.status == 403]
    assert refused  # the refusal happened, and was answered with new tokens
    assert len(rig.alibaba.tokens_issued) > issued_before


def test_credentials_are_renewed_before_they_expire(
    another_rig: Callable[..., Rig], db: firestore.Client
) -> None:
    short = another_rig(token_lifetime_seconds=3, environment={"RUN_PERIOD_SECONDS": "6"})
    user = new_user()
    running = threading.Thread(target=short.run, daemon=True)
    running.start()
    for n in range(5):
        short.alibaba.enqueue(STATUS, ca.status(f"wa-{n}", "Sent", user))
        time.sleep(1)  # not a wait for anything: receipts arrive over the tokens' lifetimes
    running.join(timeout=30)

    short.run_until_empty()
    short.recorded()
    assert len(receipts_of(db, user)) == 5
    status_queue = short.alibaba.queue_name(STATUS)
    tokens = [t for t in short.alibaba.tokens_issued if t.queue_name == status_queue]
    assert len(tokens) >= 3  # 3 s tokens over a 6 s run: renewed at half their lifetime
    assert [c for c in short.alibaba.calls_for(queue=STATUS) if c.status == 403] == []


def test_a_puller_killed_between_publish_and_delete_leads_to_a_redelivery_that_collapses(
    rig: Rig, db: firestore.Client
) -> None:
    user = new_user()
    ids = [rig.alibaba.enqueue(STATUS, ca.status(f"wa-{n}", "Read", user)) for n in range(3)]
    rig.alibaba.delay_next(10, operation=BATCH_DELETE_MESSAGE)  # the delete hangs...
    running = threading.Thread(target=_ignoring_errors(rig.run), daemon=True)
    running.start()
    wait_until(lambda: rig.publishes_of(ids[0]), 20, "the publish")
    rig.process.kill()  # ...and the puller dies holding the published messages
    rig.alibaba.expire_visibility(STATUS)  # the hung delete's handles are stale now
    running.join(timeout=30)
    rig.process.start(rig.url)

    rig.run_until_empty()
    recorded = rig.recorded()

    assert [len(rig.publishes_of(i)) for i in ids] == [2, 2, 2]
    assert set(receipts_of(db, user)) == {f"wa-{n}~Read" for n in range(3)}
    # The second delivery of the same receipts wrote nothing.
    writes = [recorded[_delivery(e)]["writes"] for e in rig.publishes_of(ids[0])]
    assert writes[1] == 0


def test_a_malformed_body_is_parked_not_lost_and_not_looping(
    rig: Rig, db: firestore.Client
) -> None:
    user = new_user()
    garbage = f"not base64, not JSON {uuid.uuid4().hex}"
    poison = rig.alibaba.enqueue_raw(STATUS, garbage)
    rig.alibaba.enqueue(STATUS, f"not JSON {uuid.uuid4().hex}".encode())  # base64, then noise
    rig.alibaba.enqueue(STATUS, {"MessageId": f"half-{uuid.uuid4().hex[:8]}", "Status": "Sent"})
    rig.alibaba.enqueue(STATUS, ca.status("wa-1", "Delivered", user))
    rig.alibaba.reject_deletes(message_ids=[poison])  # the poison comes back once more

    rig.run_until_empty()
    rig.recorded()

    parked = [e for e in rig.published() if e.get("parkedBecause")]
    garbage_parks = [e for e in parked if poison in e["queueMessageIds"]]
    assert len(garbage_parks) == 2  # published twice...
    [document] = [  # ...parked once: the same bytes, the same id
        d
        for d in documents(db.collection("parked")).values()
        if d.get("rawBody") == garbage.encode()
    ]
    assert document["category"] == "MALFORMED"
    assert "neither base64 of JSON nor JSON" in document["reason"]
    assert document["kind"] == STATUS
    assert any(
        b"not JSON" in (d.get("rawBody") or b"")
        for d in documents(db.collection("parked")).values()
    )
    assert "wa-1~Delivered" in receipts_of(db, user)
    assert rig.alibaba.dequeue_count(poison) == 2  # and then deleted: no loop


def test_a_body_in_line_wrapped_base64_is_recorded_not_parked(
    rig: Rig, db: firestore.Client
) -> None:
    """As Java's MIME encoders write it (76 columns, CRLF); Alibaba's SDK decoders read it."""
    user = new_user()
    elements = [ca.status(f"wrapped-{n}", "Delivered", user) for n in range(3)]
    wrapped = base64.encodebytes(ca.encode(elements)).decode().replace("\n", "\r\n")
    assert "\r\n" in wrapped.strip()
    sent = rig.alibaba.enqueue_raw(STATUS, wrapped)

    rig.run_until_empty()
    rig.recorded()

    assert set(receipts_of(db, user)) == {f"wrapped-{n}~Delivered" for n in range(3)}
    [published] = rig.publishes_of(sent)
    assert "parkedBecause" not in published


def test_a_message_received_too_often_is_parked_with_the_reason(
    rig: Rig, db: firestore.Client
) -> None:
    user = new_user()
    looping = rig.alibaba.enqueue(STATUS, ca.status("wa-loop", "Read", user))
    token = _token(rig.alibaba.issue_credentials(STATUS))
    client = QueueClient(rig.alibaba.endpoint, rig.alibaba.queue_name(STATUS))
    for _ in range(3):  # handed out and never deleted, as by a puller that keeps crashing
        assert [m.message_id for m in client.receive(token, 16, 0)] == [looping]
        rig.alibaba.expire_visibility(STATUS)

    rig.run_until_empty()  # the fourth receive reaches CHATAPP_SMQ_MAX_RECEIVES=4
    rig.recorded()

    [entry] = rig.publishes_of(looping)
    assert "received 4 times" in entry["parkedBecause"]
    parked = db.document(f"parked/{entry['payloadKey']}~payload").get().to_dict() or {}
    assert parked["category"] == "REDELIVERED"
    assert json.loads(parked["rawBody"])[0]["MessageId"] == "wa-loop"  # ready to redrive
    assert receipts_of(db, user) == {}


def test_an_empty_queue_costs_one_waiting_receive_at_a_time_even_when_answered_at_once(
    rig: Rig,
) -> None:
    rig.alibaba.fail_next_receives(50, queue=INBOUND, status=404, code="MessageNotExist")
    before = len(rig.alibaba.calls_for(BATCH_RECEIVE_MESSAGE, queue=INBOUND))
    started = time.monotonic()

    answer = rig.run()

    took = time.monotonic() - started
    receives = len(rig.alibaba.calls_for(BATCH_RECEIVE_MESSAGE, queue=INBOUND)) - before
    schedule = Schedule(RUN_SECONDS)
    assert answer.status_code == 200, answer.text
    assert schedule.period - schedule.handover - 0.5 < took < schedule.period  # before the next
    assert receives <= RUN_SECONDS + 1  # about one a second, never a tight loop


def test_a_signature_the_standin_rejects_is_reported_clearly(
    another_rig: Callable[..., Rig],
) -> None:
    wrong = another_rig(environment={"ALIBABA_CLOUD_ACCESS_KEY_SECRET": "not-the-secret"})
    wrong.alibaba.enqueue(STATUS, {"MessageId": "m1"})

    answer = wrong.run()

    assert answer.status_code == 503
    problems = " ".join(answer.json()["problems"])
    assert "Dybaseapi answered 400 SignatureDoesNotMatch" in problems
    assert "check ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET" in problems
    assert {c.error_code for c in wrong.alibaba.calls_for(DYBASEAPI_ACTION)} == {
        "SignatureDoesNotMatch"
    }
    assert wrong.alibaba.calls_for(BATCH_RECEIVE_MESSAGE) == []
    assert wrong.alibaba.counts(STATUS) == QueueCounts(visible=1, in_flight=0, deleted=0)
    logged = json.dumps(wrong.log())
    assert "SignatureDoesNotMatch" in logged
    assert "not-the-secret" not in logged


def _token(issued: Any) -> QueueToken:
    return QueueToken(
        issued.access_key_id, issued.access_key_secret, issued.security_token, 0, issued.expires_at
    )


def _delivery(entry: dict[str, Any]) -> Delivery:
    return str(entry["pubsubMessageId"]), str(entry["payloadKey"])


def _ignoring_errors(call: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        with contextlib.suppress(requests.RequestException):  # the puller was killed under it
            call()

    return run
