"""The publisher sends a message alone when nothing else is in flight, and batches the rest."""

import threading
from collections.abc import Mapping

import pytest

from shared.adapters.pubsub_client import PubSubPublisher


class Recording(PubSubPublisher):
    """The real routing between the two ways to publish; the ways themselves only record."""

    def __init__(self) -> None:
        super().__init__("p", {"events": "t"}, timeout=1)
        self.ways: list[str] = []
        self.first_in_flight = threading.Event()
        self.release = threading.Event()

    def publish_alone(self, topic_key: str, data: bytes, attributes: Mapping[str, str]) -> str:
        self.ways.append("alone")
        self.first_in_flight.set()
        assert self.release.wait(5)
        return "1"

    def _publish_batched(self, topic_key: str, data: bytes, attributes: Mapping[str, str]) -> str:
        self.ways.append("batched")
        return "2"


def test_a_lone_message_goes_alone_and_one_published_meanwhile_joins_a_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:9")  # never called
    publisher = Recording()
    first = threading.Thread(target=publisher.publish, args=("events", b"1", {}))
    first.start()
    assert publisher.first_in_flight.wait(5)
    assert publisher.publish("events", b"2", {}) == "2"  # while the first is in flight
    publisher.release.set()
    first.join(5)
    assert publisher.publish("events", b"3", {}) == "1"  # nothing in flight again
    assert publisher.ways == ["alone", "batched", "alone"]
