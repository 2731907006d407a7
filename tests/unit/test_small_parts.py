"""Document ids, configuration, and the READ receipt state machine."""

from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.read_receipt_sender import ReadReceiptConfig
from shared.adapters.webhook import WebhookConfig
from shared.core import credentials, read_receipts
from shared.core.config import ConfigError, Env
from shared.core.docids import doc_id
from shared.core.ingress import Incoming, Publish
from shared.core.read_receipts import Step
from shared.providers import REGISTRY
from shared.providers.bm import webhook as bm_webhook

NOW = datetime(2024, 5, 1, tzinfo=UTC)


def test_document_ids_are_deterministic_and_always_valid() -> None:
    assert doc_id("m1", "READ") == doc_id("m1", "READ") == "m1~READ"
    assert "/" not in doc_id("a/b")
    assert doc_id("a/b") != doc_id("a_b")
    assert doc_id("..") not in {".", ".."}
    assert not (doc_id("__x__").startswith("__") and doc_id("__x__").endswith("__"))
    assert len(doc_id("x" * 5000)) < 1500


def test_missing_configuration_fails_at_start_naming_every_problem() -> None:
    with pytest.raises(ConfigError) as failure:
        WebhookConfig.from_env(REGISTRY, Env({"MAX_BODY_BYTES": "lots"}))
    message = str(failure.value)
    for problem in ("GOOGLE_CLOUD_PROJECT", "BM_SIGNING_KEY", "BM_CLIENT_TOKEN", "MAX_BODY_BYTES"):
        assert problem in message


def test_configuration_with_rotating_keys() -> None:
    config = WebhookConfig.from_env(
        REGISTRY,
        Env({"GOOGLE_CLOUD_PROJECT": "p", "BM_SIGNING_KEY": " new , old ", "BM_CLIENT_TOKEN": "t"}),
    )
    assert set(config.routes) == {""}  # Business Messages only, at the root
    body = b'{"conversationId": "c", "receipts": {}}'
    for key in ("new", "old", "other"):
        headers = {bm_webhook.SIGNATURE_HEADER: credentials.hmac_sha512_header(body, key)}
        decision = config.routes[""].receive(Incoming((), headers, body, None))
        assert isinstance(decision, Publish) == (key != "other")
    assert (config.routes[""].max_body_bytes, config.routes[""].methods) == (
        1024**2,
        frozenset({"POST"}),
    )
    assert config.pubsub.topics == {
        "events": "receipt-pipeline-events",
        "readable": "receipt-pipeline-readable",
    }


def test_read_receipt_configuration() -> None:
    config = ReadReceiptConfig.from_env(
        REGISTRY, Env({"GOOGLE_CLOUD_PROJECT": "p", "AUTO_READ_RECEIPTS": "off"})
    )
    assert not config.enabled
    assert config.apis["bm"].endpoint == "https://businessmessages.googleapis.com"  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="READ_RECEIPT_LEASE_SECONDS"):
        ReadReceiptConfig.from_env(
            REGISTRY, Env({"GOOGLE_CLOUD_PROJECT": "p", "READ_RECEIPT_LEASE_SECONDS": "5"})
        )
    with pytest.raises(ConfigError, match="AUTO_READ_RECEIPTS"):
        ReadReceiptConfig.from_env(
            REGISTRY, Env({"GOOGLE_CLOUD_PROJECT": "p", "AUTO_READ_RECEIPTS": "maybe"})
        )


def test_read_receipt_state_machine() -> None:
    lease = timedelta(seconds=60)
    assert read_receipts.next_step(None, NOW) is Step.SEND
    claim = read_receipts.claimed(None, NOW, lease)
    assert claim["state"] == "PENDING"
    assert claim["attempts"] == 0
    assert read_receipts.next_step(claim, NOW + timedelta(seconds=59)) is Step.WAIT
    assert (
        read_receipts.next_step(claim, NOW + timedelta(seconds=61)) is Step.SEND
    )  # crashed attempt

    retry = read_receipts.finished(
        claim, NOW, attempts=3, error="HTTP 503 UNAVAILABLE", permanent=False
    )
    assert retry["state"] == "PENDING"
    assert retry["attempts"] == 3
    assert read_receipts.next_step(retry, NOW) is Step.SEND

    sent = read_receipts.finished(read_receipts.claimed(retry, NOW, lease), NOW, 1, None, False)
    assert (sent["state"], sent["attempts"], sent["sentTime"], sent["error"]) == (
        "SENT",
        4,
        NOW,
        None,
    )
    assert read_receipts.next_step(sent, NOW) is Step.DONE

    failed = read_receipts.finished(claim, NOW, 1, "HTTP 404 NOT_FOUND", permanent=True)
    assert failed["state"] == "FAILED"
    assert failed["error"] == "HTTP 404 NOT_FOUND"
    assert read_receipts.next_step(failed, NOW) is Step.DONE
