"""Reading configuration from the environment, failing at start with one clear message."""

from __future__ import annotations

import os
from collections.abc import Mapping

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})

# The dead-letter topic, and the subscription that keeps what reaches it (as Terraform names them).
DEFAULT_DEAD_LETTER = "receipt-pipeline-dead-letter"
# The change stream (docs/change-stream.md): the recorder and the READ sender publish to it.
DEFAULT_CHANGES_TOPIC = "receipt-pipeline-changes"

# Topic IDs the webhook publishes to, by routing key (see shared/routing.py).
DEFAULT_TOPICS = {
    "EVENTS_TOPIC": "receipt-pipeline-events",
    "READABLE_TOPIC": "receipt-pipeline-readable",
}


def comma_list(value: str) -> tuple[str, ...]:
    """`a, b,,c` -> (a, b, c): how every list is spelled in an environment variable."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


class ConfigError(RuntimeError):
    """Configuration is missing or invalid; raised while a function starts."""


class Env:
    """Typed access to environment variables that collects every problem before failing."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        self._problems: list[str] = []

    def present(self, *names: str) -> bool:
        """Whether any of these is set: an optional part of the configuration is in use."""
        return any(self._environ.get(name, "").strip() for name in names)

    def required(self, name: str) -> str:
        value = self._environ.get(name, "").strip()
        if not value:
            self._problems.append(f"{name} is required")
        return value

    def optional(self, name: str, default: str) -> str:
        return self._environ.get(name, "").strip() or default

    def secrets(self, name: str) -> tuple[str, ...]:
        """A required comma-separated list, so a key can rotate without downtime."""
        values = comma_list(self.required(name))
        if self._environ.get(name, "").strip() and not values:
            self._problems.append(f"{name} holds no value")
        return values

    def names(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        """An optional comma-separated list."""
        raw = self._environ.get(name)
        return default if raw is None else comma_list(raw)

    def flag(self, name: str, default: bool) -> bool:
        raw = self._environ.get(name, "").strip().lower()
        if not raw:
            return default
        if raw in TRUE_WORDS:
            return True
        if raw in FALSE_WORDS:
            return False
        self._problems.append(f"{name} must be true or false, not {raw!r}")
        return default

    def number(self, name: str, default: float, minimum: float = 0) -> float:
        raw = self._environ.get(name, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            self._problems.append(f"{name} must be a number, not {raw!r}")
            return default
        if value < minimum:
            self._problems.append(f"{name} must be at least {minimum}")
        return value

    def project(self) -> str:
        return self.required("GOOGLE_CLOUD_PROJECT")

    def topics(self) -> dict[str, str]:
        """Topic IDs by routing key: "events" and "readable"."""
        return {
            name.removesuffix("_TOPIC").lower(): self.optional(name, default)
            for name, default in DEFAULT_TOPICS.items()
        }

    def problem(self, description: str) -> None:
        self._problems.append(description)

    def check(self, component: str) -> None:
        if self._problems:
            raise ConfigError(f"{component} cannot start: " + "; ".join(self._problems))
