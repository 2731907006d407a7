"""`make demo`: a short signed RCS Business Messaging conversation, a Business Messages one
and Chat App batches through the local stack, then a simulated week of history for
`make report`.

Plays against a running `make local` when there is one, otherwise starts a stack of its
own (with its own loopback stand-ins of the Google APIs) and stops it after.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from google.cloud import firestore

from shared.adapters.change_stream import ChangeStream, ChangeStreamSettings
from shared.core.records import receipts_of
from shared.providers.chatapp.normalise import conversation_id as chatapp_conversation
from shared.providers.rbm.normalise import conversation_id as rbm_conversation
from shared.providers.whatsapp.normalise import conversation_id as wa_conversation
from tools.local.history import DAYS, simulate
from tools.local.main import STATE_FILE
from tools.local.procs import answers_http, wait_until
from tools.local.stack import LocalStack, StackSettings, running
from tools.payloads import bm as bm
from tools.payloads import chatapp as ca
from tools.payloads import rbm
from tools.payloads import whatsapp as wa

CHATAPP_TYPES = ("status", "inbound", "audit")
QUEUE_TYPES = ("ChatAppStatus", "ChatAppInbound", "ChatAppAudit")
PUBLISH_TIMEOUT = 30.0  # seconds for the emulator to confirm a publish of the week's changes


@dataclass(frozen=True)
class Target:
    webhook: str
    signing_key: str
    client_token: str
    project: str
    firestore_host: str
    pubsub_host: str
    changes_topic: str
    calls: Callable[[], list[dict[str, Any]]]  # the READ receipts the API received
    chatapp: Mapping[str, str]  # Chat App callback URL by type: status, inbound, audit
    rbm_url: str
    rbm_client_token: str
    rbm_calls: Callable[[], list[dict[str, Any]]]  # the agent events the RBM API received
    whatsapp_url: str
    whatsapp_app_secret: str
    whatsapp_verify_token: str
    graph_standin: str | None  # the Graph API stand-in's endpoint, when the stack runs one
    graph_calls: Callable[[], list[dict[str, Any]]]  # the marks-as-read the Graph API received
    alibaba: str | None = None  # the Chat App queues' stand-in, when the stack runs one

    @classmethod
    def of(cls, stack: LocalStack) -> Target:
        """A stack started in this process, with its stand-in."""
        standin, rbm_standin, graph = stack.standin, stack.rbm_standin, stack.graph_standin
        assert standin is not None
        assert rbm_standin is not None
        assert graph is not None
        return cls(
            stack.webhook_url,
            stack.signing_key,
            stack.client_token,
            stack.settings.project,
            stack.firestore_host,
            stack.pubsub_host,
            stack.settings.changes_topic,
            lambda: standin.summary()["calls"],
            {kind: stack.chatapp_url(kind) for kind in CHATAPP_TYPES},
            stack.rbm_url,
            stack.rbm_client_token,
            lambda: rbm_standin.summary()["calls"],
            stack.whatsapp_url,
            stack.settings.secret("WHATSAPP_APP_SECRET"),
            stack.settings.secret("WHATSAPP_VERIFY_TOKEN"),
            graph.endpoint,
            lambda: graph.summary()["calls"],
            stack.alibaba.endpoint if stack.alibaba else None,
        )

    def firestore(self) -> firestore.Client:
        os.environ["FIRESTORE_EMULATOR_HOST"] = self.firestore_host  # clients read it only there
        return firestore.Client(project=self.project)

    def change_stream(self) -> ChangeStream:
        os.environ["PUBSUB_EMULATOR_HOST"] = self.pubsub_host  # clients read it only there
        return ChangeStreamSettings(self.project, self.changes_topic, PUBLISH_TIMEOUT).connect()


def running_stack() -> Target | None:
    try:
        state = json.loads(STATE_FILE.read_text())
    except (FileNotFoundError, ValueError):
        return None
    if not answers_http(state["webhook"]):
        return None
    return Target(
        state["webhook"],
        state["signingKey"],
        state["clientToken"],
        state["GOOGLE_CLOUD_PROJECT"],
        state["FIRESTORE_EMULATOR_HOST"],
        state["PUBSUB_EMULATOR_HOST"],
        state["CHANGES_TOPIC"],
        functools.partial(_standin_calls, state["apiEndpoint"] if state["standin"] else None),
        {kind: state[f"chatapp{kind.title()}Url"] for kind in CHATAPP_TYPES},
        state["rbmUrl"],
        state["rbmClientToken"],
        functools.partial(_standin_calls, state["rbmApiEndpoint"] if state["rbmStandin"] else None),
        state["whatsappUrl"],
        state["whatsappAppSecret"],
        state["whatsappVerifyToken"],
        graph_standin := state["whatsappApiEndpoint"] if state["whatsappStandin"] else None,
        functools.partial(_standin_calls, graph_standin),
        state.get("alibabaStandin"),
    )


def _standin_calls(endpoint: str | None) -> list[dict[str, Any]]:
    """What a loopback stand-in of a running stack received; nothing from a real API."""
    if endpoint is None:
        return []
    found: list[dict[str, Any]] = requests.get(f"{endpoint}/_standin/calls", timeout=5).json()[
        "calls"
    ]
    return found


def play(target: Target) -> None:
    play_rbm(target)
    play_business_messages(target)
    play_whatsapp(target)
    play_chatapp(target)
    play_chatapp_queues(target)
    play_history(target)


def play_history(target: Target) -> None:
    """A simulated week before today, so `make report` has days to compare."""
    today = datetime.now(UTC).date()
    print(f"\nA simulated week for `make report`: {DAYS} days before {today}...", flush=True)
    messages = simulate(target.firestore(), today, target.change_stream())
    print(f"  recorded {messages} agent messages with their receipts, and users' messages")


def play_rbm(target: Target) -> None:
    phone = "+4477009" + str(uuid.uuid4().int)[:5]
    reply = f"reply-{uuid.uuid4().hex[:6]}"

    def body(event: dict[str, Any]) -> bytes:
        return rbm.encode(rbm.envelope(event))

    hello = body(rbm.text_message("Is my order on its way?", phone=phone))
    delivered = body(rbm.user_event("DELIVERED", reply, phone=phone))
    steps: list[tuple[str, Callable[[], bytes]]] = [
        ("user writes", lambda: hello),
        ("Google redelivers the same event", lambda: hello),
        ("the agent's reply DELIVERED", lambda: delivered),
        ("... and READ", lambda: body(rbm.user_event("READ", reply, phone=phone))),
        ("a late duplicate of the DELIVERED", lambda: delivered),
        ("user is typing: acknowledged, not stored", lambda: body(rbm.user_event("IS_TYPING"))),
        (
            "user taps a suggestion",
            lambda: body(rbm.suggestion_response("t", "Track", phone=phone)),
        ),
    ]
    handshake = rbm.post_handshake(target.rbm_url, target.rbm_client_token, "demo-secret")
    print(f"\nRCS Business Messaging: agent {rbm.AGENT_ID}, user {phone}\n")
    print(f"  {'webhook verification handshake':<52} -> {handshake.status_code} {handshake.text!r}")
    for title, build in steps:
        response = rbm.post_signed(target.rbm_url, build(), target.rbm_client_token)
        print(f"  {title:<52} -> {response.status_code}")
    forged = rbm.post_signed(target.rbm_url, hello, "not-the-client-token")
    print(f"  {'a request signed with the wrong client token':<52} -> {forged.status_code}")
    show_rbm(target, phone, reply)


def show_rbm(target: Target, phone: str, reply: str) -> None:
    cid = rbm_conversation(rbm.AGENT_ID, phone)
    messages = target.firestore().document(f"conversations/{cid}").collection("messages")

    def settled() -> bool:
        documents = {snap.id: snap.to_dict() or {} for snap in messages.stream()}
        users = [d for d in documents.values() if d.get("direction") == "USER"]
        read = documents.get(reply, {}).get("status") == "READ"
        states = {d.get("agentReadReceipt", {}).get("state") for d in users}
        return read and len(users) == 2 and states <= {"SENT", "FAILED"}

    wait_until(settled, 60, "the RBM conversation to be persisted")
    print(f"\nFirestore: conversations/{cid}")
    for snap in messages.order_by("recordTime").stream():
        d = snap.to_dict() or {}
        state = d.get("agentReadReceipt", {}).get("state", "")
        what = (
            d.get("status") or f"{d.get('messageType')}: {d.get('text') or d.get('postbackData')}"
        )
        print(f"  {_short(snap.id):<24}{d.get('direction', ''):<8}{what:<40}{state}")
    events = [c for c in target.rbm_calls() if c["phone"] == phone]
    print("\nAgent events the RBM API stand-in received:")
    for call in events:
        event = f"{call['event_type']} {call['message_id']}"
        duplicate = " (a reused eventId: ignored)" if call["duplicate"] else ""
        print(f"  POST phones/{phone}/agentEvents {event} -> {call['status']}{duplicate}")


def play_whatsapp(target: Target) -> None:
    """Statuses (one failed), users' messages of several types in one POST, a username user
    (no phone number), and Meta's verification handshake."""
    user = "1650555" + str(uuid.uuid4().int)[:4]
    bsuid = f"US.{uuid.uuid4().int % 10**20}"
    sent, failing = wa.wamid(f"order-{user}"), wa.wamid(f"notice-{user}")
    t0 = int(wa.now_seconds())

    def post(*changes: dict[str, Any]) -> requests.Response:
        raw = wa.encode(wa.body(wa.entry(*changes)))
        return wa.post(
            target.whatsapp_url, raw, target.whatsapp_app_secret, None, target.graph_standin
        )

    def at(seconds: int) -> str:
        return str(t0 + seconds)

    user_messages = [  # ids that differ from the start, so the table tells them apart
        wa.message(wa.wamid(f"{kind}-{user}"), kind, user, at=at(n))
        for n, kind in enumerate(("text", "image", "interactive", "location"), start=1)
    ]
    statuses = [
        wa.status(sent, "sent", user, at=at(0), biz_opaque_callback_data="order-1842"),
        wa.status(sent, "read", user, at=at(5)),  # Meta skips `delivered` when read at once
        wa.failed(failing, user, 131026, "Message undeliverable"),
    ]
    steps: list[tuple[str, Callable[[], requests.Response]]] = [
        (
            "a sent and a read status (no delivered), a failure",
            lambda: post(wa.change(statuses=statuses)),
        ),
        ("Meta delivers the same POST again", lambda: post(wa.change(statuses=statuses))),
        (
            "a late delivered, after the read",
            lambda: post(wa.change(statuses=[wa.status(sent, "delivered", user, at=at(4))])),
        ),
        (
            "text, image, button reply, location in one POST",
            lambda: post(wa.change(messages=user_messages, contacts=[wa.contact(user)])),
        ),
        (
            "a username user, without a phone number",
            lambda: post(
                wa.change(
                    messages=[wa.message(wa.wamid(f"{bsuid}-hi"), "text", None, user_id=bsuid)],
                    contacts=[wa.contact(None, "Ana", user_id=bsuid, username="@ana")],
                )
            ),
        ),
    ]
    query = wa.handshake_query(target.whatsapp_verify_token, challenge="demo-challenge")
    handshake = requests.get(f"{target.whatsapp_url}?{query}", timeout=10)
    print(f"\nWhatsApp (Cloud API): business number {wa.PHONE_NUMBER_ID}, user {user}\n")
    print(f"  {'verification handshake (GET)':<52} -> {handshake.status_code} {handshake.text!r}")
    for title, send in steps:
        print(f"  {title:<52} -> {send().status_code}")
    raw = wa.encode(wa.body(wa.entry(wa.change(statuses=statuses))))
    forged = wa.post(target.whatsapp_url, raw, "not-the-app-secret")
    print(f"  {'a POST signed with the wrong app secret':<52} -> {forged.status_code}")
    show_whatsapp(target, wa_conversation(wa.PHONE_NUMBER_ID, user), len(user_messages))


def show_whatsapp(target: Target, cid: str, user_messages: int) -> None:
    messages = target.firestore().document(f"conversations/{cid}").collection("messages")

    def settled() -> bool:
        documents = [snap.to_dict() or {} for snap in messages.stream()]
        users = [d for d in documents if d.get("direction") == "USER"]
        states = {d.get("agentReadReceipt", {}).get("state") for d in users}
        return (
            len(users) == user_messages
            and states <= {"SENT", "FAILED"}
            and len(documents) > len(users) + 1
        )

    wait_until(settled, 60, "the WhatsApp conversation to be persisted")
    print(f"\nFirestore: conversations/{cid}")
    for snap in messages.order_by("recordTime").stream():
        d = snap.to_dict() or {}
        read = d.get("agentReadReceipt", {})
        state = read.get("state", "") + (
            f" (covered by {_short(read['coveredBy'])})" if read.get("coveredBy") else ""
        )
        what = d.get("status") or d.get("messageType", "")
        extra = _short(
            str(d.get("bizOpaqueCallbackData") or d.get("errorCode") or d.get("text") or "")
        )
        print(f"  {_short(snap.id):<24}{d.get('direction', ''):<8}{what:<12}{extra:<24}{state}")
    calls = [c for c in target.graph_calls() if c.get("phone_number_id") == wa.PHONE_NUMBER_ID]
    print("\nMarks-as-read the Graph API stand-in received (one covers the earlier ones):")
    for call in calls:
        path = f"/{call['version']}/{call['phone_number_id']}/messages"
        print(f"  POST {path} {_short(str(call['message_id']))} -> {call['status']}")


def play_business_messages(target: Target) -> None:
    cid = f"demo-{uuid.uuid4().hex[:8]}"
    hello = bm.encode(bm.user_text(cid, "user-1", "Hi! Are you open on Sunday?"))
    delivered = bm.encode(
        bm.receipts(
            cid, ("agent-1", "DELIVERED"), ("agent-2", "DELIVERED"), ("agent-3", "DELIVERED")
        )
    )
    # Each payload is built when it is sent, so its times are those of the moment.
    steps: list[tuple[str, Callable[[], bytes]]] = [
        ("user says hello", lambda: hello),
        ("Google redelivers the same message", lambda: hello),
        (
            "agent's 3 messages DELIVERED (one payload)",
            lambda: delivered,
        ),
        (
            "user READs agent-1 and agent-2",
            lambda: bm.encode(bm.receipts(cid, ("agent-1", "READ"), ("agent-2", "READ"))),
        ),
        ("Google redelivers the DELIVERED receipts late", lambda: delivered),
        (
            "user taps a suggestion",
            lambda: bm.encode(bm.suggestion_response(cid, "user-2", "hours", "Opening hours")),
        ),
        ("user is typing", lambda: bm.encode(bm.user_status(cid, isTyping=True))),
        (
            "READ for agent-3 beside a RECEIPT_TYPE_UNSPECIFIED",
            lambda: bm.encode(
                bm.receipts(cid, ("agent-3", "READ"), ("agent-3", "RECEIPT_TYPE_UNSPECIFIED"))
            ),
        ),
    ]
    handshake = requests.post(
        target.webhook,
        json={"clientToken": target.client_token, "secret": "demo-secret"},
        timeout=10,
    )
    print(f"\nGoogle Business Messages: conversation {cid}\n")
    print(f"  {'webhook verification handshake':<52} -> {handshake.status_code} {handshake.text!r}")
    for title, build in steps:
        response = bm.post_signed(target.webhook, build(), target.signing_key)
        print(f"  {title:<52} -> {response.status_code}")
    forged = bm.post_signed(target.webhook, bm.encode(bm.user_text(cid, "x", "?")), "not-the-key")
    print(f"  {'a request signed with the wrong key':<52} -> {forged.status_code}")
    show(target, cid)


def show(target: Target, cid: str) -> None:
    db = target.firestore()
    conversation = db.document(f"conversations/{cid}")
    messages = conversation.collection("messages")

    def settled() -> bool:
        documents = [snap.to_dict() or {} for snap in messages.stream()]
        users = [d for d in documents if d.get("kind") in ("message", "suggestionResponse")]
        agent_3 = messages.document("agent-3").get().to_dict() or {}
        return (
            len(documents) == 6
            and agent_3.get("status") == "READ"
            and all(d.get("agentReadReceipt", {}).get("state") in ("SENT", "FAILED") for d in users)
            and len(users) == 2
        )

    wait_until(settled, 60, "the demo conversation to be persisted")
    print("\nFirestore: conversations/" + cid)
    header = ("message", 24), ("direction", 10), ("kind / status", 20), ("delivered", 14)
    print("  " + "".join(f"{name:<{width}}" for name, width in header) + f"{'read':<14}agent READ")
    for snap in messages.order_by("recordTime").stream():
        d = snap.to_dict() or {}
        state = d.get("agentReadReceipt", {}).get("state", "")
        print(
            f"  {_short(snap.id):<24}{d.get('direction', ''):<10}"
            f"{d.get('kind') or d.get('status', ''):<20}"
            f"{_clock(d.get('deliveredTime')):<14}{_clock(d.get('readTime')):<14}{state}"
        )
    receipts = receipts_of({snap.id: snap.to_dict() or {} for snap in messages.stream()})
    print(f"\n  receipts: {len(receipts)} unique ({', '.join(sorted(receipts))})")
    parked = (
        db.collection("parked")
        .where(filter=firestore.FieldFilter("conversationId", "==", cid))
        .stream()
    )
    for snap in parked:
        print(f"  parked: {snap.get('category')}: {snap.get('reason')}")
    calls = [c for c in target.calls() if c["conversation_id"] == cid]
    print("\nAgent READ receipts the Business Messages stand-in received:")
    for call in calls:
        print(
            f"  PATCH conversations/{cid}/messages/{call['message_id']}/receipt -> {call['status']}"
        )


def play_chatapp(target: Target) -> None:
    user = "86139" + str(uuid.uuid4().int)[:8]
    template = f"demo_order_update_{uuid.uuid4().hex[:6]}"
    t0 = ca.now_millis()
    statuses = [
        ca.status("wa-1", "Sent", user, at=t0),
        ca.status("wa-1", "Delivered", user, at=t0 + 1_500),
        ca.status("wa-1", "Read", user, at=t0 + 9_000),
        ca.status("wa-2", "Sent", user, at=t0 + 100),
        ca.failed("wa-2", user, "131026", "Receiver is incapable of receiving this message"),
    ]
    photo = "https://chatapp.example/media/parcel.jpg"
    steps: list[tuple[str, str, list[dict[str, Any]]]] = [
        ("5 status reports in one batch", "status", statuses),
        ("Alibaba pushes the same batch again", "status", statuses),
        ("a late Delivered for wa-1, after its Read", "status", [statuses[1]]),
        (
            "the user writes, and sends a photo",
            "inbound",
            [
                ca.inbound_text("mo-1", user, "Has it shipped?"),
                ca.inbound_image("mo-2", user, photo),
            ],
        ),
        ("template review: fail", "audit", [ca.audit(template, "en_US", "fail", "Bad variable")]),
        ("template review: pass", "audit", [ca.audit(template, "en_US", "pass")]),
        (
            "a batch with one malformed element",
            "status",
            [ca.status("wa-3", "Sent", user), {"MessageId": "wa-4", "Status": "Sent"}],
        ),
    ]
    print(f"\nAlibaba Cloud Chat App: business {ca.BUSINESS}, user {user}\n")
    for title, kind, events in steps:
        answer = ca.push(target.chatapp[kind], ca.encode(events))
        print(f"  {title:<52} -> {answer.status_code} {answer.json()['msg']}")
    forged = ca.push(target.chatapp["status"].rsplit("/", 1)[0] + "/guessed", ca.encode(statuses))
    print(f"  {'a push with a wrong callback token':<52} -> {forged.status_code}")
    show_chatapp(target, user, template)


def show_chatapp(target: Target, user: str, template: str) -> None:
    db = target.firestore()
    cid = chatapp_conversation(ca.BUSINESS, user)
    messages = db.document(f"conversations/{cid}").collection("messages")
    review = db.document(f"templateReviews/waba-1~{template}~en_US")

    def settled() -> bool:
        statuses = {snap.id: (snap.to_dict() or {}).get("status") for snap in messages.stream()}
        latest = review.get().to_dict() or {}
        return (
            statuses.get("wa-1") == "Read"
            and statuses.get("wa-2") == "Failed"
            and {"wa-3", "mo-1", "mo-2"} <= set(statuses)
            and latest.get("status") == "pass"
        )

    wait_until(settled, 60, "the Chat App batches to be persisted")
    print(f"\nFirestore: conversations/{cid}")
    header = ("message", 10), ("direction", 10), ("type / status", 15), ("sent", 14)
    columns = "".join(f"{name:<{width}}" for name, width in header)
    print(f"  {columns}{'delivered':<14}{'read':<14}error / text")
    for snap in messages.order_by("messageId").stream():
        d = snap.to_dict() or {}
        detail = d.get("errorCode") or d.get("text") or d.get("imageUrl") or ""
        print(
            f"  {snap.id:<10}{d.get('direction', ''):<10}"
            f"{d.get('status') or d.get('messageType', ''):<15}"
            f"{_clock(d.get('sentTime')):<14}{_clock(d.get('deliveredTime')):<14}"
            f"{_clock(d.get('readTime')):<14}{detail}"
        )
    receipts = receipts_of({snap.id: snap.to_dict() or {} for snap in messages.stream()})
    print(f"\n  receipts: {len(receipts)} unique (MessageId, Status) pairs")
    latest = review.get().to_dict() or {}
    history = review.collection("history").order_by("reviewTime").stream()
    trail = " -> ".join(f"{(s.to_dict() or {}).get('status')}" for s in history)
    print(f"\nTemplate {template} (en_US): {latest.get('status')}   history: {trail}")


def play_chatapp_queues(target: Target) -> None:
    """Chat App receipts enqueued as Alibaba enqueues them in SMQ mode, pulled by the puller."""
    if target.alibaba is None:
        print("\nChat App SMQ queues: the stack pulls real queues (CHATAPP_SMQ_QUEUES); skipped")
        return
    user = "86139" + str(uuid.uuid4().int)[:8]
    template = f"demo_queue_review_{uuid.uuid4().hex[:6]}"
    t0 = ca.now_millis()
    delivered = ca.status("wa-q1", "Delivered", user, at=t0 + 1_200)
    steps: list[tuple[str, str, dict[str, Any]]] = [
        ("Sent for wa-q1", "ChatAppStatus", ca.status("wa-q1", "Sent", user, at=t0)),
        ("Delivered for wa-q1", "ChatAppStatus", delivered),
        ("the same Delivered again (receipts are not idempotent)", "ChatAppStatus", delivered),
        ("Read for wa-q1", "ChatAppStatus", ca.status("wa-q1", "Read", user, at=t0 + 8_000)),
        ("the user writes back", "ChatAppInbound", ca.inbound_text("mo-q1", user, "Thanks!")),
        ("template review: pass", "ChatAppAudit", ca.audit(template, "en_US", "pass")),
    ]
    print(f"\nChat App from SMQ queues: business {ca.BUSINESS}, user {user}\n")
    for title, message_type, receipt in steps:
        url = f"{target.alibaba}/_standin/queues/{message_type}/messages"
        requests.post(url, data=json.dumps(receipt), timeout=10).raise_for_status()
        print(f"  enqueued in {message_type:<15} {title}")
    db = target.firestore()
    cid = chatapp_conversation(ca.BUSINESS, user)
    messages = db.document(f"conversations/{cid}").collection("messages")
    review = db.document(f"templateReviews/waba-1~{template}~en_US")

    def queued(message_type: str) -> tuple[int, int]:
        """Deleted from the queue, and left in it (waiting or handed out)."""
        url = f"{target.alibaba}/_standin/queues/{message_type}/messages"
        counts = requests.get(url, timeout=10).json()
        return counts["deleted"], counts["visible"] + counts["in_flight"]

    def landed() -> bool:
        statuses = {snap.id: (snap.to_dict() or {}).get("status") for snap in messages.stream()}
        reviewed = (review.get().to_dict() or {}).get("status") == "pass"
        emptied = all(queued(message_type)[1] == 0 for message_type in QUEUE_TYPES)
        return statuses.get("wa-q1") == "Read" and "mo-q1" in statuses and reviewed and emptied

    wait_until(landed, 90, "the queued Chat App receipts to be pulled and persisted")
    receipts = receipts_of({snap.id: snap.to_dict() or {} for snap in messages.stream()})
    print(f"\nFirestore: conversations/{cid}")
    for snap in messages.order_by("messageId").stream():
        d = snap.to_dict() or {}
        print(f"  {snap.id:<8}{d.get('direction', ''):<7}{d.get('status') or d.get('text', '')}")
    print(f"  receipts: {len(receipts)} unique (the repeated Delivered collapsed)")
    print(f"  template {template} (en_US): {(review.get().to_dict() or {}).get('status')}")
    for message_type in QUEUE_TYPES:
        deleted, left = queued(message_type)
        print(f"  queue {message_type:<15} deleted {deleted}, left {left}")


def _clock(value: Any) -> str:
    return value.strftime("%H:%M:%S.%f")[:-3] if value is not None else "-"


def _short(document_id: str) -> str:
    return document_id if len(document_id) <= 22 else document_id[:19] + "..."


def main() -> None:
    target = running_stack()
    if target is not None:
        print(f"playing against the running `make local` at {target.webhook}")
        play(target)
        return
    print("no `make local` running: starting a stack for the demo...")
    with (
        tempfile.TemporaryDirectory(prefix="receipt-demo-") as work_dir,
        running(StackSettings(work_dir=Path(work_dir))) as stack,
    ):
        play(Target.of(stack))


if __name__ == "__main__":
    main()
