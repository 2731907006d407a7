"""The queue mode's generic parts, which any provider's puller may use: the circuit breaker
on publishing and the run's tally."""

import threading
import time

from shared.adapters.publish_circuit_breaker import PublishCircuitBreaker
from shared.adapters.publisher import PublishFailed
from shared.core.polling import PROBLEMS_KEPT, PullReport, PullTally


def test_the_breaker_opens_on_a_failed_publish_and_closes_once_a_probe_is_confirmed() -> None:
    outcomes: list[PublishFailed | None] = [PublishFailed("down"), None]

    def probe() -> None:
        failure = outcomes.pop(0)
        if failure is not None:
            raise failure

    skew = [0.0]  # moves the breaker's clock on, so no test waits out a real backoff

    def clock() -> float:
        return time.time() + skew[0]

    breaker = PublishCircuitBreaker(probe, clock)
    assert breaker.wait_closed(clock())  # closed: nothing probed
    breaker.open()
    assert not breaker.wait_closed(clock() + 0.1)  # the first probe is due after 1 s only
    assert len(outcomes) == 2
    skew[0] += 1
    assert not breaker.wait_closed(clock() + 0.1)  # probed, failed: the next after 2 s
    assert len(outcomes) == 1
    skew[0] += 2
    assert breaker.wait_closed(clock() + 0.1)  # probed, confirmed: closed again
    assert outcomes == []


def test_one_poller_probes_while_the_others_wait_for_its_outcome() -> None:
    probing, release = threading.Event(), threading.Event()
    probes: list[int] = []

    def probe() -> None:
        probes.append(1)
        probing.set()
        assert release.wait(5)

    skew = [0.0]
    breaker = PublishCircuitBreaker(probe, lambda: time.time() + skew[0])
    breaker.open()
    skew[0] += 1
    answers: list[bool] = []
    waiters = [
        threading.Thread(target=lambda: answers.append(breaker.wait_closed(time.time() + 10)))
        for _ in range(3)
    ]
    for waiter in waiters:
        waiter.start()
    assert probing.wait(5)
    release.set()
    for waiter in waiters:
        waiter.join(10)
    assert answers == [True, True, True]
    assert probes == [1]


def test_the_tally_adds_every_pollers_counts_and_keeps_a_bounded_set_of_problems() -> None:
    tally = PullTally()
    tally.add(received=3, deleted=2)
    tally.add(received=1)
    for n in range(PROBLEMS_KEPT + 5):
        tally.problem(f"problem {n % (PROBLEMS_KEPT + 2)}")
    report = tally.report()
    assert report.counts == {"received": 4, "deleted": 2}
    assert report.problems == tuple(f"problem {n}" for n in range(PROBLEMS_KEPT))
    assert PullReport.combined([report, report]).counts == {"received": 8, "deleted": 4}
