"""One module per messaging provider: authentication, envelope parsing, normalisation."""

from __future__ import annotations

from shared.events import UNKNOWN_KIND, Parked, Payload, StatusScale, payload_key
from shared.providers import bm

_NORMALISERS = {bm.PROVIDER: bm.normalise}


def normalise(provider: str, raw: bytes) -> Payload:
    """The payload as the product's own events; an unknown provider's payload is parked."""
    normaliser = _NORMALISERS.get(provider)
    if normaliser is not None:
        return normaliser(raw)
    return Payload(
        provider=provider or "unknown",
        kind="unknown",
        key=payload_key(raw),
        scale=StatusScale({}),
        raw=raw,
        parked=(Parked(UNKNOWN_KIND, f"no parser for provider {provider!r}"),),
    )
