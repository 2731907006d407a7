"""A provider's HTTP API called with retries until a deadline: the loop every API shares.

How an answer classifies (done, worth another try, final) is the provider's to say: Google
answers a rate limit with HTTP 429, Meta with HTTP 400 and a code in the body. The default is
by HTTP status: 2xx done; 429 and 5xx retried; any other status final. Timeouts and failed
connections are always retried. A problem is described by codes only, never by the API's
message text, which may quote the user's content.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import requests
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential_jitter,
)

from shared.core.read_receipts import Outcome

REQUEST_TIMEOUT_SECONDS = 10.0


class Verdict(Enum):
    DONE = "done"
    RETRY = "retry"  # worth another try later
    FINAL = "final"  # trying again cannot succeed


@dataclass(frozen=True)
class Answer:
    verdict: Verdict
    problem: str = ""  # codes only, for the log and the READ claim
    credentials_rejected: bool = False  # final until an operator replaces the credential


# How a provider's API answers classify.
Classify = Callable[[requests.Response], Answer]


def by_http_status(response: requests.Response, detail: str = "") -> Answer:
    """2xx done; 429 and 5xx worth another try; any other status final (401: the credential)."""
    if response.ok:
        return Answer(Verdict.DONE)
    problem = f"HTTP {response.status_code} {detail}".strip()
    if response.status_code == 429 or response.status_code >= 500:
        return Answer(Verdict.RETRY, problem)
    return Answer(Verdict.FINAL, problem, credentials_rejected=response.status_code == 401)


class _Retry(Exception):
    pass


class _Final(Exception):
    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.problem)
        self.answer = answer


def longest_call(retry_deadline: float) -> float:
    """How long `call_with_backoff` may take: the deadline, plus the call it started last."""
    return retry_deadline + 2 * REQUEST_TIMEOUT_SECONDS


def call_with_backoff(
    request: Callable[[], requests.Response],
    retry_deadline: float,
    classify: Classify = by_http_status,
    transient: tuple[type[Exception], ...] = (requests.RequestException,),
) -> Outcome:
    """Calls until an answer classifies as done or final, or the deadline passes; an exception
    in `transient` (no answer) is worth another try."""

    def attempt() -> None:
        try:
            response = request()
        except transient as error:
            raise _Retry(type(error).__name__) from error
        answer = classify(response)
        if answer.verdict is Verdict.RETRY:
            raise _Retry(answer.problem)
        if answer.verdict is Verdict.FINAL:
            raise _Final(answer)

    retrying = Retrying(
        retry=retry_if_exception_type(_Retry),
        wait=wait_exponential_jitter(multiplier=0.5, max=8.0, jitter=0.5),
        stop=stop_after_delay(retry_deadline),
    )
    try:
        retrying(attempt)
    except RetryError as exhausted:
        error = exhausted.last_attempt.exception()
        return Outcome(_attempts(retrying), str(error), permanent=False)
    except _Final as final:
        rejected = final.answer.credentials_rejected
        return Outcome(_attempts(retrying), str(final), True, credentials_rejected=rejected)
    return Outcome(_attempts(retrying))


def _attempts(retrying: Retrying) -> int:
    return int(retrying.statistics.get("attempt_number", 1))
