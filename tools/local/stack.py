"""The whole pipeline on this machine: real emulators, functions-framework servers, push.

Used by `make local`, `make demo` and the integration tests alike.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from google.api_core.exceptions import AlreadyExists, NotFound
from google.cloud import firestore
from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

from shared import providers
from shared.core.config import (
    DEFAULT_CHANGES_TOPIC,
    DEFAULT_DEAD_LETTER,
    DEFAULT_TOPICS,
    comma_list,
)
from shared.core.polling import SCHEDULE_TIME_HEADER
from tools.local.groups import STOP_GRACE_SECONDS
from tools.local.procs import ManagedProcess, answers_http, free_port, stop_all, wait_until
from tools.local.stop_signals import stopping_on_signals
from tools.payloads import KITS
from tools.standins.alibaba import AlibabaStandIn
from tools.standins.bm_api import BusinessMessagesStandIn
from tools.standins.google_oauth import ServiceAccountTokens
from tools.standins.graph_api import GraphApiStandIn
from tools.standins.loopback import LoopbackServer
from tools.standins.rbm_api import RbmApiStandIn
from tools.topology import FUNCTIONS, PULL_QUEUES, ROOT, SUBSCRIPTIONS, WEBHOOK, Function

Delivery = tuple[str, str]  # (Pub/Sub message id, SHA-256 of the body)
# Chat App's queue mode: which queues, where, and the AccessKey that gets their tokens.
SMQ_VARIABLES = (
    "CHATAPP_SMQ_QUEUES",
    "CHATAPP_SMQ_ENDPOINT",
    "CHATAPP_SMQ_TOKEN_ENDPOINT",
    "ALIBABA_CLOUD_ACCESS_KEY_ID",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
)

LOCAL_PROJECT = "receipt-pipeline-local"
# The spool's own database, named as Terraform names it: the emulator serves named databases.
LOCAL_SPOOL_DATABASE = "receipt-pipeline-spool"
# Variables the stack sets for its functions; inherited values must not leak in. Every
# provider's own variables (`provider_variable`) are handled alike, from the registry.
_STACK_VARIABLES = (
    "GOOGLE_CLOUD_PROJECT",
    "PUBSUB_EMULATOR_HOST",
    "FIRESTORE_EMULATOR_HOST",
    "SPOOL_DATABASE",
    "GOOGLE_APPLICATION_CREDENTIALS",
    *DEFAULT_TOPICS,
    *SMQ_VARIABLES,
    "RUN_PERIOD_SECONDS",
)
# The pipeline's own settings a shell may give `make local` (each provider's are passed too).
_PASSED_THROUGH = (
    "AUTO_READ_RECEIPTS",
    "MAX_BODY_BYTES",
    "PUBLISH_TIMEOUT_SECONDS",
    "SPOOL_MAX_ATTEMPTS",
    "READ_RECEIPT_LEASE_SECONDS",
    "TRUSTED_PROXY_HOPS",
    "SPOOL_PROVIDERS",
)
_PROVIDER_PREFIXES = tuple(f"{provider.name.upper()}_" for provider in providers.REGISTRY)


def provider_variable(name: str) -> bool:
    """Whether a variable is a provider's own: each provider's start with its name
    (`RBM_CLIENT_TOKEN`, `CHATAPP_ALLOWED_IPS`, ...)."""
    return name.startswith(_PROVIDER_PREFIXES)


def local_provider_env() -> dict[str, str]:
    """Every provider's local development credentials: with them, every provider is on."""
    return {name: value for kit in KITS.values() for name, value in kit.local_env.items()}


@dataclass
class StackSettings:
    work_dir: Path
    project: str = LOCAL_PROJECT
    webhook_port: int = 0  # 0: any free port
    pubsub_host: str | None = None  # an emulator already running; None: start one
    firestore_host: str | None = None
    spool_database: str = LOCAL_SPOOL_DATABASE
    # The providers' variables over their local development values (`local_provider_env`):
    # credentials, and `{PROVIDER}_API_ENDPOINT` for a real or other API instead of the
    # provider's stand-in.
    provider_env: dict[str, str] = field(default_factory=dict)
    credentials: str | None = None  # service-account key for Google's APIs
    topics: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_TOPICS))
    changes_topic: str = DEFAULT_CHANGES_TOPIC  # the change stream (docs/change-stream.md)
    function_env: dict[str, str] = field(default_factory=dict)  # e.g. AUTO_READ_RECEIPTS
    ack_deadline_seconds: int = 60
    drain_interval_seconds: float = 10.0  # Cloud Scheduler runs the drainer every minute
    # ...and the queue puller, each run polling until the next: locally, every 10 s.
    pull_period_seconds: float = 10.0
    # Chat App queues to pull (SMQ_VARIABLES); when none is given, the stand-in's.
    smq: dict[str, str] = field(default_factory=dict)
    max_delivery_attempts: int = 10  # then a message moves to the dead-letter topic

    @classmethod
    def from_env(cls, environ: Mapping[str, str], work_dir: Path) -> StackSettings:
        """`make local`: every documented variable is taken from the environment when set."""
        settings = cls(
            work_dir=work_dir,
            project=environ.get("GOOGLE_CLOUD_PROJECT") or LOCAL_PROJECT,
            webhook_port=int(environ.get("PORT") or 8080),
            pubsub_host=environ.get("PUBSUB_EMULATOR_HOST") or None,
            firestore_host=environ.get("FIRESTORE_EMULATOR_HOST") or None,
            spool_database=environ.get("SPOOL_DATABASE") or LOCAL_SPOOL_DATABASE,
            provider_env={
                name: value for name, value in environ.items() if provider_variable(name) and value
            },
            credentials=environ.get("GOOGLE_APPLICATION_CREDENTIALS") or None,
        )
        settings.topics = {
            name: environ.get(name) or topic for name, topic in DEFAULT_TOPICS.items()
        }
        settings.changes_topic = environ.get("CHANGES_TOPIC") or DEFAULT_CHANGES_TOPIC
        # The stand-in serves unless queues or endpoints of another service are given.
        if any(environ.get(name) for name in SMQ_VARIABLES[:3]):
            settings.smq = {name: environ[name] for name in SMQ_VARIABLES if environ.get(name)}
        settings.function_env = {
            name: environ[name] for name in _PASSED_THROUGH if environ.get(name)
        }
        return settings

    @property
    def providers_env(self) -> dict[str, str]:
        """The providers' variables the functions get."""
        return {**local_provider_env(), **self.provider_env}

    def secret(self, name: str) -> str:
        """The first of a provider's comma-separated secrets, as its platform would use it."""
        return comma_list(self.providers_env[name])[0]

    def given_api(self, provider: str) -> str | None:
        """The API endpoint given for a provider's READ instead of its stand-in, if any."""
        return self.provider_env.get(f"{provider.upper()}_API_ENDPOINT") or None


@contextlib.contextmanager
def running(settings: StackSettings) -> Iterator[LocalStack]:
    """A started stack for the block: stopped after it, or at the first SIGINT or SIGTERM (see
    `tools.local.stop_signals`); should this process die, its watchdog ends the servers."""
    stack = LocalStack(settings)
    with stopping_on_signals(stack.stop):
        yield stack.start()


class LocalStack:
    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.log_dir = settings.work_dir / "logs"
        self._owned: list[ManagedProcess] = []
        self.pubsub_host = settings.pubsub_host or f"127.0.0.1:{free_port()}"
        self.firestore_host = settings.firestore_host or f"127.0.0.1:{free_port()}"
        self.pubsub = self._emulator(
            "pubsub",
            ["beta", "emulators", "pubsub", "start", f"--project={settings.project}"],
            self.pubsub_host,
        )
        self.firestore = self._emulator(
            "firestore", ["emulators", "firestore", "start"], self.firestore_host
        )
        self.standin: BusinessMessagesStandIn | None = None
        self.rbm_standin: RbmApiStandIn | None = None
        self.graph_standin: GraphApiStandIn | None = None  # WhatsApp's READ
        self.alibaba: AlibabaStandIn | None = None  # unless other SMQ queues are configured
        self._credentials = settings.credentials
        self._scheduler_stop = threading.Event()
        self._schedulers: list[threading.Thread] = []
        self._standin_key = settings.work_dir / "standin-service-account.json"
        self.ports = {function.target: free_port() for function in FUNCTIONS}
        if settings.webhook_port:
            self.ports[WEBHOOK.target] = settings.webhook_port
        self.functions = {function.target: self._function(function) for function in FUNCTIONS}

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> LocalStack:
        try:
            self._start_emulators()
            self._start_api()
            self._start_alibaba()
            self.provision_pubsub()
            # Subscribers first, so the webhook never publishes into a push nobody answers.
            for function in FUNCTIONS[::-1]:
                self.start_function(function.target)
            self._start_scheduler()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self._scheduler_stop.set()
        stop_all(self._owned)
        for scheduler in self._schedulers:
            # Its request in flight, if any, failed when its function stopped.
            scheduler.join(timeout=STOP_GRACE_SECONDS)
        self._schedulers = []
        for standin in (self.standin, self.rbm_standin, self.graph_standin, self.alibaba):
            if standin is not None:
                standin.stop()
        self.standin = self.rbm_standin = self.graph_standin = self.alibaba = None
        self._standin_key.unlink(missing_ok=True)

    def _start_emulators(self) -> None:
        emulators = (
            (self.pubsub, self.pubsub_host, self.settings.pubsub_host),
            (self.firestore, self.firestore_host, self.settings.firestore_host),
        )
        for process, _, given in emulators:
            if not given:
                process.launch()  # each takes seconds: both start at once
        for process, host, given in emulators:
            url = f"http://{host}/"
            if given:
                wait_until(functools.partial(answers_http, url), 10, f"the {process.name} at {url}")
            else:
                process.await_ready(url, 90)

    def _start_api(self) -> None:
        """The providers' API stand-ins where no endpoint is given, sharing one token endpoint
        (as Google's APIs do), so one key file serves the READ sender for both."""
        tokens = ServiceAccountTokens()
        if not self.settings.given_api("bm"):
            self.standin = BusinessMessagesStandIn(tokens=tokens).start()
        if not self.settings.given_api("rbm"):
            self.rbm_standin = RbmApiStandIn(tokens=tokens).start()
        if not self.settings.given_api("whatsapp"):
            token = self.settings.secret("WHATSAPP_ACCESS_TOKEN")
            self.graph_standin = GraphApiStandIn(token).start()
        issuer = self.standin or self.rbm_standin
        if issuer is not None and not self.settings.credentials:
            self._standin_key.parent.mkdir(parents=True, exist_ok=True)
            issuer.write_key(self._standin_key)
            self._credentials = str(self._standin_key)

    def start_function(self, target: str) -> None:
        self.functions[target].start(f"{self.url(target)}/", timeout=60)

    def _start_alibaba(self) -> None:
        if not self.settings.smq:
            self.alibaba = AlibabaStandIn().start()

    def _start_scheduler(self) -> None:
        """Calls each scheduled function as Cloud Scheduler does: on its own cadence, with the
        schedule time in X-CloudScheduler-ScheduleTime, and never while its last call runs."""
        periods = {PULL_QUEUES.target: self.settings.pull_period_seconds}
        for function in FUNCTIONS:
            if function.settings["trigger"] == "schedule":
                period = periods.get(function.target, self.settings.drain_interval_seconds)
                scheduler = threading.Thread(
                    target=self._schedule,
                    args=(self.url(function.target), period),
                    name=f"scheduler {function.target}",
                    daemon=True,
                )
                self._schedulers.append(scheduler)
                scheduler.start()

    def _schedule(self, url: str, period: float) -> None:
        due = time.time() + period
        while not self._scheduler_stop.wait(max(0.0, due - time.time())):
            scheduled = datetime.fromtimestamp(due, UTC).isoformat().replace("+00:00", "Z")
            with contextlib.suppress(requests.RequestException):
                requests.post(url, headers={SCHEDULE_TIME_HEADER: scheduled}, timeout=120)
            due += period  # a call that ran past it delays the next one, as Cloud Scheduler does

    def restart_pubsub(self) -> None:
        """Starts the Pub/Sub emulator again after a stop; it keeps no state, so re-provision."""
        self.pubsub.start(f"http://{self.pubsub_host}/", 90)
        self.provision_pubsub()

    # --- wiring -----------------------------------------------------------------------

    def url(self, target: str) -> str:
        return f"http://127.0.0.1:{self.ports[target]}"

    @property
    def webhook_url(self) -> str:
        return self.url(WEBHOOK.target)

    @property
    def signing_key(self) -> str:
        return self.settings.secret("BM_SIGNING_KEY")

    @property
    def client_token(self) -> str:
        """Business Messages' client token, for its verification handshake."""
        return self.settings.secret("BM_CLIENT_TOKEN")

    def chatapp_url(self, kind: str) -> str:
        """The callback URL to paste into Alibaba's console for `status`, `inbound`, `audit`."""
        token = self.settings.secret("CHATAPP_CALLBACK_TOKENS")
        return f"{self.webhook_url}/chatapp/{kind}/{token}"

    def _api(self, provider: str, standin: LoopbackServer | None) -> str:
        """The API a provider's READ calls: the one given, else its stand-in."""
        given = self.settings.given_api(provider)
        if given:
            return given
        assert standin is not None, f"no {provider} API stand-in is running"
        return standin.endpoint

    @property
    def api_endpoint(self) -> str:
        return self._api("bm", self.standin)

    @property
    def rbm_api_endpoint(self) -> str:
        return self._api("rbm", self.rbm_standin)

    @property
    def rbm_url(self) -> str:
        """The webhook URL to register in the RBM Developer Console."""
        return f"{self.webhook_url}/rbm"

    @property
    def whatsapp_api_endpoint(self) -> str:
        return self._api("whatsapp", self.graph_standin)

    @property
    def whatsapp_url(self) -> str:
        """The Callback URL to paste into the Meta App Dashboard."""
        return f"{self.webhook_url}/whatsapp"

    @property
    def rbm_client_token(self) -> str:
        return self.settings.secret("RBM_CLIENT_TOKEN")

    def client_environment(self) -> dict[str, str]:
        """What a Google client needs to reach this stack's emulators, and its spool."""
        return {
            "GOOGLE_CLOUD_PROJECT": self.settings.project,
            "PUBSUB_EMULATOR_HOST": self.pubsub_host,
            "FIRESTORE_EMULATOR_HOST": self.firestore_host,
            "SPOOL_DATABASE": self.settings.spool_database,
        }

    def function_environment(self) -> dict[str, str]:
        env = {
            name: value
            for name, value in os.environ.items()
            if name not in _STACK_VARIABLES and not provider_variable(name)
        }
        credentials = self._credentials
        env.update(
            {**self.client_environment(), **self.settings.providers_env},
            PYTHONPATH=str(ROOT),
            BM_API_ENDPOINT=self.api_endpoint,
            RBM_API_ENDPOINT=self.rbm_api_endpoint,
            WHATSAPP_API_ENDPOINT=self.whatsapp_api_endpoint,
            RUN_PERIOD_SECONDS=str(self.settings.pull_period_seconds),
            **self.smq_environment(),
            **self.settings.topics,
            CHANGES_TOPIC=self.settings.changes_topic,
            **({"GOOGLE_APPLICATION_CREDENTIALS": credentials} if credentials else {}),
            **self.settings.function_env,
        )
        return env

    def smq_environment(self) -> dict[str, str]:
        """The queue puller's Chat App queues: the ones configured, or the stand-in's."""
        if self.alibaba is None:
            return dict(self.settings.smq)
        return {
            "CHATAPP_SMQ_QUEUES": ",".join(f"{t}={q}" for t, q in self.alibaba.queue_names.items()),
            "CHATAPP_SMQ_ENDPOINT": self.alibaba.endpoint,
            "CHATAPP_SMQ_TOKEN_ENDPOINT": self.alibaba.endpoint,
            "ALIBABA_CLOUD_ACCESS_KEY_ID": self.alibaba.access_key_id,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": self.alibaba.access_key_secret,
        }

    def log_entries(self, name: str) -> list[dict[str, Any]]:
        """The structured (JSON) lines a server of this stack has logged so far."""
        entries = []
        for line in (self.log_dir / f"{name}.log").read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict):
                    entries.append(entry)
        return entries

    def logged_for(
        self, target: str, message: str, deliveries: list[Delivery], timeout: float, since: int = 0
    ) -> dict[Delivery, dict[str, Any]]:
        """Waits until `target` has logged `message` for every one of these deliveries (in its
        lines after the first `since`), and returns those entries by delivery.

        Matching on the body's hash as well as the message id keeps it right across an emulator
        restart, which numbers messages from 1 again.
        """
        wanted = set(deliveries)

        def found() -> dict[Delivery, dict[str, Any]] | None:
            entries = {
                key: entry
                for entry in self.log_entries(target)[since:]
                if entry.get("message") == message
                and (key := (str(entry.get("pubsubMessageId")), str(entry.get("payloadKey"))))
                in wanted
            }
            return entries if len(entries) == len(wanted) else None

        result = wait_until(found, timeout, f"{target} to log {message!r} for {deliveries}")
        assert isinstance(result, dict)
        return result

    def firestore_client(self) -> firestore.Client:
        _set_emulator_hosts(self.client_environment())
        return firestore.Client(project=self.settings.project)

    def spool_client(self) -> firestore.Client:
        """The spool's database, where the drainer also parks what it cannot publish."""
        _set_emulator_hosts(self.client_environment())
        return firestore.Client(
            project=self.settings.project, database=self.settings.spool_database
        )

    def provision_pubsub(self) -> None:
        _set_emulator_hosts(self.client_environment())
        publisher = PublisherClient()
        subscriber = SubscriberClient()
        project = self.settings.project
        topics = {
            name.removesuffix("_TOPIC").lower(): publisher.topic_path(project, topic)
            for name, topic in self.settings.topics.items()
        }
        dead_letter = publisher.topic_path(project, DEFAULT_DEAD_LETTER)
        changes = publisher.topic_path(project, self.settings.changes_topic)
        for topic in [*topics.values(), dead_letter, changes]:
            with contextlib.suppress(AlreadyExists):
                publisher.create_topic(name=topic)
        with contextlib.suppress(AlreadyExists):  # without it, dead letters would be lost
            subscriber.create_subscription(
                name=subscriber.subscription_path(project, DEFAULT_DEAD_LETTER), topic=dead_letter
            )
        for subscription in SUBSCRIPTIONS:
            path = subscriber.subscription_path(project, subscription.id)
            # Re-point a subscription left from an earlier run at this run's function.
            with contextlib.suppress(NotFound):
                subscriber.delete_subscription(subscription=path)
            subscriber.create_subscription(
                request={
                    "name": path,
                    "topic": topics[subscription.topic_key],
                    "push_config": {"push_endpoint": f"{self.url(subscription.function)}/"},
                    "ack_deadline_seconds": self.settings.ack_deadline_seconds,
                    "retry_policy": {
                        "minimum_backoff": {"seconds": 1},
                        "maximum_backoff": {"seconds": 10},
                    },
                    "dead_letter_policy": {
                        "dead_letter_topic": dead_letter,
                        "max_delivery_attempts": self.settings.max_delivery_attempts,
                    },
                }
            )
        publisher.transport.close()
        subscriber.close()

    def _emulator(self, name: str, arguments: list[str], host: str) -> ManagedProcess:
        command = ["gcloud", *arguments, f"--host-port={host}", "--quiet"]
        env = {**os.environ, "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}
        process = ManagedProcess(f"{name}-emulator", command, lambda: env, self.log_dir)
        self._owned.append(process)
        return process

    def _function(self, function: Function) -> ManagedProcess:
        process = self.function_process(function, self.ports[function.target])
        self._owned.append(process)
        return process

    def function_process(
        self,
        function: Function,
        port: int,
        overrides: Mapping[str, str] | None = None,
        source: Path | None = None,
    ) -> ManagedProcess:
        """A functions-framework server for one function, wired to this stack.

        The stack starts one per function; a test may start another with other settings, or
        from another source (a built bundle).
        """
        executable = Path(sys.executable).parent / "functions-framework"
        command = [
            str(executable),
            f"--source={source or ROOT / function.source}",
            f"--target={function.target}",
            f"--signature-type={function.signature}",
            "--host=127.0.0.1",
            f"--port={port}",
        ]
        name = function.target if overrides is None else f"{function.target}-{port}"
        # As deployed: gunicorn serves `concurrency` requests at once on that many threads.
        threads = {"THREADS": str(function.settings["concurrency"])}
        return ManagedProcess(
            name,
            command,
            lambda: {**self.function_environment(), **threads, **(overrides or {})},
            self.log_dir,
        )


def _set_emulator_hosts(environment: Mapping[str, str]) -> None:
    # Google's clients read emulator hosts from the process environment only.
    os.environ.update(environment)


def pubsub_push(data: bytes, attributes: dict[str, str], message_id: str = "42") -> dict[str, Any]:
    """The body a Pub/Sub push subscription POSTs to its endpoint."""
    return {
        "subscription": "projects/test/subscriptions/test",
        "message": {
            "data": base64.b64encode(data).decode(),
            "attributes": attributes,
            "messageId": message_id,
            "publishTime": "2026-01-01T00:00:00Z",
        },
    }
