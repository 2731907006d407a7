"""The Graph API stand-in alone (no emulators): mark-as-read as Meta documents it, its
refusals in Meta's error shapes, scripted faults, and read coverage per conversation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tools.payloads import whatsapp as wa
from tools.standins.graph_api import CALLS_PATH, GraphApiStandIn

TOKEN = "standin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
READ = {"messaging_product": "whatsapp", "status": "read"}


@pytest.fixture
def graph() -> Iterator[GraphApiStandIn]:
    with GraphApiStandIn(TOKEN, phone_number_ids=[wa.PHONE_NUMBER_ID]) as standin:
        yield standin


def mark(graph: GraphApiStandIn, message_id: str, **overrides: Any) -> requests.Response:
    version = overrides.pop("version", "v27.0")
    number = overrides.pop("number", wa.PHONE_NUMBER_ID)
    headers = overrides.pop("headers", AUTH)
    body = overrides.pop("body", {**READ, "message_id": message_id})
    url = f"{graph.endpoint}/{version}/{number}/messages"
    if isinstance(body, bytes):
        return requests.post(url, data=body, headers=headers, timeout=5)
    return requests.post(url, json=body, headers=headers, timeout=5)


def error_of(response: requests.Response) -> dict[str, Any]:
    error = response.json()["error"]
    assert {"message", "type", "code", "fbtrace_id"} <= error.keys()
    return dict(error)


def test_marking_a_message_read_marks_the_earlier_ones_of_its_conversation_only(
    graph: GraphApiStandIn,
) -> None:
    graph.received(wa.PHONE_NUMBER_ID, wa.USER, "m1", "m2", "m3")
    graph.received(wa.PHONE_NUMBER_ID, wa.BSUID, "o1")
    response = mark(graph, "m2")
    assert (response.status_code, response.json()) == (200, {"success": True})
    assert graph.read_messages(wa.PHONE_NUMBER_ID, wa.USER) == ["m1", "m2"]
    assert graph.unread_messages(wa.PHONE_NUMBER_ID, wa.USER) == ["m3"]
    assert graph.unread_messages(wa.PHONE_NUMBER_ID, wa.BSUID) == ["o1"]
    assert mark(graph, "m1").status_code == 200  # a repeat is harmless
    assert graph.read_messages(wa.PHONE_NUMBER_ID, wa.USER) == ["m1", "m2"]


def test_messages_are_known_from_a_webhook_body(graph: GraphApiStandIn) -> None:
    raw = wa.encode(
        wa.body(
            wa.entry(
                wa.change(
                    messages=[
                        wa.message("a", "text"),
                        wa.message("b", "text", None, user_id=wa.BSUID),
                    ]
                )
            )
        )
    )
    graph.received_body(raw)
    assert mark(graph, "b").status_code == 200
    assert graph.read_messages(wa.PHONE_NUMBER_ID, wa.BSUID) == ["b"]
    assert graph.unread_messages(wa.PHONE_NUMBER_ID, wa.USER) == ["a"]


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}]
)
def test_a_missing_or_wrong_token_is_metas_401_with_code_190(
    graph: GraphApiStandIn, headers: dict[str, str]
) -> None:
    graph.received(wa.PHONE_NUMBER_ID, wa.USER, "m1")
    response = mark(graph, "m1", headers=headers)
    assert response.status_code == 401
    error = error_of(response)
    assert (error["type"], error["code"]) == ("OAuthException", 190)
    assert graph.unread_messages(wa.PHONE_NUMBER_ID, wa.USER) == ["m1"]


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"version": "v1.0"}, 2500),
        ({"number": "123"}, 100),
        ({"body": b"not json"}, 100),
        ({"body": {"messaging_product": "whatsapp", "status": "read"}}, 100),
        ({"body": {**READ, "message_id": "m1", "extra": 1}}, 100),
        ({"body": {"messaging_product": "sms", "status": "read", "message_id": "m1"}}, 100),
        ({"body": {**READ, "message_id": "never-received"}}, 131009),
    ],
)
def test_a_bad_request_is_400_with_metas_code(
    graph: GraphApiStandIn, overrides: dict[str, Any], code: int
) -> None:
    graph.received(wa.PHONE_NUMBER_ID, wa.USER, "m1")
    response = mark(graph, "m1", **overrides)
    assert response.status_code == 400
    assert error_of(response)["code"] == code
    assert graph.calls()[-1].code == code
    assert graph.unread_messages(wa.PHONE_NUMBER_ID, wa.USER) == ["m1"]


def test_faults_answer_the_next_calls_then_the_api_behaves(graph: GraphApiStandIn) -> None:
    graph.received(wa.PHONE_NUMBER_ID, wa.USER, "m1")
    graph.fail_next(130429, 80007, 4, 500, 503, 131009, 190)
    answers = [mark(graph, "m1") for _ in range(8)]
    assert [r.status_code for r in answers] == [400, 400, 400, 500, 503, 400, 401, 200]
    assert [error_of(r)["code"] for r in answers[:7]] == [130429, 80007, 4, 131000, 2, 131009, 190]
    assert [c.injected for c in graph.calls()] == [True] * 7 + [False]
    assert graph.read_messages(wa.PHONE_NUMBER_ID, wa.USER) == ["m1"]


def test_every_call_is_recorded_and_listed(graph: GraphApiStandIn) -> None:
    graph.received(wa.PHONE_NUMBER_ID, wa.USER, "m1")
    mark(graph, "m1")
    mark(graph, "m1", headers={})
    calls = graph.wait_for(lambda calls: len(calls) == 2, timeout=5)
    assert [(c.message_id, c.status) for c in calls] == [("m1", 200), ("m1", 401)]
    listed = requests.get(graph.endpoint + CALLS_PATH, timeout=5).json()["calls"]
    assert [c["status"] for c in listed] == [200, 401]
