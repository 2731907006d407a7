"""Google REST APIs called as the function's service account, retried with backoff.

429, 5xx, timeouts and token failures are retried (tenacity) until a deadline; any other
4xx is permanent. Only Google's error status (NOT_FOUND, ...) is kept from an error
answer, never its message, which may quote the user's content.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import google.auth
import google.auth.exceptions
import requests
from google.auth.transport.requests import AuthorizedSession
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential_jitter,
)

from shared.core.config import ConfigError, Env
from shared.core.read_receipts import Outcome, ReceiptApi

REQUEST_TIMEOUT_SECONDS = 10.0


class TransientApiError(Exception):
    """429, 5xx, timeouts and token failures: worth another try later."""


class PermanentApiError(Exception):
    """Any other 4xx: trying again cannot succeed."""


def authorized_session(scope: str) -> AuthorizedSession:
    """Application Default Credentials: the key in GOOGLE_APPLICATION_CREDENTIALS locally,
    the function's service account on Google Cloud."""
    try:
        credentials, _ = google.auth.default(scopes=[scope])
    except google.auth.exceptions.DefaultCredentialsError as error:
        raise ConfigError(f"no credentials for {scope}: {error}") from error
    return AuthorizedSession(credentials)


def longest_call(retry_deadline: float) -> float:
    """How long `call_with_backoff` may take: the deadline, plus the call it started last."""
    return retry_deadline + 2 * REQUEST_TIMEOUT_SECONDS


def call_with_backoff(
    request: Callable[[], requests.Response],
    retry_deadline: float,
    done: Collection[int] = (),
) -> Outcome:
    """Calls until a success (2xx, or a status in `done`), a permanent error, or the deadline."""

    def attempt() -> None:
        try:
            response = request()
        except (requests.RequestException, google.auth.exceptions.GoogleAuthError) as error:
            raise TransientApiError(type(error).__name__) from error
        if response.ok or response.status_code in done:
            return
        problem = f"HTTP {response.status_code} {_api_status(response)}".strip()
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientApiError(problem)
        raise PermanentApiError(problem)

    retrying = Retrying(
        retry=retry_if_exception_type(TransientApiError),
        wait=wait_exponential_jitter(multiplier=0.5, max=8.0, jitter=0.5),
        stop=stop_after_delay(retry_deadline),
    )
    try:
        retrying(attempt)
    except RetryError as exhausted:
        error = exhausted.last_attempt.exception()
        return Outcome(_attempts(retrying), str(error), permanent=False)
    except PermanentApiError as error:
        return Outcome(_attempts(retrying), str(error), permanent=True)
    return Outcome(_attempts(retrying))


def _attempts(retrying: Retrying) -> int:
    return int(retrying.statistics.get("attempt_number", 1))


def _api_status(response: requests.Response) -> str:
    """Google's error status (NOT_FOUND, ...): never the message, which may quote content."""
    try:
        status = response.json()["error"]["status"]
    except (ValueError, KeyError, TypeError):
        return ""
    return status if isinstance(status, str) else ""


@dataclass(frozen=True)
class GoogleApi:
    """A Google REST API called as the function's service account, retried with backoff."""

    endpoint: str
    session: requests.Session
    retry_deadline: float

    def call(self, method: str, path: str, done: Collection[int] = (), **arguments: Any) -> Outcome:
        """`method` on endpoint + path, until a success (2xx or a status in `done`), a
        permanent error, or the retry deadline."""
        url = self.endpoint.rstrip("/") + path
        return call_with_backoff(
            lambda: self.session.request(method, url, timeout=REQUEST_TIMEOUT_SECONDS, **arguments),
            self.retry_deadline,
            done,
        )


@dataclass(frozen=True)
class ApiSettings:
    """A provider's READ receipt API, as read from the environment when the sender starts."""

    endpoint: str
    retry_deadline: float
    scope: str
    adapter: Callable[[GoogleApi], ReceiptApi]  # the provider's calls over the connection

    @property
    def longest_send(self) -> float:
        return longest_call(self.retry_deadline)

    def connect(self) -> ReceiptApi:
        session = authorized_session(self.scope)
        return self.adapter(GoogleApi(self.endpoint, session, self.retry_deadline))


def api_settings(
    env: Env,
    *,
    prefix: str,
    default_endpoint: str,
    scope: str,
    adapter: Callable[[GoogleApi], ReceiptApi],
) -> ApiSettings:
    """`{prefix}_API_ENDPOINT` and `{prefix}_API_RETRY_DEADLINE_SECONDS` from the environment."""
    return ApiSettings(
        endpoint=env.optional(f"{prefix}_API_ENDPOINT", default_endpoint),
        retry_deadline=env.number(f"{prefix}_API_RETRY_DEADLINE_SECONDS", 30.0, minimum=0),
        scope=scope,
        adapter=adapter,
    )
