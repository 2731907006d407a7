"""The fault-injection suite: real processes, real faults, counts asserted.

"Doubled" is measured where it could happen: a payload whose deliveries wrote to Firestore
more than once. Deterministic ids make a second record impossible; this also proves no
delivery re-applied a payload another had already recorded.
"""

import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from google.cloud import firestore

from shared.core.events import payload_key
from shared.providers.chatapp.normalise import conversation_id as chatapp_conversation
from tests.integration.conftest import (
    PROCESSING_TIMEOUT,
    documents,
    recorded,
    recorded_receipts,
    send,
)
from tools.local.procs import wait_until
from tools.local.stack import LocalStack
from tools.payloads import bm as bm
from tools.payloads import chatapp as ca
from tools.standins.bm_api import BusinessMessagesStandIn
from tools.topology import RECORD_EVENTS

pytestmark = pytest.mark.integration


def writes_by_payload(stack: LocalStack, bodies: list[bytes]) -> Counter[str]:
    """How many deliveries of each payload wrote something."""
    keys = {payload_key(body) for body in bodies}
    entries = stack.log_entries(RECORD_EVENTS.target)
    return Counter(
        e["payloadKey"] for e in entries if e.get("payloadKey") in keys and e.get("writes")
    )


def receipt_count(db: firestore.Client, conversations: set[str]) -> int:
    return sum(len(recorded_receipts(db, c)) for c in conversations)


def report(name: str, **figures: int) -> None:
    print(f"\n{name}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))


def test_a_duplicate_storm_of_100_payloads_sent_5_times_is_100_sets_of_records(
    stack: LocalStack, db: firestore.Client
) -> None:
    """Scenario 5."""
    run = uuid.uuid4().hex[:6]
    conversations = {f"storm-{run}-{i}" for i in range(10)}
    bodies = [
        bm.encode(bm.receipts(f"storm-{run}-{i % 10}", (f"a{i}", "DELIVERED"), (f"a{i}", "READ")))
        for i in range(100)
    ]
    with ThreadPoolExecutor(max_workers=25) as pool:
        responses = list(pool.map(lambda body: send(stack, body), bodies * 5))
    assert all(r.status_code == 200 for r in responses)
    recorded(stack, *responses)
    assert receipt_count(db, conversations) == 200  # 100 payloads x 2 receipts, once each
    wrote = writes_by_payload(stack, bodies)
    assert len(wrote) == 100
    assert set(wrote.values()) == {1}  # one delivery of each payload recorded it; 4 found it done
    report("duplicate storm", sent=500, payloads=100, records=200, lost=0, duplicated=0)


def test_firestore_frozen_while_subscribers_work_then_everything_is_recorded_once(
    stack: LocalStack, db: firestore.Client, standin: BusinessMessagesStandIn
) -> None:
    """Scenario 2: Firestore stops answering; Pub/Sub holds and redelivers until it is back.

    Frozen (SIGSTOP), not restarted: the emulator would lose its data, and production
    Firestore does not."""
    cid = f"fs-{uuid.uuid4().hex[:8]}"
    receipts = [bm.encode(bm.receipts(cid, (f"a{i}", "READ"))) for i in range(20)]
    messages = [bm.encode(bm.user_text(cid, f"u{i}", "hello")) for i in range(10)]
    stack.firestore.freeze()
    try:
        responses = [send(stack, body) for body in receipts + messages]  # subscribers now block
    finally:
        stack.firestore.thaw()
    assert all(r.status_code == 200 for r in responses)
    wait_until(lambda: receipt_count(db, {cid}) == 20, PROCESSING_TIMEOUT, "the receipts")

    def read_receipts_sent() -> bool:
        messages = documents(db.collection(f"conversations/{cid}/messages")).values()
        states = [d.get("agentReadReceipt", {}).get("state") for d in messages if "kind" in d]
        return states.count("SENT") == 10

    wait_until(read_receipts_sent, PROCESSING_TIMEOUT, "every READ receipt")
    accepted = [c for c in standin.accepted() if c.conversation_id == cid]
    assert sorted(c.message_id for c in accepted) == sorted(f"u{i}" for i in range(10))  # once each
    assert set(writes_by_payload(stack, receipts + messages).values()) == {1}
    report("firestore frozen", sent=30, persisted=30, read_receipts=10, lost=0, duplicated=0)


def test_sustained_load_with_a_pubsub_outage_part_way(
    stack: LocalStack, db: firestore.Client
) -> None:
    """Scenario 7: 30 s of Business Messages and Chat App traffic; Pub/Sub freezes for 6 s.

    Business Messages gets 503 during the outage and retries like Google (the same body,
    until acknowledged); Chat App is spooled and drained."""
    run = uuid.uuid4().hex[:6]
    user = "86137" + str(uuid.uuid4().int)[:8]
    duration, outage = 30.0, (10.0, 16.0)
    sent: list[bytes] = []
    acknowledged = Counter[str]()
    refusals = Counter[str]()
    lock = threading.Lock()
    start = time.monotonic()

    def bm_worker(worker: int) -> None:
        session, i = requests.Session(), 0
        while time.monotonic() - start < duration:
            body = bm.encode(bm.receipts(f"load-{run}-{worker}", (f"a{i}", "DELIVERED")))
            with lock:
                sent.append(body)
            # Google keeps a refused event and delivers it again until it is acknowledged.
            deadline = time.monotonic() + 60
            while (
                bm.post_signed(stack.webhook_url, body, stack.signing_key, session).status_code
                != 200
            ):
                assert time.monotonic() < deadline, "never acknowledged"
                with lock:
                    refusals["bm"] += 1
            with lock:
                acknowledged["bm"] += 1
            i += 1

    def chatapp_worker() -> None:
        session, i = requests.Session(), 0
        while time.monotonic() - start < duration:
            body = ca.encode([ca.status(f"m{i}", "Sent", user)])
            with lock:
                sent.append(body)
            answer = ca.push(stack.chatapp_url("status"), body, session)
            with lock:
                if answer.status_code == 200 and answer.json()["code"] == 0:
                    acknowledged[
                        "chatapp-spooled" if "spoolId" in answer.json() else "chatapp"
                    ] += 1
                else:
                    refusals["chatapp"] += 1
            i += 1

    def fault() -> None:
        time.sleep(outage[0])  # the fault's schedule, not a synchronisation
        stack.pubsub.freeze()
        time.sleep(outage[1] - outage[0])
        stack.pubsub.thaw()

    threads = [threading.Thread(target=bm_worker, args=(w,)) for w in range(3)]
    threads += [threading.Thread(target=chatapp_worker), threading.Thread(target=fault)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=duration + 90)
    stack.pubsub.thaw()

    total_acknowledged = sum(acknowledged.values())
    conversations = {f"load-{run}-{w}" for w in range(3)} | {
        chatapp_conversation(ca.BUSINESS, user)
    }
    wait_until(lambda: receipt_count(db, conversations) == total_acknowledged, PROCESSING_TIMEOUT,
               "every acknowledged event to be persisted")  # fmt: skip
    persisted = receipt_count(db, conversations)
    doubled = sum(n - 1 for n in writes_by_payload(stack, sent).values())
    report(
        "sustained load",
        seconds=int(duration),
        sent=len(sent),
        acknowledged=total_acknowledged,
        spooled=acknowledged["chatapp-spooled"],
        bm_503_then_retried=refusals["bm"],
        persisted=persisted,
        lost=total_acknowledged - persisted,
        duplicated=doubled,
    )
    assert total_acknowledged == len(sent)  # every event ended acknowledged
    assert refusals["chatapp"] == 0  # the spool took every Chat App batch Pub/Sub could not
    assert acknowledged["chatapp-spooled"] > 0  # the fault hit
    assert persisted == total_acknowledged  # lost 0
    assert doubled == 0
