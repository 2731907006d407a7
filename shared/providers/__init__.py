"""The providers' registry: the one way into a provider.

One folder per provider holds its webhook part, its normaliser and its API client; its
package's `PROVIDER` (a `shared.core.provider.Provider`) is registered below. Nothing
outside `shared/providers/` names a provider: it asks this registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from shared.core import arrival, routing
from shared.core.config import Env
from shared.core.events import UNKNOWN_KIND, Payload, StatusScale, parked_whole, payload_key
from shared.core.provider import Provider, PublishFunction, QueuePuller
from shared.core.read_receipts import ReadTarget
from shared.core.screening import screen
from shared.providers import bm, chatapp, rbm, whatsapp

REGISTRY: tuple[Provider, ...] = (bm.PROVIDER, chatapp.PROVIDER, rbm.PROVIDER, whatsapp.PROVIDER)

_BY_NAME = {provider.name: provider for provider in REGISTRY}


def named(name: str) -> Provider | None:
    return _BY_NAME.get(name)


def topic_key(attributes: Mapping[str, str]) -> str:
    """The topic an event was published to, from its attributes: where a replay sends it."""
    provider = named(attributes.get("provider", ""))
    return provider.topic_key(attributes.get("kind", "")) if provider else routing.EVENTS


def normalise(attributes: Mapping[str, str], raw: bytes, published: datetime) -> list[Payload]:
    """A published body as the product's own events; an unknown provider's body is parked.

    Events that carry no time of their own are dated by the body's first arrival (its
    `receivedTime` attribute), or by `published`, Pub/Sub's publish time, when it has none.
    Every provider's events are screened alike: bounded, and with what Firestore would
    refuse set aside (`shared.core.screening`).
    """
    name = attributes.get("provider", "")
    provider = named(name)
    if provider is not None:
        received = arrival.received(attributes, published)
        return screen(provider.normaliser.normalise(raw, attributes, received))
    unknown = Payload(
        provider=name or "unknown",
        kind="unknown",
        key=payload_key(raw),
        scale=StatusScale({}),
        raw=raw,
    )
    return [parked_whole(unknown, UNKNOWN_KIND, f"no parser for provider {name!r}")]


def read_targets(
    attributes: Mapping[str, str], raw: bytes, published: datetime
) -> list[ReadTarget]:
    """The user messages of a published body that get the agent's READ receipt."""
    provider = named(attributes.get("provider", ""))
    part = provider.read_receipts if provider else None
    if part is None:
        return []
    return part.read_targets(normalise(attributes, raw, published))


def queue_pullers(env: Env, publish: PublishFunction) -> list[QueuePuller]:
    """The queue pullers of the providers whose queue mode is switched on: what the scheduled
    puller runs. Their configuration problems, and having none, go to the Env."""
    pullers = [
        part.puller(env, publish)
        for provider in REGISTRY
        if env.present(*provider.queue_switch) and (part := provider.queue) is not None
    ]
    if not pullers:
        choices = " or ".join(
            f"{' and '.join(p.queue_switch)} ({p.title})" for p in REGISTRY if p.queue_switch
        )
        env.problem(f"no queue is configured: set {choices}")
    return pullers
