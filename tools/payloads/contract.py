"""What the providers' contract suite needs of each provider: requests as its platform sends
them, built from the webhook's own environment (its keys and tokens).

Each provider's module here has a `CONTRACT_REQUESTS` (a `ContractRequests`);
`tools.payloads.CONTRACT_REQUESTS_BY_PROVIDER` lists them, and the contract suite
(tests/*/test_provider_contract.py) runs every check on every registered provider.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from shared.core.config import comma_list


@dataclass(frozen=True)
class WebhookRequest:
    path: str  # after the webhook's base URL, from "/"
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Sample:
    """An authenticated request carrying one receipt, and where its message is recorded."""

    request: WebhookRequest
    conversation_id: str
    message_id: str


class ContractRequests(Protocol):
    name: str  # the registered provider's name
    # `make local`'s development values of the provider's credentials (never real ones),
    # used unless the shell sets the variable; together they switch the provider on.
    local_env: Mapping[str, str]

    def receipt(self, env: Mapping[str, str], tag: str) -> Sample:
        """One receipt (DELIVERED, or the platform's word for it) of message `{tag}-m`."""
        ...

    def forged(self, env: Mapping[str, str], request: WebhookRequest) -> WebhookRequest:
        """The same request with a wrong credential."""
        ...

    def unauthenticated(self, env: Mapping[str, str], request: WebhookRequest) -> WebhookRequest:
        """The same request with no credential at all."""
        ...

    def malformed(self, env: Mapping[str, str]) -> WebhookRequest | None:
        """An authenticated request the webhook must refuse as malformed (400), or None for a
        platform whose every authenticated body is accepted (and parked if unusable)."""
        ...

    def published(self, body: bytes) -> bytes:
        """What the webhook publishes for this accepted body: the body itself, unless the
        provider publishes a canonical or redacted form of it (Publish.body)."""
        ...


def first_secret(env: Mapping[str, str], name: str) -> str:
    return comma_list(env[name])[0]
