"""Google REST APIs called as the function's service account, retried with backoff.

429, 5xx, timeouts and token failures are retried (`shared.adapters.http_api`) until a
deadline; any other 4xx is permanent. Only Google's error status (NOT_FOUND, ...) is kept
from an error answer, never its message, which may quote the user's content.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import google.auth
import google.auth.exceptions
import requests
from google.auth.transport.requests import AuthorizedSession

from shared.adapters.http_api import (
    REQUEST_TIMEOUT_SECONDS,
    Answer,
    Verdict,
    by_http_status,
    call_with_backoff,
    longest_call,
)
from shared.core.config import ConfigError, Env
from shared.core.read_receipts import Outcome, ReceiptApi


def authorized_session(scope: str) -> AuthorizedSession:
    """Application Default Credentials: the key in GOOGLE_APPLICATION_CREDENTIALS locally,
    the function's service account on Google Cloud."""
    try:
        credentials, _ = google.auth.default(scopes=[scope])
    except google.auth.exceptions.DefaultCredentialsError as error:
        raise ConfigError(f"no credentials for {scope}: {error}") from error
    return AuthorizedSession(credentials)


def google_answer(response: requests.Response, done: Collection[int] = ()) -> Answer:
    """By HTTP status, with Google's error status named; a status in `done` is a success."""
    if response.status_code in done:
        return Answer(Verdict.DONE)
    return by_http_status(response, _api_status(response))


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
            classify=functools.partial(google_answer, done=done),
            # A token that cannot be refreshed now may be refreshed on the next try.
            transient=(requests.RequestException, google.auth.exceptions.GoogleAuthError),
        )


@dataclass(frozen=True)
class GoogleApiSettings:
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
) -> GoogleApiSettings:
    """`{prefix}_API_ENDPOINT` and `{prefix}_API_RETRY_DEADLINE_SECONDS` from the environment."""
    return GoogleApiSettings(
        endpoint=env.optional(f"{prefix}_API_ENDPOINT", default_endpoint),
        retry_deadline=env.number(f"{prefix}_API_RETRY_DEADLINE_SECONDS", 30.0, minimum=0),
        scope=scope,
        adapter=adapter,
    )
