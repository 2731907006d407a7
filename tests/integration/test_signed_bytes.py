"""Issue 21, on the real stack: only signed bytes decide anything, a credential is never
stored, and no input makes the public webhook answer 500 (which would page the on-call)."""

import base64
import json
import uuid
from typing import Any

import pytest
import requests
from google.cloud import firestore

from shared.core import records
from shared.core.events import payload_key
from shared.providers.bm.redaction import REDACTED
from tests.integration.conftest import Spy, documents, recorded, send
from tools.local.procs import wait_until
from tools.local.stack import LocalStack
from tools.payloads import bm, rbm
from tools.topology import WEBHOOK

pytestmark = pytest.mark.integration
RBM_TOKEN = "local-rbm-client-token"


def parked_for(db: firestore.Client, raw: bytes) -> dict[str, dict[str, Any]]:
    query = db.collection("parked").where(
        filter=firestore.FieldFilter("payloadKey", "==", payload_key(raw))
    )
    return {snapshot.id: snapshot.to_dict() or {} for snapshot in query.stream()}


def carrying(spy: Spy, data: bytes) -> list[dict[str, Any]]:
    """The RBM messages published so far whose envelope holds exactly these signed bytes."""
    spy.drain()
    return [
        m
        for m in spy.seen
        if m["attributes"].get("provider") == "rbm" and rbm.data_of(m["data"]) == data
    ]


def three_publishes(spy: Spy, data: bytes, name: str) -> list[dict[str, Any]]:
    found = wait_until(
        lambda: published if len(published := carrying(spy, data)) >= 3 else None,
        30,
        f"the {name} event's three publishes",
    )
    assert isinstance(found, list)
    return found


def webhook_log(stack: LocalStack) -> str:
    return (stack.log_dir / f"{WEBHOOK.target}.log").read_text(errors="replace")


@pytest.mark.parametrize("route", ["rbm", ""])
def test_a_handshake_with_a_lone_surrogate_is_refused_like_a_wrong_token(
    stack: LocalStack, route: str
) -> None:
    logged = len(webhook_log(stack))
    url = f"{stack.webhook_url.rstrip('/')}/{route}"

    def handshake(token: bytes) -> requests.Response:
        body = b'{"clientToken": "' + token + b'", "secret": "s"}'
        return requests.post(url, data=body, timeout=30)

    surrogate, wrong = handshake(b"\\ud800"), handshake(b"a-wrong-token")
    assert surrogate.status_code == wrong.status_code == 403
    assert surrogate.json() == wrong.json()
    since = webhook_log(stack)[logged:]
    assert "Traceback" not in since
    assert all(
        json.loads(line).get("severity") not in ("ERROR", "CRITICAL")
        for line in since.splitlines()
        if line.startswith("{")
    )


def test_a_signed_rbm_event_is_published_as_one_body_whatever_surrounds_it(
    stack: LocalStack, spy: Spy, db: firestore.Client
) -> None:
    """A captured signed event re-sent with other attributes, padding or message ids, even
    re-typed as a launch event, is the same canonical body: at most one parked document."""
    launch = rbm.agent_launch_event("REJECTED", event_id=f"agent/{uuid.uuid4()}")
    text = rbm.text_message("hi", phone="+447700900" + str(uuid.uuid4().int)[:3])
    copies = {
        "launch": [
            rbm.envelope(launch),
            rbm.envelope(launch, attributes={}),  # unmarked: its signed data still tells
            {**rbm.envelope(launch), "padding": "x" * 40_000},
        ],
        "text": [
            rbm.envelope(text),
            rbm.envelope(text, attributes=rbm.launch_attributes(launch)),  # re-typed
            {**rbm.envelope(text, attributes={"a": "b" * 20_000})},
        ],
    }
    sent: dict[str, list[bytes]] = {}
    for name, envelopes in copies.items():
        bodies = [rbm.encode(envelope) for envelope in envelopes]
        responses = [rbm.post_signed(stack.rbm_url, body, RBM_TOKEN) for body in bodies]
        assert [r.status_code for r in responses] == [200] * 3, [r.text for r in responses]
        recorded(stack, *responses)
        sent[name] = bodies
    for name, event in (("launch", launch), ("text", text)):
        data = rbm.encode_data(event)
        mine = three_publishes(spy, data, name)
        assert len(mine) == 3
        [body] = {m["data"] for m in mine}
        assert json.loads(body) == {"message": {"data": base64.b64encode(data).decode()}}
        assert {m["attributes"]["kind"] for m in mine} == {
            "launch": {"agent_launch_event"},
            "text": {"text"},
        }[name]
        for raw in sent[name]:
            assert parked_for(db, raw) == {}  # nothing keyed by what was not signed
        parked = parked_for(db, body)
        assert len(parked) == (1 if name == "launch" else 0)
        for document in parked.values():
            assert document["category"] == "AGENT_LAUNCH"
            assert document["rawBody"] == body


def test_the_oauth_code_of_a_sign_in_is_never_stored_or_published(
    stack: LocalStack, spy: Spy, db: firestore.Client
) -> None:
    spy.drain()
    code = f"oauth-code-{uuid.uuid4().hex}"
    cid = f"sign-in-{uuid.uuid4().hex[:8]}"
    stored_whole = bm.user_event(cid, "authenticationResponse", code=code)
    del stored_whole["conversationId"]  # parked whole: its raw body is kept
    recorded_one = bm.user_event(cid, "authenticationResponse", code=code)
    responses = [send(stack, bm.encode(stored_whole)), send(stack, bm.encode(recorded_one))]
    assert [r.status_code for r in responses] == [200, 200]
    recorded(stack, *responses)
    published = [m["data"] for m in spy.drain() if m["attributes"].get("provider") == "bm"]
    redacted = [body for body in published if REDACTED.encode() in body]
    assert len(redacted) == 2
    assert all(code.encode() not in body for body in published)
    parked = [document for body in redacted for document in parked_for(db, body).values()]
    assert [document["category"] for document in parked] == ["MALFORMED"]
    assert code.encode() not in parked[0]["rawBody"]
    messages = documents(db.collection(f"{records.conversation_path(cid)}/{records.MESSAGES}"))
    assert len(messages) == 1
    assert code not in json.dumps(messages, default=str)
