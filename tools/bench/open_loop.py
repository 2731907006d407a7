"""An open-loop load generator: the i-th request leaves at start + i / rate, whether or not
the ones before it were answered, as events from many independent users arrive.

A closed loop (tools/bench/load.py) waits for each answer before sending the next, so a
slow pipeline is offered less and its queueing never shows; here a pipeline that cannot keep
up falls behind, and every sample's latency counts from when it was due to leave.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import aiohttp

from tools.bench.load import Request

# The first request leaves this long after the call, so setting up is not counted as late.
LEAD_SECONDS = 0.05


@dataclass(frozen=True)
class Sent:
    due: float  # time.monotonic() when it was to leave (on Linux one clock for every process)
    sent: float  # when it left
    answered: float | None  # when its whole answer was read; None: no answer at all
    status: int | None  # the HTTP status; 200 for a call that returned

    @property
    def ok(self) -> bool:
        return self.status == 200


def post_at_rate(
    requests: Sequence[Request], rate: float, start: float | None = None, connections: int = 256
) -> list[Sent]:
    """POSTs the requests at `rate` per second, in order, from `start` (a time.monotonic();
    by default at once), each on a connection of a pool."""

    async def run() -> list[Sent]:
        connector = aiohttp.TCPConnector(limit=connections)
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def post(index: int, due: float) -> Sent:
                request = requests[index]
                sent = time.monotonic()
                try:
                    async with session.post(
                        request.url, data=request.body, headers=request.headers
                    ) as response:
                        await response.read()
                        return Sent(due, sent, time.monotonic(), response.status)
                except (aiohttp.ClientError, TimeoutError):
                    return Sent(due, sent, None, None)

            return await _at_rate(len(requests), rate, start, post)

    return asyncio.run(run())


def call_at_rate(
    count: int, rate: float, call: Callable[[int], object], threads: int, start: float | None = None
) -> list[Sent]:
    """Calls call(i) for i in range(count) at `rate` per second, on `threads` threads; a
    call that raises counts as unanswered."""

    async def run() -> list[Sent]:
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(threads) as pool:

            def answered(index: int) -> float | None:
                try:
                    call(index)
                except Exception:  # any failure is a sample without an answer
                    return None
                return time.monotonic()

            async def submit(index: int, due: float) -> Sent:
                sent = time.monotonic()  # a wait for a free thread counts in its latency
                at = await loop.run_in_executor(pool, answered, index)
                return Sent(due, sent, at, None if at is None else 200)

            return await _at_rate(count, rate, start, submit)

    return asyncio.run(run())


async def _at_rate(
    count: int,
    rate: float,
    start: float | None,
    send: Callable[[int, float], Coroutine[object, object, Sent]],
) -> list[Sent]:
    start = time.monotonic() + LEAD_SECONDS if start is None else start
    tasks = []
    for index in range(count):
        due = start + index / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # the schedule itself, not a synchronisation
        tasks.append(asyncio.create_task(send(index, due)))
    return list(await asyncio.gather(*tasks))
