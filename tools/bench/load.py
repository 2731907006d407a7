"""A closed-loop HTTP load generator: `concurrency` connections, each sending its next
request as soon as the previous one is answered, as a busy platform's pushes would.

aiohttp on one event loop drives thousands of requests a second from one core; a thread
per connection would spend that core on the GIL instead of on the server under test.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import aiohttp

from shared.core.metrics import Distribution


@dataclass(frozen=True)
class Request:
    url: str
    body: bytes
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Answer:
    request: Request
    status: int
    body: bytes
    seconds: float  # from sending the request to reading the whole answer


@dataclass(frozen=True)
class Load:
    answers: list[Answer]
    seconds: float
    errors: int  # requests that got no HTTP answer at all

    @classmethod
    def combined(cls, loads: list[Load]) -> Load:
        """Rounds taken in turns with other servers, as one measurement."""
        answers = [answer for one in loads for answer in one.answers]
        return cls(answers, sum(one.seconds for one in loads), sum(one.errors for one in loads))

    @property
    def ok(self) -> list[Answer]:
        return [answer for answer in self.answers if answer.status == 200]

    @property
    def rate(self) -> float:
        """Successful requests per second."""
        return len(self.ok) / self.seconds if self.seconds else 0.0

    @property
    def latencies(self) -> Distribution:
        """Of the successful requests, in seconds."""
        return Distribution.of(answer.seconds for answer in self.ok)


def run(requests: Iterable[Request], concurrency: int, seconds: float | None = None) -> Load:
    """Sends `requests` until they run out or `seconds` have passed, whichever is first."""
    return asyncio.run(_run(iter(requests), concurrency, seconds))


async def _run(requests: Iterator[Request], concurrency: int, seconds: float | None) -> Load:
    answers: list[Answer] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    start = time.perf_counter()
    deadline = start + seconds if seconds is not None else float("inf")

    async def connection(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        for request in requests:  # one shared iterator: each request is sent once
            sent = time.perf_counter()
            try:
                async with session.post(
                    request.url, data=request.body, headers=request.headers
                ) as response:
                    body = await response.read()
                    answers.append(
                        Answer(request, response.status, body, time.perf_counter() - sent)
                    )
            except (aiohttp.ClientError, TimeoutError):
                errors += 1
            if time.perf_counter() >= deadline:
                return

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(connection(session) for _ in range(concurrency)))
    return Load(answers, time.perf_counter() - start, errors)
