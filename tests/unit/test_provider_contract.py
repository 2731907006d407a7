"""What every registered provider must satisfy without a stack: its parts load and fit the
interface, it has requests for the contract suite, and its normaliser never raises."""

import inspect
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.core import records
from shared.core.config import Env
from shared.core.provider import Provider
from shared.providers import REGISTRY, named
from shared.providers import normalise as normalise_published
from tools.payloads import CONTRACT_REQUESTS_BY_PROVIDER

NOW = datetime(2026, 1, 1, tzinfo=UTC)
PROVIDERS = [pytest.param(p, id=p.name) for p in REGISTRY]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_names_routes_and_contract_requests_are_one_per_provider() -> None:
    assert len({p.name for p in REGISTRY}) == len({p.route for p in REGISTRY}) == len(REGISTRY)
    assert set(CONTRACT_REQUESTS_BY_PROVIDER) == {p.name for p in REGISTRY}
    assert all(named(p.name) is p for p in REGISTRY)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_its_parts_load_and_fit_the_interface(provider: Provider) -> None:
    env = Env(dict.fromkeys(provider.switch, "value"))
    assert callable(provider.receiver(env))
    parameters = inspect.signature(provider.normaliser.normalise).parameters
    assert list(parameters) == ["raw", "attributes", "received"]
    assert provider.topic_key("") in ("events", "readable")
    assert provider.scale.ranks
    assert provider.sent_status
    read_receipts = provider.read_receipts
    if read_receipts is not None:
        assert callable(read_receipts.read_targets)
        assert callable(read_receipts.api_settings(Env({})).connect)
    queue = provider.queue
    if queue is not None:  # a second way in: pulled from queues, published as the webhook does
        assert provider.queue_switch
        assert list(inspect.signature(queue.puller).parameters) == ["env", "publish"]
    else:
        assert provider.queue_switch == ()


@pytest.mark.parametrize("provider", PROVIDERS)
@FUZZ
@given(raw=st.binary(max_size=400), kind=st.text(max_size=20))
def test_its_normaliser_never_raises_and_drops_nothing_silently(
    provider: Provider, raw: bytes, kind: str
) -> None:
    payloads = normalise_published({"provider": provider.name, "kind": kind}, raw, NOW)
    for group in records.commit_groups(payloads):
        for payload in group:
            assert payload.provider == provider.name
            assert records.plan(payload, {}, NOW), "a payload that writes nothing"
    read_receipts = provider.read_receipts
    if read_receipts is not None:
        read_receipts.read_targets(payloads)
