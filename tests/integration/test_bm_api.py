"""The READ receipt call against the loopback stand-in, through google-auth's real flow."""

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from google.oauth2 import service_account

from shared.adapters.google_api import GoogleApi
from shared.core.read_receipts import ReadTarget
from shared.providers.bm.read_receipts import SCOPE, BusinessMessagesApi
from tools.standins.bm_api import BusinessMessagesStandIn


@pytest.fixture
def standin() -> Iterator[BusinessMessagesStandIn]:
    server = BusinessMessagesStandIn().start()
    yield server
    server.stop()


@pytest.fixture
def api(standin: BusinessMessagesStandIn, tmp_path: Path) -> BusinessMessagesApi:
    from google.auth.transport.requests import AuthorizedSession

    key = standin.write_key(tmp_path / "key.json")
    credentials = service_account.Credentials.from_service_account_file(str(key), scopes=[SCOPE])
    return BusinessMessagesApi(GoogleApi(standin.endpoint, AuthorizedSession(credentials), 10))


def test_read_receipt_is_accepted_with_a_token_from_the_key(
    api: BusinessMessagesApi, standin: BusinessMessagesStandIn
) -> None:
    outcome = api.send_read_receipt(ReadTarget("conv/with slash", "m1"))
    assert (outcome.attempts, outcome.error) == (1, None)
    assert standin.accepted()[0].conversation_id == "conv/with slash"  # escaped in the path
    assert standin.token_grants == 1


@pytest.mark.parametrize("transient", [429, 500, 503])
def test_transient_errors_are_retried_until_accepted(
    api: BusinessMessagesApi, standin: BusinessMessagesStandIn, transient: int
) -> None:
    standin.script("m1", [transient, transient])
    outcome = api.send_read_receipt(ReadTarget("c", "m1"))
    assert (outcome.attempts, outcome.error) == (3, None)
    assert [call.status for call in standin.calls_for("m1")] == [transient, transient, 200]


@pytest.mark.parametrize(
    ("status", "name"), [(400, "INVALID_ARGUMENT"), (403, "PERMISSION_DENIED"), (404, "NOT_FOUND")]
)
def test_other_client_errors_are_permanent_and_not_retried(
    api: BusinessMessagesApi, standin: BusinessMessagesStandIn, status: int, name: str
) -> None:
    standin.script("m1", [status])
    outcome = api.send_read_receipt(ReadTarget("c", "m1"))
    assert (outcome.attempts, outcome.permanent, outcome.error) == (
        1,
        True,
        f"HTTP {status} {name}",
    )
    assert len(standin.calls_for("m1")) == 1


def test_retries_stop_at_the_deadline_as_a_transient_failure(
    standin: BusinessMessagesStandIn, api: BusinessMessagesApi
) -> None:
    short = BusinessMessagesApi(replace(api.api, retry_deadline=1))
    standin.script("m1", [503] * 20)
    outcome = short.send_read_receipt(ReadTarget("c", "m1"))
    assert not outcome.permanent
    assert outcome.error == "HTTP 503 UNAVAILABLE"
    assert 1 < outcome.attempts < 20


def test_an_unreachable_api_is_transient(
    api: BusinessMessagesApi, standin: BusinessMessagesStandIn
) -> None:
    unreachable = BusinessMessagesApi(
        replace(api.api, endpoint="http://127.0.0.1:9", retry_deadline=0.5)
    )
    outcome = unreachable.send_read_receipt(ReadTarget("c", "m1"))
    assert not outcome.permanent
    assert outcome.error is not None
