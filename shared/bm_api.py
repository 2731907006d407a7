"""Business Messages API adapter: the agent's READ receipt, retried with backoff."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

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

from shared.config import ConfigError

SCOPE = "https://www.googleapis.com/auth/businessmessages"
DEFAULT_ENDPOINT = "https://businessmessages.googleapis.com"
REQUEST_TIMEOUT_SECONDS = 10.0


class TransientApiError(Exception):
    """429, 5xx, timeouts and token failures: worth another try later."""


class PermanentApiError(Exception):
    """Any other 4xx: trying again cannot succeed."""


@dataclass(frozen=True)
class Outcome:
    attempts: int
    error: str | None = None
    permanent: bool = False


def default_session() -> AuthorizedSession:
    """Application Default Credentials: the key in GOOGLE_APPLICATION_CREDENTIALS locally,
    the function's service account on Google Cloud."""
    try:
        credentials, _ = google.auth.default(scopes=[SCOPE])
    except google.auth.exceptions.DefaultCredentialsError as error:
        raise ConfigError(f"no credentials for the Business Messages API: {error}") from error
    return AuthorizedSession(credentials)


class BusinessMessagesApi:
    def __init__(self, endpoint: str, session: requests.Session, retry_deadline: float) -> None:
        self._endpoint = endpoint.rstrip("/")
        self._session = session
        self._retry_deadline = retry_deadline

    def send_read_receipt(self, conversation_id: str, message_id: str) -> Outcome:
        url = (
            f"{self._endpoint}/v1/conversations/{quote(conversation_id, safe='')}"
            f"/messages/{quote(message_id, safe='')}/receipt"
        )
        retrying = Retrying(
            retry=retry_if_exception_type(TransientApiError),
            wait=wait_exponential_jitter(multiplier=0.5, max=8.0, jitter=0.5),
            stop=stop_after_delay(self._retry_deadline),
        )
        try:
            retrying(self._patch_read, url)
        except RetryError as exhausted:
            error = exhausted.last_attempt.exception()
            return Outcome(_attempts(retrying), str(error), permanent=False)
        except PermanentApiError as error:
            return Outcome(_attempts(retrying), str(error), permanent=True)
        return Outcome(_attempts(retrying))

    def _patch_read(self, url: str) -> None:
        try:
            response = self._session.patch(
                url, json={"receiptType": "READ"}, timeout=REQUEST_TIMEOUT_SECONDS
            )
        except (requests.RequestException, google.auth.exceptions.GoogleAuthError) as error:
            raise TransientApiError(type(error).__name__) from error
        if response.ok:
            return
        problem = f"HTTP {response.status_code} {_api_status(response)}".strip()
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientApiError(problem)
        raise PermanentApiError(problem)


def _attempts(retrying: Retrying) -> int:
    return int(retrying.statistics.get("attempt_number", 1))


def _api_status(response: requests.Response) -> str:
    """Google's error status (NOT_FOUND, ...): never the message, which may quote content."""
    try:
        status = response.json()["error"]["status"]
    except (ValueError, KeyError, TypeError):
        return ""
    return status if isinstance(status, str) else ""
