"""The RBM API stand-in against google-auth's real service-account flow: agentEvents.create
as documented, its refusals, the reused-eventId choice, and scripted outages."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import google.auth.exceptions
import pytest
import requests
from google.auth.transport.requests import AuthorizedSession
from google.auth.transport.requests import Request as AuthRequest
from google.oauth2 import service_account

from tools.payloads.rbm import AGENT, AGENT_ID
from tools.standins.rbm_api import SCOPE, RbmApiStandIn, Stall

PHONE = "+447700900123"
OTHER_PHONE = "+447700900456"
BM_SCOPE = "https://www.googleapis.com/auth/businessmessages"
NANOS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z")


@pytest.fixture
def standin() -> Iterator[RbmApiStandIn]:
    server = RbmApiStandIn().start()
    yield server
    server.stop()


def credentials_for(
    standin: RbmApiStandIn, tmp_path: Path, scope: str = SCOPE
) -> service_account.Credentials:
    key = standin.write_key(tmp_path / "rbm-key.json")
    credentials: service_account.Credentials = (
        service_account.Credentials.from_service_account_file(str(key), scopes=[scope])
    )
    return credentials


@pytest.fixture
def session(standin: RbmApiStandIn, tmp_path: Path) -> AuthorizedSession:
    return AuthorizedSession(credentials_for(standin, tmp_path))


def url_for(standin: RbmApiStandIn, phone: str = PHONE) -> str:
    return f"{standin.endpoint}/v1/phones/{phone}/agentEvents"


def send_read(
    session: requests.Session,
    standin: RbmApiStandIn,
    message_id: str = "user-msg-1",
    *,
    phone: str = PHONE,
    event_id: str | None = None,
    agent_id: str | None = AGENT_ID,
    body: dict[str, Any] | None = None,
    timeout: float = 10,
) -> requests.Response:
    params = {"eventId": event_id or str(uuid.uuid4())}
    if agent_id is not None:
        params["agentId"] = agent_id
    document = body if body is not None else {"eventType": "READ", "messageId": message_id}
    return session.post(url_for(standin, phone), params=params, json=document, timeout=timeout)


def google_status(response: requests.Response) -> tuple[int, str]:
    error = response.json()["error"]
    assert error["code"] == response.status_code
    return response.status_code, error["status"]


def test_a_read_is_accepted_with_a_token_from_the_generated_key(
    session: AuthorizedSession, standin: RbmApiStandIn
) -> None:
    event_id = str(uuid.uuid4())
    response = send_read(session, standin, "user-msg-1", event_id=event_id)

    assert response.status_code == 200
    created = response.json()
    assert created == {
        "name": f"phones/{PHONE}/agentEvents/{event_id}",
        "eventType": "READ",
        "messageId": "user-msg-1",
        "sendTime": created["sendTime"],
    }
    assert NANOS.fullmatch(created["sendTime"])
    (call,) = standin.calls()
    assert (call.phone, call.agent_id, call.event_id, call.event_type, call.message_id) == (
        PHONE,
        AGENT_ID,
        event_id,
        "READ",
        "user-msg-1",
    )
    assert (call.status, call.duplicate, call.injected) == (200, False, False)
    send_read(session, standin, "user-msg-2")
    assert standin.tokens.grants == 1  # the token is reused until it expires


def test_the_phone_may_be_written_with_a_literal_or_an_encoded_plus(
    session: AuthorizedSession, standin: RbmApiStandIn
) -> None:
    assert send_read(session, standin, phone=PHONE).status_code == 200
    assert send_read(session, standin, phone=PHONE.replace("+", "%2B")).status_code == 200
    assert [call.phone for call in standin.delivered()] == [PHONE, PHONE]


def test_is_typing_needs_no_message_id(session: AuthorizedSession, standin: RbmApiStandIn) -> None:
    response = send_read(session, standin, body={"eventType": "IS_TYPING"})
    assert response.status_code == 200
    assert "messageId" not in response.json()


def test_a_reused_event_id_is_ignored_and_answered_as_the_first_time(
    session: AuthorizedSession, standin: RbmApiStandIn
) -> None:
    event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{AGENT_ID}/{PHONE}/user-msg-1/READ"))
    first = send_read(session, standin, "user-msg-1", event_id=event_id)
    again = send_read(session, standin, "user-msg-1", event_id=event_id)
    other_body = send_read(session, standin, "user-msg-9", event_id=event_id)

    assert [r.status_code for r in (first, again, other_body)] == [200, 200, 200]
    assert again.json() == first.json() == other_body.json()
    assert [call.duplicate for call in standin.calls()] == [False, True, True]
    assert len(standin.delivered()) == 1


def test_a_reused_event_id_can_answer_409_instead(
    standin: RbmApiStandIn, session: AuthorizedSession
) -> None:
    standin.duplicate_answer = "conflict"
    event_id = str(uuid.uuid4())
    assert send_read(session, standin, event_id=event_id).status_code == 200
    assert google_status(send_read(session, standin, event_id=event_id)) == (409, "ALREADY_EXISTS")
    assert [(call.status, call.duplicate) for call in standin.calls()] == [
        (200, False),
        (409, True),
    ]


def test_concurrent_calls_with_one_event_id_make_one_event(
    standin: RbmApiStandIn, tmp_path: Path
) -> None:
    credentials = credentials_for(standin, tmp_path)
    credentials.refresh(AuthRequest())
    headers = {"Authorization": f"Bearer {credentials.token}"}
    event_id = str(uuid.uuid4())

    def read(_: int) -> requests.Response:
        with requests.Session() as plain:
            plain.headers.update(headers)
            return send_read(plain, standin, event_id=event_id)

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(read, range(8)))

    assert {r.status_code for r in responses} == {200}
    assert len({r.text for r in responses}) == 1
    assert len(standin.delivered()) == 1
    assert sum(call.duplicate for call in standin.calls()) == 7


def test_a_user_without_rcs_gets_404(session: AuthorizedSession, standin: RbmApiStandIn) -> None:
    standin.without_rcs(OTHER_PHONE)
    assert google_status(send_read(session, standin, phone=OTHER_PHONE)) == (404, "NOT_FOUND")
    assert send_read(session, standin, phone=PHONE).status_code == 200


def test_an_unlaunched_agent_reaches_only_its_testers(
    session: AuthorizedSession, standin: RbmApiStandIn
) -> None:
    standin.unlaunch(AGENT_ID, testers=[PHONE])
    assert send_read(session, standin, phone=PHONE).status_code == 200
    refused = send_read(session, standin, phone=OTHER_PHONE)
    assert google_status(refused) == (403, "PERMISSION_DENIED")
    assert standin.calls_for(OTHER_PHONE)[0].status == 403


@pytest.mark.parametrize("status", [429, 500, 503])
def test_scripted_failures_hit_one_user_message_then_it_heals(
    session: AuthorizedSession, standin: RbmApiStandIn, status: int
) -> None:
    standin.fail_for(PHONE, "user-msg-1", status, status)
    event_id = str(uuid.uuid4())
    answers = [send_read(session, standin, "user-msg-1", event_id=event_id) for _ in range(3)]
    unrelated = send_read(session, standin, "user-msg-2")

    assert [r.status_code for r in answers] == [status, status, 200]
    assert google_status(answers[0])[1] in {"RESOURCE_EXHAUSTED", "INTERNAL", "UNAVAILABLE"}
    assert unrelated.status_code == 200
    calls = standin.calls_for(PHONE, "user-msg-1")
    assert [(c.status, c.injected, c.duplicate) for c in calls] == [
        (status, True, False),
        (status, True, False),
        (200, False, False),  # an eventId that only failed before is not a reuse
    ]


def test_fail_next_hits_whatever_comes_and_heal_drops_the_rest(
    session: AuthorizedSession, standin: RbmApiStandIn
) -> None:
    standin.fail_next(503, 429, 503)
    assert send_read(session, standin, "a").status_code == 503
    assert send_read(session, standin, "b", phone=OTHER_PHONE).status_code == 429
    standin.heal()
    assert send_read(session, standin, "c").status_code == 200


def test_a_stall_times_the_client_out_and_the_retry_is_a_harmless_duplicate(
    session: AuthorizedSession, standin: RbmApiStandIn
) -> None:
    standin.fail_next(Stall(seconds=1.0))
    event_id = str(uuid.uuid4())
    with pytest.raises(requests.Timeout):
        send_read(session, standin, event_id=event_id, timeout=0.3)
    # The slow call still created the event once it finished.
    standin.wait_for(lambda calls: len(calls) == 1, timeout=10)

    retry = send_read(session, standin, event_id=event_id)
    assert retry.status_code == 200
    assert [(c.status, c.duplicate) for c in standin.calls()] == [(200, False), (200, True)]


def test_a_stall_can_end_in_a_failure(session: AuthorizedSession, standin: RbmApiStandIn) -> None:
    standin.fail_next(Stall(seconds=0.2, then=503))
    assert google_status(send_read(session, standin)) == (503, "UNAVAILABLE")
    assert standin.calls()[0].injected


def test_stop_ends_a_stall_at_once(tmp_path: Path) -> None:
    standin = RbmApiStandIn().start()
    session = AuthorizedSession(credentials_for(standin, tmp_path))
    standin.fail_next(Stall(seconds=600))
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(send_read, session, standin, timeout=30)
        standin.wait_for_stall(timeout=10)
        started = time.monotonic()
        standin.stop()
        assert pending.result(timeout=10).status_code == 200  # released, then answered
        assert time.monotonic() - started < 10


def test_a_call_without_a_token_is_401_in_googles_shape(standin: RbmApiStandIn) -> None:
    response = send_read(requests.Session(), standin)
    assert google_status(response) == (401, "UNAUTHENTICATED")
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert [(c.status, c.message_id) for c in standin.calls()] == [(401, "user-msg-1")]
    forged = requests.Session()
    forged.headers["Authorization"] = "Bearer not-a-token-it-issued"
    assert google_status(send_read(forged, standin)) == (401, "UNAUTHENTICATED")


def test_an_expired_token_is_refreshed_by_google_auth(
    session: AuthorizedSession, standin: RbmApiStandIn
) -> None:
    assert send_read(session, standin, "a").status_code == 200
    standin.tokens.revoke_all()
    assert send_read(session, standin, "b").status_code == 200
    assert [c.status for c in standin.calls()] == [200, 401, 200]
    assert standin.tokens.grants == 2


def test_a_token_for_another_scope_is_refused_by_the_api(
    standin: RbmApiStandIn, tmp_path: Path
) -> None:
    session = AuthorizedSession(credentials_for(standin, tmp_path, scope=BM_SCOPE))
    response = send_read(session, standin)
    assert google_status(response) == (403, "PERMISSION_DENIED")
    (detail,) = response.json()["error"]["details"]
    assert detail["reason"] == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"
    assert not standin.delivered()


def test_a_token_for_another_scope_can_be_refused_by_the_token_endpoint(
    standin: RbmApiStandIn, tmp_path: Path
) -> None:
    standin.scope_check = "token"
    session = AuthorizedSession(credentials_for(standin, tmp_path, scope=BM_SCOPE))
    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_scope"):
        send_read(session, standin)
    assert standin.tokens.grants == 0
    assert standin.calls() == []


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"event_id": "not-a-uuid"}, "eventId is not a UUID"),
        ({"event_id": "00000000-0000-0000-0000-000000000000"}, "the nil UUID is not RFC 4122"),
        ({"event_id": "6ba7b810-9dad-11d1-c0b4-00c04fd430c8"}, "a Microsoft-variant UUID"),
        ({"agent_id": AGENT}, "agentId with @rbm.goog"),
        ({"phone": "447700900123"}, "phone without +"),
        ({"phone": "+44 7700 900123"}, "phone with spaces"),
        ({"body": {"eventType": "READ"}}, "READ without messageId"),
        ({"body": {"eventType": "DELIVERED", "messageId": "m"}}, "not an agent event type"),
        ({"body": {"receiptType": "READ"}}, "a Business Messages body"),
        ({"body": {"eventType": "READ", "messageId": "m", "extra": 1}}, "an unknown field"),
    ],
)
def test_malformed_calls_are_400_invalid_argument(
    session: AuthorizedSession, standin: RbmApiStandIn, overrides: dict[str, Any], why: str
) -> None:
    response = send_read(session, standin, **overrides)
    assert google_status(response) == (400, "INVALID_ARGUMENT"), why
    assert standin.calls()[0].status == 400
    assert not standin.delivered()


def test_a_body_that_is_not_json_is_400(session: AuthorizedSession, standin: RbmApiStandIn) -> None:
    response = session.post(
        url_for(standin),
        params={"eventId": str(uuid.uuid4()), "agentId": AGENT_ID},
        data=b"READ",
        timeout=10,
    )
    assert google_status(response) == (400, "INVALID_ARGUMENT")


def test_a_missing_or_unknown_agent_id_is_403(standin: RbmApiStandIn, tmp_path: Path) -> None:
    session = AuthorizedSession(credentials_for(standin, tmp_path))
    assert google_status(send_read(session, standin, agent_id=None)) == (403, "PERMISSION_DENIED")
    owned = RbmApiStandIn(agents=[AGENT_ID]).start()
    try:
        owned_session = AuthorizedSession(credentials_for(owned, tmp_path))
        assert send_read(owned_session, owned, agent_id=AGENT_ID).status_code == 200
        refused = send_read(owned_session, owned, agent_id="someone-elses-agent")
        assert google_status(refused) == (403, "PERMISSION_DENIED")
    finally:
        owned.stop()


def test_an_event_id_is_optional_as_documented_and_recorded_as_absent(
    session: AuthorizedSession, standin: RbmApiStandIn
) -> None:
    response = session.post(
        url_for(standin),
        params={"agentId": AGENT_ID},
        json={"eventType": "READ", "messageId": "m"},
        timeout=10,
    )
    assert response.status_code == 200
    assert standin.calls()[0].event_id is None


def test_the_calls_are_readable_over_http(
    session: AuthorizedSession, standin: RbmApiStandIn
) -> None:
    send_read(session, standin, "user-msg-1")
    summary = requests.get(f"{standin.endpoint}/_standin/calls", timeout=10).json()
    assert summary["tokenGrants"] == 1
    assert [call["message_id"] for call in summary["calls"]] == ["user-msg-1"]
