"""The READ call to the Graph API and how its answers classify, against the loopback
stand-in over real HTTP: Meta's rate limits come as HTTP 400 with a code in the body."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from shared import providers
from shared.adapters.google_api import google_answer
from shared.adapters.http_api import Verdict
from shared.adapters.read_receipt_sender import ReadReceiptConfig
from shared.core.config import Env
from shared.core.read_receipts import ReadTarget
from shared.providers import whatsapp
from shared.providers.whatsapp.read_receipts import (
    DEFAULT_ENDPOINT,
    DEFAULT_VERSION,
    GraphApi,
    api_settings,
)
from tools.payloads import whatsapp as wa
from tools.standins.graph_api import GraphApiStandIn

TOKEN = "test-access-token"
TARGET = ReadTarget("whatsapp:c", "wamid.m2", {"phoneNumberId": wa.PHONE_NUMBER_ID})


@pytest.fixture
def graph() -> Iterator[GraphApiStandIn]:
    with GraphApiStandIn(TOKEN, phone_number_ids=[wa.PHONE_NUMBER_ID]) as standin:
        standin.received(wa.PHONE_NUMBER_ID, wa.USER, "wamid.m1", "wamid.m2", "wamid.m3")
        yield standin


def api(graph: GraphApiStandIn, token: str = TOKEN, deadline: float = 10.0) -> GraphApi:
    env = Env(
        {
            "WHATSAPP_APP_SECRET": "s",
            "WHATSAPP_ACCESS_TOKEN": token,
            "WHATSAPP_API_ENDPOINT": graph.endpoint,
            "WHATSAPP_API_RETRY_DEADLINE_SECONDS": str(deadline),
        }
    )
    settings = api_settings(env)
    env.check("test")
    return settings.connect()


def test_a_read_marks_the_message_and_the_earlier_ones_of_its_conversation(
    graph: GraphApiStandIn,
) -> None:
    outcome = api(graph).send_read_receipt(TARGET)
    assert (outcome.attempts, outcome.error, outcome.permanent) == (1, None, False)
    (call,) = graph.calls()
    assert (call.version, call.phone_number_id, call.message_id, call.status) == (
        DEFAULT_VERSION,
        wa.PHONE_NUMBER_ID,
        "wamid.m2",
        200,
    )
    assert graph.read_messages(wa.PHONE_NUMBER_ID, wa.USER) == ["wamid.m1", "wamid.m2"]


@pytest.mark.parametrize("fault", [4, 80007, 130429, 500, 503])
def test_rate_limits_and_outages_are_retried_until_the_read_goes_through(
    graph: GraphApiStandIn, fault: int
) -> None:
    graph.fail_next(fault)
    outcome = api(graph).send_read_receipt(TARGET)
    assert (outcome.attempts, outcome.error) == (2, None)
    assert [c.status for c in graph.calls()] == [fault if 500 <= fault <= 599 else 400, 200]


def test_an_unknown_message_is_final_with_codes_only(graph: GraphApiStandIn) -> None:
    outcome = api(graph).send_read_receipt(ReadTarget("c", "wamid.nope", TARGET.recipient))
    assert outcome.permanent
    assert outcome.attempts == 1
    assert outcome.error is not None
    assert outcome.error.startswith("HTTP 400 code 131009 type OAuthException")
    assert "not valid" not in outcome.error  # Meta's message text is never kept


def test_a_refused_token_is_final_and_reported_as_such(graph: GraphApiStandIn) -> None:
    outcome = api(graph, token="expired").send_read_receipt(TARGET)
    assert outcome.permanent
    assert outcome.attempts == 1
    assert "code 190" in (outcome.error or "")
    assert outcome.credentials_rejected  # counted and alerted on by the READ's log line
    assert graph.unread_messages(wa.PHONE_NUMBER_ID, wa.USER) == [
        "wamid.m1",
        "wamid.m2",
        "wamid.m3",
    ]


def test_a_token_expiring_mid_retry_is_final_too(graph: GraphApiStandIn) -> None:
    graph.fail_next(130429, 190)
    outcome = api(graph).send_read_receipt(TARGET)
    assert outcome.permanent
    assert outcome.attempts == 2


def test_retries_stop_at_the_deadline_and_leave_the_read_to_a_redelivery(
    graph: GraphApiStandIn,
) -> None:
    graph.fail_next(*[130429] * 50)
    outcome = api(graph, deadline=0).send_read_receipt(TARGET)
    assert not outcome.permanent
    assert "130429" in (outcome.error or "")


def test_settings_default_to_metas_api_and_the_read_is_on_only_with_a_token() -> None:
    settings = api_settings(Env({"WHATSAPP_ACCESS_TOKEN": "t"}))
    assert (settings.endpoint, settings.version) == (DEFAULT_ENDPOINT, DEFAULT_VERSION)
    assert "'t'" not in repr(settings)  # the token is never shown
    environ = {"GOOGLE_CLOUD_PROJECT": "p"}
    off = ReadReceiptConfig.from_env(providers.REGISTRY, Env(environ))
    assert whatsapp.NAME not in off.apis  # a deployment without WhatsApp needs no token
    on = ReadReceiptConfig.from_env(
        providers.REGISTRY, Env({**environ, "WHATSAPP_ACCESS_TOKEN": "t"})
    )
    assert set(on.apis) == {"bm", "rbm", whatsapp.NAME}


def test_googles_classification_is_unchanged_by_the_seam() -> None:
    def answer(status: int, body: bytes = b"") -> requests.Response:
        response = requests.Response()
        response.status_code, response._content = status, body
        return response

    assert google_answer(answer(200)).verdict is Verdict.DONE
    assert google_answer(answer(409), done=(409,)).verdict is Verdict.DONE
    assert google_answer(answer(429)).verdict is Verdict.RETRY
    assert google_answer(answer(503)).verdict is Verdict.RETRY
    final = google_answer(answer(404, b'{"error": {"status": "NOT_FOUND", "message": "quote"}}'))
    assert (final.verdict, final.problem) == (Verdict.FINAL, "HTTP 404 NOT_FOUND")
    # Meta's rate limit, read by status alone, would be final: why a provider classifies.
    assert google_answer(answer(400, b'{"error": {"code": 130429}}')).verdict is Verdict.FINAL
