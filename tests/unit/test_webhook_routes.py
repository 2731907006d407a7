"""What a provider declares to the webhook: the methods its route answers, the largest body
it reads, and the bytes it publishes instead of the request body."""

from collections.abc import Mapping
from dataclasses import replace

import pytest
from flask import Flask, Response, request

from shared.adapters.publisher import PublishFailed, PubSubSettings
from shared.adapters.webhook import Route, Webhook, WebhookConfig, body_limit
from shared.core.config import ConfigError, Env
from shared.core.ingress import Incoming, Publish, Reply
from shared.providers import REGISTRY, bm, chatapp, rbm

APP = Flask(__name__)
SETTINGS = PubSubSettings("p", {"events": "events"}, timeout=1)


class Recorder:
    """A publisher that confirms, or fails when told to, and a spool; both keep what came."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.published: list[bytes] = []
        self.spooled: list[bytes] = []

    def publish(self, topic_key: str, data: bytes, attributes: Mapping[str, str]) -> str:
        if self.fail:
            raise PublishFailed("down")
        self.published.append(data)
        return "1"

    def add(self, data: bytes, topic_key: str, attributes: Mapping[str, str]) -> str:
        self.spooled.append(data)
        return "s1"


def webhook(route: Route, recorder: Recorder) -> Webhook:
    config = WebhookConfig(SETTINGS, {"meta": route}, frozenset({"meta"}), 1)
    return Webhook(config, recorder, spool=lambda: recorder)


def call(hook: Webhook, method: str, path: str = "/meta", body: bytes = b"") -> Response:
    with APP.test_request_context(path, method=method, data=body):
        return hook(request)


def echo(request: Incoming) -> Reply:
    """A GET handshake as Meta's: hub.challenge echoed back."""
    return Reply(200, {"method": request.method, "query": dict(request.query)})


def test_a_route_answers_only_its_methods_and_a_get_gets_its_query_string() -> None:
    hook = webhook(Route(echo, frozenset({"GET", "POST"}), 100), Recorder())
    query = "/meta?hub.mode=subscribe&hub.challenge=123&hub.challenge=456&hub.verify_token=t"
    answer = call(hook, "GET", query)
    assert answer.status_code == 200
    assert answer.get_json() == {
        "method": "GET",
        "query": {"hub.mode": "subscribe", "hub.challenge": "123", "hub.verify_token": "t"},
    }
    refused = call(hook, "PUT")
    assert (refused.status_code, refused.headers["Allow"]) == (405, "GET, POST")
    post_only = webhook(Route(echo, frozenset({"POST"}), 100), Recorder())
    assert call(post_only, "GET").headers["Allow"] == "POST"


def test_each_route_reads_at_most_its_own_limit() -> None:
    hook = webhook(Route(echo, frozenset({"POST"}), 10), Recorder())
    assert call(hook, "POST", body=b"x" * 10).status_code == 200
    too_big = call(hook, "POST", body=b"x" * 11)
    assert too_big.status_code == 413
    assert "10 bytes" in too_big.get_json()["error"]


def test_limits_are_per_provider_and_the_old_global_one_only_tightens() -> None:
    assert rbm.PROVIDER.max_body_bytes == 64 * 1024
    assert bm.PROVIDER.max_body_bytes == chatapp.PROVIDER.max_body_bytes == 1024 * 1024
    assert rbm.PROVIDER.max_body_bytes_variable == "RBM_MAX_BODY_BYTES"
    env = Env({"RBM_MAX_BODY_BYTES": "2048", "CHATAPP_MAX_BODY_BYTES": "3000000"})
    limits = {p.name: body_limit(p, env) for p in REGISTRY}
    assert limits == {
        "bm": 1024 * 1024,
        "rbm": 2048,
        "chatapp": 3_000_000,
        "whatsapp": 4 * 1024 * 1024,  # Meta batches up to ~3 MB in one POST
    }
    legacy = {"GOOGLE_CLOUD_PROJECT": "p", "RBM_CLIENT_TOKEN": "t", "MAX_BODY_BYTES": "100000"}
    legacy |= {"BM_SIGNING_KEY": "k", "BM_CLIENT_TOKEN": "t", "CHATAPP_CALLBACK_TOKENS": "t"}
    legacy |= {"WHATSAPP_APP_SECRET": "s", "WHATSAPP_VERIFY_TOKEN": "t"}
    routes = WebhookConfig.from_env(REGISTRY, Env(legacy)).routes
    assert {p.name: routes[p.route].max_body_bytes for p in REGISTRY} == {
        "bm": 100_000,
        "rbm": 64 * 1024,  # the old global bound never loosens RBM's
        "chatapp": 100_000,
        "whatsapp": 100_000,
    }
    bad = Env({"RBM_MAX_BODY_BYTES": "0"})
    body_limit(rbm.PROVIDER, bad)
    with pytest.raises(ConfigError, match="RBM_MAX_BODY_BYTES"):
        bad.check("webhook")


@pytest.mark.parametrize("fail", [False, True], ids=["published", "spooled"])
def test_the_bytes_a_provider_gives_are_published_and_spooled_instead_of_the_body(
    fail: bool,
) -> None:
    def canonical(request: Incoming) -> Publish:
        return Publish(
            topic_key="events",
            attributes={"provider": "meta", "kind": "k"},
            accepted={"status": "accepted"},
            refused=Reply(503, {"error": "later"}),
            body=b"canonical",
        )

    recorder = Recorder(fail=fail)
    hook = webhook(Route(canonical, frozenset({"POST"}), 100), recorder)
    assert call(hook, "POST", body=b"as it came").status_code == 200
    assert (recorder.spooled if fail else recorder.published) == [b"canonical"]
    unchanged = webhook(
        Route(lambda r: replace(canonical(r), body=None), frozenset({"POST"}), 100), recorder
    )
    assert call(unchanged, "POST", body=b"as it came").status_code == 200
    assert (recorder.spooled if fail else recorder.published)[-1] == b"as it came"
