"""The webhook: routes each request to its provider, and hands authenticated events off.

A request's first path segment names its provider's route. One public function serves
every provider: the bounds, the publish and the rule "acknowledge only what Pub/Sub
confirmed" live here once; a provider only decides (ingress.Reply or ingress.Publish), and
declares the methods its route answers and the largest body it reads.
An event is acknowledged only once Pub/Sub has confirmed the publish (or, for providers
that spool, the spool holds it); everything authenticated is published unchanged, or in
the form its provider gives (Publish.body).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from flask import Request, Response, jsonify

from shared.adapters import logs
from shared.adapters.publisher import Publisher, PublishFailed, PubSubSettings
from shared.core import arrival
from shared.core.config import Env
from shared.core.ingress import Incoming, Publish, Reply
from shared.core.provider import Provider, Receiver
from shared.core.times import utc_now

log = logging.getLogger(__name__)
# Refusals are what an outsider can cause at will: their lines are rate-limited.
refusals = logging.getLogger(f"{__name__}.refusals")
refusals.addFilter(logs.RateLimit(per_second=1.0, burst=20))

# A healthy publish confirms in milliseconds; Alibaba wants an answer within ~3 s.
DEFAULT_PUBLISH_TIMEOUT_SECONDS = 2.0
NOT_FOUND = Reply(404, {"error": "no such endpoint"}, reason="no such route")
# Cloud Run's front end appends the address it saw to X-Forwarded-For: one trusted hop.
DEFAULT_TRUSTED_PROXY_HOPS = 1


@dataclass(frozen=True)
class Route:
    receive: Receiver
    methods: frozenset[str]  # the others get 405
    max_body_bytes: int  # larger bodies get 413, unread


@dataclass(frozen=True)
class WebhookConfig:
    pubsub: PubSubSettings
    routes: Mapping[str, Route]  # the providers switched on
    spool_providers: frozenset[str]  # whose events go to the spool when Pub/Sub fails
    trusted_proxy_hops: int  # proxies that each append to X-Forwarded-For, ours last

    @classmethod
    def from_env(cls, providers: Sequence[Provider], env: Env | None = None) -> WebhookConfig:
        env = env or Env()
        default_spool = tuple(p.name for p in providers if p.spools_by_default)
        # Once the one bound of every route: still honoured, but only to tighten.
        ceiling = env.number("MAX_BODY_BYTES", math.inf, minimum=1)
        config = cls(
            pubsub=PubSubSettings.from_env(env, DEFAULT_PUBLISH_TIMEOUT_SECONDS),
            routes={
                p.route: Route(p.receiver(env), p.methods, body_limit(p, env, ceiling))
                for p in providers
                if env.present(*p.switch)
            },
            spool_providers=frozenset(env.names("SPOOL_PROVIDERS", default_spool)),
            trusted_proxy_hops=int(
                env.number("TRUSTED_PROXY_HOPS", DEFAULT_TRUSTED_PROXY_HOPS, minimum=1)
            ),
        )
        unknown = config.spool_providers - {p.name for p in providers}
        if unknown:
            env.problem(f"SPOOL_PROVIDERS names unknown providers: {', '.join(sorted(unknown))}")
        if not config.routes:
            choices = " and/or ".join(f"{' and '.join(p.switch)} ({p.title})" for p in providers)
            env.problem(f"no provider is configured: set {choices}")
        env.check("webhook")
        return config


def body_limit(provider: Provider, env: Env, ceiling: float = math.inf) -> int:
    """`{NAME}_MAX_BODY_BYTES`, else the provider's own bound lowered to `ceiling`."""
    default = min(provider.max_body_bytes, ceiling)
    return int(env.number(provider.max_body_bytes_variable, default, minimum=1))


class Spool(Protocol):
    def add(self, data: bytes, topic_key: str, attributes: Mapping[str, str]) -> str: ...


def firestore_spool(project: str) -> Spool:
    """Imported on the first failed publish only: the cold start never loads Firestore.

    The spool's database (SPOOL_DATABASE) is the only one the webhook may use.
    """
    from shared.adapters.spool import FirestoreSpool, SpoolSettings

    return FirestoreSpool(SpoolSettings.from_env(Env()).client(project))


class Webhook:
    def __init__(
        self,
        config: WebhookConfig,
        publisher: Publisher,
        spool: Callable[[], Spool] | None = None,
    ) -> None:
        self._config = config
        self._publisher = publisher
        self._make_spool = spool or (lambda: firestore_spool(config.pubsub.project))
        self._spool: Spool | None = None
        self._spool_lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        prefix, *rest = request.path.strip("/").split("/")
        route = self._config.routes.get(prefix)
        if route is None:
            decision = NOT_FOUND
        elif request.method not in route.methods:
            allow = ", ".join(sorted(route.methods))
            decision = Reply(
                405, {"error": f"only {allow} is accepted"}, {"Allow": allow}, "method"
            )
        elif (body := read_bounded(request, route.max_body_bytes)) is None:
            limit = route.max_body_bytes
            decision = Reply(413, {"error": f"body exceeds {limit} bytes"}, reason="size")
        else:
            ip = client_ip(request, self._config.trusted_proxy_hops)
            query = request.args.to_dict()  # the first value of each key
            decided = route.receive(
                Incoming(tuple(rest), request.headers, body, ip, request.method, query)
            )
            if isinstance(decided, Publish):
                return self._hand_off(body if decided.body is None else decided.body, decided)
            decision = decided
        if decision.status >= 400:
            refusals.warning(
                "refused a request",
                extra={"status": decision.status, "route": prefix, "reason": decision.reason},
            )
        return _respond(decision)

    def _hand_off(self, body: bytes, publish: Publish) -> Response:
        # The first arrival, kept through the spool and every redrive (shared.core.arrival).
        stamped = {**publish.attributes, arrival.RECEIVED_TIME: arrival.stamp(utc_now())}
        publish = replace(publish, attributes=stamped)
        try:
            message_id = self._publisher.publish(publish.topic_key, body, publish.attributes)
        except PublishFailed as failure:
            return self._spool_or_refuse(body, publish, failure)
        log.info("event published", extra={**publish.attributes, "pubsubMessageId": message_id})
        return _respond(Reply(200, {**publish.accepted, "messageId": message_id}))

    def _spool_or_refuse(self, body: bytes, publish: Publish, failure: PublishFailed) -> Response:
        fields = dict(publish.attributes)
        if publish.attributes.get("provider") not in self._config.spool_providers:
            log.error("event not acknowledged: %s", failure, extra=fields)
            return _respond(publish.refused)
        from shared.adapters.spool import SpoolFailed

        try:
            spool_id = self._spool_instance().add(body, publish.topic_key, publish.attributes)
        except SpoolFailed as spool_failure:
            log.error("event not acknowledged: %s; %s", failure, spool_failure, extra=fields)
            return _respond(publish.refused)
        log.warning("event spooled: %s", failure, extra={**fields, "spoolId": spool_id})
        return _respond(Reply(200, {**publish.accepted, "spoolId": spool_id}))

    def _spool_instance(self) -> Spool:
        with self._spool_lock:
            if self._spool is None:
                self._spool = self._make_spool()
            return self._spool


def read_bounded(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is over the limit; never reads more than limit + 1 bytes.
    A GET carries no body: none is read."""
    if request.method == "GET":
        return b""
    if request.content_length is not None and request.content_length > limit:
        return None
    body: bytes = request.stream.read(limit + 1)
    return None if len(body) > limit else body


def client_ip(request: Request, trusted_hops: int) -> str | None:
    """The address the first of our trusted proxies saw; None when it cannot be known.

    Each trusted proxy appends the address it saw to X-Forwarded-For, so the client is the
    `trusted_hops`-th entry from the end; entries before it are the client's own claims.
    Without the header there is no proxy (a local run) and the peer is the client.
    """
    forwarded = request.headers.get("X-Forwarded-For")
    if not forwarded:
        return request.remote_addr
    entries = [entry.strip() for entry in forwarded.split(",")]
    return entries[-trusted_hops] or None if len(entries) >= trusted_hops else None


def _respond(reply: Reply) -> Response:
    if isinstance(reply.body, str):
        response = Response(reply.body, status=reply.status, mimetype="text/plain")
    else:
        response = jsonify(reply.body)
        response.status_code = reply.status
    response.headers.update(reply.headers)
    return response
