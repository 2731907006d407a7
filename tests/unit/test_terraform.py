"""terraform/ against the code: parsed with python-hcl2, since no terraform binary runs here.

checkov runs in `make lint`; these tests check what a static analyser cannot know: that
what Terraform deploys is what the code needs.
"""

from __future__ import annotations

import ast
import functools
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import hcl2
import pytest

from shared.adapters.publisher import PubSubSettings
from shared.adapters.read_receipt_sender import ReadReceiptConfig
from shared.adapters.spool import DrainConfig
from shared.adapters.store import RecorderConfig
from shared.adapters.webhook import WebhookConfig
from shared.core import records, routing
from shared.core.config import DEFAULT_CHANGES_TOPIC, DEFAULT_TOPICS, Env
from shared.core.polling import Schedule
from shared.core.spool import DEFAULT_MAX_ATTEMPTS
from shared.ops import report
from shared.providers import REGISTRY, chatapp, queue_pullers, rbm
from tests.terraform_values import Instance, Terraform
from tools.deploy import gcloud as deploy
from tools.local.stack import LOCAL_SPOOL_DATABASE
from tools.topology import FUNCTIONS, ROOT, SUBSCRIPTIONS, load

TERRAFORM = ROOT / "terraform"
BASIC_ROLES = {"roles/owner", "roles/editor", "roles/viewer"}


def _puller_config(env: Env) -> None:
    """What functions/pull_queues/main.py reads, in its order."""
    Schedule.from_env(env)
    PubSubSettings.from_env(env, default_timeout=10.0)
    queue_pullers(env, lambda *_: "1")
    env.check("pull-queues")


CONFIG_LOADERS: dict[str, Callable[[Env], object]] = {
    "webhook": functools.partial(WebhookConfig.from_env, REGISTRY),
    "record-events": RecorderConfig.from_env,
    "agent-read-receipts": functools.partial(ReadReceiptConfig.from_env, REGISTRY),
    "drain-spool": DrainConfig.from_env,
    "pull-queues": _puller_config,
}
# Chat App's queue mode, as CHATAPP_SMQ_QUEUES (in Terraform's order: its map's keys sorted).
SMQ_QUEUES = {
    "ChatAppInbound": "Alicom-Queue-1-ChatAppInbound",
    "ChatAppStatus": "Alicom-Queue-1-ChatAppStatus",
}


def _clean(value: Any) -> Any:
    """python-hcl2's output without its quoting and block markers."""
    if isinstance(value, dict):
        return {
            _clean(key): _clean(item)
            for key, item in value.items()
            if key not in ("__is_block__", "__comments__")
        }
    if isinstance(value, list):
        return [_clean(item) for item in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _parse() -> dict[str, Any]:
    merged: dict[str, Any] = {"resource": {}, "locals": {}, "variable": {}, "output": {}}
    for path in sorted(TERRAFORM.glob("*.tf")):
        with path.open() as handle:
            document = _clean(hcl2.load(handle))
        for entry in document.get("resource", []):
            for kind, resources in entry.items():
                merged["resource"].setdefault(kind, {}).update(resources)
        for entry in document.get("locals", []):
            merged["locals"].update(entry)
        for entry in document.get("variable", []):
            merged["variable"].update(entry)
    return merged


HCL = _parse()
PIPELINE = load()
# Every provider mix, and whether a provider that spools (Chat App by default) is among it;
# Chat App's queue mode ("chatapp-smq") without its HTTP push, and both Chat App modes.
PROVIDER_MIXES = [
    ("bm",),
    ("chatapp",),
    ("rbm",),
    ("whatsapp",),
    ("bm", "chatapp"),
    ("bm", "chatapp", "rbm"),
    ("bm", "chatapp", "rbm", "whatsapp"),
    ("rbm", "chatapp-smq"),
    ("chatapp", "chatapp-smq"),
]


def settings_for(providers: tuple[str, ...], **values: Any) -> deploy.Settings:
    smq = ",".join(f"{kind}={queue}" for kind, queue in SMQ_QUEUES.items())
    return deploy.Settings(
        project="p",
        business_messages_enabled="bm" in providers,
        chatapp_enabled="chatapp" in providers,
        rbm_enabled="rbm" in providers,
        whatsapp_enabled="whatsapp" in providers,
        chatapp_smq_queues=smq if "chatapp-smq" in providers else "",
        **values,
    )


def terraform(settings: deploy.Settings) -> Terraform:
    """terraform/ evaluated with the Terraform variables these `make deploy` settings spell."""
    return Terraform(
        TERRAFORM,
        {
            "project_id": settings.project,
            "region": settings.region,
            "name_prefix": settings.name_prefix,
            "business_messages_enabled": settings.business_messages_enabled,
            "chatapp_enabled": settings.chatapp_enabled,
            "rbm_enabled": settings.rbm_enabled,
            "rbm_api_endpoint": settings.rbm_api_endpoint,
            "whatsapp_enabled": settings.whatsapp_enabled,
            "whatsapp_api_endpoint": settings.whatsapp_api_endpoint,
            "whatsapp_api_version": settings.whatsapp_api_version,
            "chatapp_allowed_ips": list(settings.chatapp_allowed_ips),
            "spool_providers": list(settings.spool_providers),
            "spool_max_attempts": settings.spool_max_attempts,
            "auto_read_receipts": settings.auto_read_receipts,
            "bm_api_service_account_email": settings.bm_api_service_account_email,
            "receipt_retention_days": settings.receipt_retention_days,
            "max_instances": dict(settings.max_instances),
            "min_instances": dict(settings.min_instances),
            "chatapp_smq_queues": SMQ_QUEUES if settings.chatapp_smq_queues else {},
            "chatapp_smq_endpoint": settings.chatapp_smq_endpoint,
            "chatapp_smq_token_endpoint": settings.chatapp_smq_token_endpoint,
        },
    )


def resource(kind: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = HCL["resource"][kind][name]
    return found


def all_attributes(value: Any, name: str) -> Iterator[Any]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == name:
                yield item
            yield from all_attributes(item, name)
    elif isinstance(value, list):
        for item in value:
            yield from all_attributes(item, name)


# --- functions ------------------------------------------------------------------------


def test_every_function_directory_is_deployed_with_its_entry_point() -> None:
    directories = {
        path.name for path in (ROOT / "functions").iterdir() if (path / "main.py").exists()
    }
    assert {settings["entry_point"] for settings in PIPELINE["functions"].values()} == directories
    function = resource("google_cloudfunctions2_function", "pipeline")
    assert function["for_each"] == "${local.functions}"
    build = function["build_config"][0]
    assert build["runtime"] == "python312"
    assert build["entry_point"] == "${each.value.entry_point}"


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.name)
def test_the_entry_point_exists_with_the_declared_signature(function: Any) -> None:
    tree = ast.parse((ROOT / function.source).read_text())
    [definition] = [
        n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function.target
    ]
    decorators = {ast.unparse(d) for d in definition.decorator_list}
    expected = (
        "functions_framework.http"
        if function.signature == "http"
        else "functions_framework.cloud_event"
    )
    assert expected in decorators


def test_settings_reach_the_function_resource() -> None:
    service = resource("google_cloudfunctions2_function", "pipeline")["service_config"][0]
    assert service["available_memory"] == "${each.value.memory}"
    assert service["timeout_seconds"] == "${each.value.timeout_seconds}"
    assert service["max_instance_request_concurrency"] == "${each.value.concurrency}"
    assert service["environment_variables"] == "${each.value.env}"
    assert (
        service["ingress_settings"] == '${each.value.public ? "ALLOW_ALL" : "ALLOW_INTERNAL_ONLY"}'
    )
    [secrets] = service["dynamic"]
    assert secrets["secret_environment_variables"]["for_each"] == "${each.value.secrets}"


@pytest.mark.parametrize("providers", PROVIDER_MIXES)
@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.name)
def test_each_function_starts_with_exactly_what_terraform_gives_it(
    function: Any, providers: tuple[str, ...]
) -> None:
    settings = settings_for(providers)
    if not settings.deployed(function):
        assert function.settings["deployed_with"]  # off with its switch, as locals.tf has it
        return
    environment = deploy.environment(function, settings)
    secret_values = dict.fromkeys(deploy.secrets(function, settings), "secret-value")
    CONFIG_LOADERS[function.name](Env({**environment, **secret_values}))  # raises if short


@pytest.mark.parametrize("providers", PROVIDER_MIXES)
@pytest.mark.parametrize("spool_providers", [("chatapp",), ("bm", "chatapp"), ()])
def test_terraform_and_make_deploy_give_each_function_the_same_environment(
    providers: tuple[str, ...], spool_providers: tuple[str, ...]
) -> None:
    """locals.tf and tools/deploy/gcloud.py build the same variables (tests above use that)."""
    settings = settings_for(
        providers,
        spool_providers=spool_providers,
        chatapp_allowed_ips=("1.2.3.4", "10.0.0.0/8"),
        receipt_retention_days=30,
        spool_max_attempts=7,
        auto_read_receipts=False,
        rbm_api_endpoint="https://europe-rcsbusinessmessaging.googleapis.com",
        whatsapp_api_endpoint="https://graph.example.test",
        whatsapp_api_version="v99.0",
    )
    functions = terraform(settings).local("functions")
    deployed = [function for function in FUNCTIONS if settings.deployed(function)]
    assert set(functions) == {function.name for function in deployed}
    for function in deployed:
        assert functions[function.name]["env"] == deploy.environment(function, settings)
        assert functions[function.name]["secrets"] == {
            env: secret.removeprefix("receipt-pipeline-")
            for env, secret in deploy.secrets(function, settings).items()
        }


def test_the_environment_names_what_each_function_reads() -> None:
    full = settings_for(
        ("chatapp", "chatapp-smq"), chatapp_allowed_ips=("1.2.3.4",), receipt_retention_days=30
    )
    keys = {f.name: set(deploy.environment(f, full)) for f in FUNCTIONS}
    assert keys == {
        "webhook": {
            "GOOGLE_CLOUD_PROJECT",
            "THREADS",
            *DEFAULT_TOPICS,
            "SPOOL_PROVIDERS",
            "SPOOL_DATABASE",
            "CHATAPP_ALLOWED_IPS",
        },
        "record-events": {
            "GOOGLE_CLOUD_PROJECT",
            "THREADS",
            "RECEIPT_RETENTION_DAYS",
            "CHANGES_TOPIC",
        },
        "agent-read-receipts": {
            "GOOGLE_CLOUD_PROJECT",
            "THREADS",
            "AUTO_READ_RECEIPTS",
            "CHANGES_TOPIC",
        },
        "drain-spool": {
            "GOOGLE_CLOUD_PROJECT",
            "THREADS",
            *DEFAULT_TOPICS,
            "SPOOL_DATABASE",
            "SPOOL_MAX_ATTEMPTS",
        },
        "pull-queues": {
            "GOOGLE_CLOUD_PROJECT",
            "THREADS",
            "EVENTS_TOPIC",
            "CHATAPP_SMQ_QUEUES",
            "CHATAPP_SMQ_ENDPOINT",
            "CHATAPP_SMQ_TOKEN_ENDPOINT",
        },
    }


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, {}),  # the code's defaults: Graph API's host and its version
        (
            {
                "whatsapp_api_endpoint": "https://graph.example.test",
                "whatsapp_api_version": "v99.0",
            },
            {
                "WHATSAPP_API_ENDPOINT": "https://graph.example.test",
                "WHATSAPP_API_VERSION": "v99.0",
            },
        ),
        ({"whatsapp_api_version": "v99.0"}, {"WHATSAPP_API_VERSION": "v99.0"}),
    ],
)
def test_whatsapp_s_api_settings_reach_the_read_function_only_when_given(
    values: dict[str, str], expected: dict[str, str]
) -> None:
    functions = terraform(settings_for(("whatsapp",), **values)).local("functions")
    read = functions["agent-read-receipts"]["env"]
    assert {name: v for name, v in read.items() if name.startswith("WHATSAPP_")} == expected
    assert read["AUTO_READ_RECEIPTS"] == "true"
    # The Graph API token is a secret, never a plain variable.
    assert functions["agent-read-receipts"]["secrets"] == {
        "WHATSAPP_ACCESS_TOKEN": "whatsapp-access-token"
    }
    assert functions["webhook"]["secrets"] == {
        "WHATSAPP_APP_SECRET": "whatsapp-app-secret",
        "WHATSAPP_VERIFY_TOKEN": "whatsapp-verify-token",
    }


def test_whatsapp_alone_deploys_the_webhook_and_off_mounts_none_of_its_secrets() -> None:
    assert "whatsapp" in PIPELINE["functions"]["webhook"]["deployed_with"]
    alone = terraform(settings_for(("whatsapp",))).local("functions")
    assert "webhook" in alone
    off = terraform(settings_for(("bm", "chatapp", "rbm"))).local("functions")
    mounted = {env for function in off.values() for env in function["secrets"]}
    assert not {env for env in mounted if env.startswith("WHATSAPP_")}
    assert not [s for s in terraform(settings_for(("rbm",))).local("secrets") if "whatsapp" in s]


def test_the_queue_modes_defaults_and_switch_are_the_codes() -> None:
    variables = HCL["variable"]
    assert variables["chatapp_smq_endpoint"]["default"] == chatapp.SMQ_ENDPOINT
    assert variables["chatapp_smq_token_endpoint"]["default"] == chatapp.SMQ_TOKEN_ENDPOINT
    assert variables["chatapp_smq_queues"]["default"] == {}
    assert PIPELINE["functions"]["pull-queues"]["deployed_with"] == ["chatapp-smq"]
    off = terraform(settings_for(("chatapp",))).local("functions")
    assert "pull-queues" not in off
    # The scheduler runs the puller every minute, the period each run polls for by default.
    assert PIPELINE["functions"]["pull-queues"]["schedule"] == "* * * * *"
    assert Schedule.from_env(Env({})).period == 60


@pytest.mark.parametrize(
    ("providers", "spool_providers", "spooled"),
    [
        (("bm",), ("chatapp",), ""),  # Chat App spools, but is off
        (("chatapp",), ("chatapp",), "chatapp"),
        (("bm", "chatapp"), ("chatapp",), "chatapp"),
        (("bm", "chatapp"), ("bm", "chatapp"), "bm,chatapp"),
        (("bm", "chatapp"), (), ""),
    ],
)
def test_the_webhook_spools_only_providers_that_are_on(
    providers: tuple[str, ...], spool_providers: tuple[str, ...], spooled: str
) -> None:
    settings = settings_for(providers, spool_providers=spool_providers)
    webhook = terraform(settings).local("functions")["webhook"]
    assert webhook["env"]["SPOOL_PROVIDERS"] == spooled


def test_the_spool_database_is_the_same_everywhere() -> None:
    settings = deploy.Settings(project="p")
    functions = terraform(settings).local("functions")
    assert functions["webhook"]["env"]["SPOOL_DATABASE"] == "receipt-pipeline-spool"
    assert functions["drain-spool"]["env"]["SPOOL_DATABASE"] == "receipt-pipeline-spool"
    assert functions["drain-spool"]["env"]["SPOOL_MAX_ATTEMPTS"] == str(DEFAULT_MAX_ATTEMPTS)
    assert settings.spool_database == LOCAL_SPOOL_DATABASE == "receipt-pipeline-spool"
    assert settings.spool_max_attempts == DEFAULT_MAX_ATTEMPTS


def test_concurrency_and_threads_match() -> None:
    for function in FUNCTIONS:
        settings = deploy.Settings(project="p")
        threads = deploy.environment(function, settings)["THREADS"]
        assert threads == str(function.settings["concurrency"])
        assert f"--concurrency={threads}" in deploy.command(function, settings)


# --- Pub/Sub --------------------------------------------------------------------------


def test_every_topic_the_code_publishes_to_exists() -> None:
    assert set(PIPELINE["topics"]) == {routing.EVENTS, routing.READABLE, "changes"}
    topics = resource("google_pubsub_topic", "pipeline")
    assert topics["for_each"] == "${local.pipeline.topics}"
    assert topics["name"] == "${var.name_prefix}-${each.key}"
    webhook = PIPELINE["functions"]["webhook"]
    assert set(webhook["publishes_to"]) == {routing.EVENTS, routing.READABLE}
    # The variables the webhook reads name exactly those topics.
    env = deploy.environment(
        next(f for f in FUNCTIONS if f.name == "webhook"), deploy.Settings("p")
    )
    assert {env[name] for name in DEFAULT_TOPICS} == {
        f"receipt-pipeline-{t}" for t in webhook["publishes_to"]
    }
    # The functions that record changes publish them where the code's default says.
    for function in FUNCTIONS:
        env = deploy.environment(function, deploy.Settings("p"))
        recorder = function.name in ("record-events", "agent-read-receipts")
        assert env.get("CHANGES_TOPIC") == (DEFAULT_CHANGES_TOPIC if recorder else None)


def test_every_subscriber_has_a_push_subscription_with_a_dead_letter_policy() -> None:
    subscribers = {name for name, f in PIPELINE["functions"].items() if f["trigger"] == "push"}
    assert {s["function"] for s in PIPELINE["subscriptions"].values()} == subscribers
    assert {s.id for s in SUBSCRIPTIONS} == set(PIPELINE["subscriptions"])  # the local stack too
    push = resource("google_pubsub_subscription", "push")
    assert push["for_each"] == "${local.pipeline.subscriptions}"
    config = push["push_config"][0]
    assert config["push_endpoint"].endswith(".service_config[0].uri}")
    assert (
        config["oidc_token"][0]["service_account_email"] == "${google_service_account.push.email}"
    )
    dead_letter = push["dead_letter_policy"][0]
    assert dead_letter["dead_letter_topic"] == "${google_pubsub_topic.dead_letter.id}"
    assert dead_letter["max_delivery_attempts"] == "${var.max_delivery_attempts}"
    assert push["retry_policy"][0]["minimum_backoff"] == "10s"
    assert (
        resource("google_pubsub_subscription", "dead_letter")["topic"]
        == "${google_pubsub_topic.dead_letter.id}"
    )


def test_the_pubsub_service_agent_has_both_dead_letter_grants_and_mints_push_tokens() -> None:
    publisher = resource("google_pubsub_topic_iam_member", "dead_letter_publisher")
    assert (publisher["topic"], publisher["role"]) == (
        "${google_pubsub_topic.dead_letter.id}",
        "roles/pubsub.publisher",
    )
    subscriber = resource("google_pubsub_subscription_iam_member", "dead_letter_subscriber")
    assert subscriber["for_each"] == "${local.pipeline.subscriptions}"
    assert subscriber["subscription"] == "${google_pubsub_subscription.push[each.key].id}"
    assert subscriber["role"] == "roles/pubsub.subscriber"
    token = resource("google_service_account_iam_member", "token_creator")
    assert token["role"] == "roles/iam.serviceAccountTokenCreator"
    assert token["for_each"]["pubsub"] == "${local.pubsub_service_agent}"
    for grant in (publisher, subscriber):
        assert grant["member"] == "${local.pubsub_service_agent}"
    assert "gcp-sa-pubsub.iam.gserviceaccount.com" in HCL["locals"]["pubsub_service_agent"]


def test_only_the_push_invoker_may_call_the_subscribers() -> None:
    invoker = resource("google_cloud_run_v2_service_iam_member", "push_invoker")
    assert "if !fn.public" in invoker["for_each"]  # subscribers only
    assert (invoker["role"], invoker["member"]) == (
        "roles/run.invoker",
        "serviceAccount:${google_service_account.push.email}",
    )


# --- identity and secrets -------------------------------------------------------------


def test_no_basic_roles_anywhere() -> None:
    values = [
        *all_attributes(HCL["resource"], "role"),
        *all_attributes(HCL["resource"], "for_each"),
    ]
    roles = {str(value) for value in values}
    assert not {
        role for role in roles if isinstance(role, str) and any(b in role for b in BASIC_ROLES)
    }


def test_all_users_only_on_the_webhook() -> None:
    public = [
        (kind, name)
        for kind, resources in HCL["resource"].items()
        for name, body in resources.items()
        if any(m in str(body) for m in ("allUsers", "allAuthenticatedUsers"))
    ]
    assert public == [("google_cloud_run_v2_service_iam_member", "public_webhook")]
    webhook = resource("google_cloud_run_v2_service_iam_member", "public_webhook")
    assert "fn.public" in webhook["for_each"]
    assert [name for name, f in PIPELINE["functions"].items() if f["public"]] == ["webhook"]


def test_each_function_has_its_own_account_and_only_its_own_secrets() -> None:
    accounts = resource("google_service_account", "function")
    assert "local.functions" in accounts["for_each"]
    readers = HCL["locals"]["secret_readers"]
    assert "fn.secrets" in readers  # a function reads only the secrets it mounts
    private_secrets = {
        name: set(f["secrets"]) for name, f in PIPELINE["functions"].items() if not f["public"]
    }
    assert private_secrets == {
        "record-events": set(),
        "agent-read-receipts": {"WHATSAPP_ACCESS_TOKEN"},  # the Graph API's bearer token
        "drain-spool": set(),
        "pull-queues": {"ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET"},
    }


# Who holds each role on what, as Terraform grants it (evaluated, as a plan would).
def function(name: str) -> str:
    return f'serviceAccount:${{google_service_account.function["{name}"].email}}'


BUILD = "serviceAccount:${google_service_account.build.email}"
INVOKER = "serviceAccount:${google_service_account.push.email}"
PUBSUB_AGENT = (
    "serviceAccount:service-${data.google_project.this.number}"
    "@gcp-sa-pubsub.iam.gserviceaccount.com"
)
SCHEDULER_AGENT = (
    "serviceAccount:service-${data.google_project.this.number}"
    "@gcp-sa-cloudscheduler.iam.gserviceaccount.com"
)
PUBLISHER, SECRETS, FIRESTORE = (
    "roles/pubsub.publisher",
    "roles/secretmanager.secretAccessor",
    "roles/datastore.user",
)
# What each kind of grant is on: the argument naming its resource.
GRANTED_ON = {
    "google_pubsub_topic_iam_member": "topic",
    "google_pubsub_subscription_iam_member": "subscription",
    "google_secret_manager_secret_iam_member": "secret_id",
    "google_cloud_run_v2_service_iam_member": "name",
    "google_service_account_iam_member": "service_account_id",
    "google_storage_bucket_iam_member": "bucket",
    "google_artifact_registry_repository_iam_member": "repository",
    "google_project_iam_member": "project",
    "google_bigquery_table_iam_member": "table_id",
}


def topic(key: str) -> str:
    return f'${{google_pubsub_topic.pipeline["{key}"].id}}'


def secret(name: str) -> str:
    return f'${{google_secret_manager_secret.pipeline["{name}"].id}}'


def database(name: str) -> str:
    """A project-level grant whose condition confines it to one Firestore database."""
    return f'p, if resource.name == "projects/p/databases/{name}"'


def service(name: str) -> str:
    return f'${{google_cloudfunctions2_function.pipeline["{name}"].service_config[0].service}}'


def granted_on(instance: Instance) -> str:
    target = str(instance.argument(GRANTED_ON[instance.kind]))
    if instance.has_block("condition"):
        target += f", if {instance.argument('condition', 'expression')}"
    return target


def grants(settings: deploy.Settings) -> dict[str, set[tuple[str, str]]]:
    """Every IAM grant terraform/ makes with these settings: member -> {(role, on what)}."""
    found: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for instance in terraform(settings).all_instances():
        if "_iam_" in instance.kind:
            role = instance.argument("role")
            found[instance.argument("member")].add((role, granted_on(instance)))
    return dict(found)


def test_iam_is_only_ever_added_to_never_replaced() -> None:
    """`_iam_member` adds one member; `_iam_binding`/`_iam_policy` would remove others'."""
    kinds = {kind for kind in HCL["resource"] if "_iam_" in kind}
    assert kinds == set(GRANTED_ON)


@pytest.mark.parametrize("providers", PROVIDER_MIXES)
def test_each_function_holds_exactly_these_roles_on_exactly_these_resources(
    providers: tuple[str, ...],
) -> None:
    settings = settings_for(providers)  # Terraform's defaults: Chat App spools
    spooling = "chatapp" in providers
    # The webhook's secrets per provider; the READ function reads WhatsApp's access token only.
    secrets_of = {
        "bm": {"bm-signing-key", "bm-client-token"},
        "chatapp": {"chatapp-callback-tokens"},
        "rbm": {"rbm-client-token"},
        "whatsapp": {"whatsapp-app-secret", "whatsapp-verify-token"},
        "chatapp-smq": set(),  # the puller's, below
    }
    secrets = set().union(*(secrets_of[provider] for provider in providers))
    read_secrets = {"whatsapp-access-token"} if "whatsapp" in providers else set()
    found = grants(settings)
    assert found[function("webhook")] == {
        (PUBLISHER, topic("events")),
        (PUBLISHER, topic("readable")),
        *{(SECRETS, secret(name)) for name in secrets},
        # Firestore only to spool, only in the spool's database, only while a provider spools.
        *([(FIRESTORE, database("receipt-pipeline-spool"))] if spooling else []),
    }
    assert found[function("record-events")] == {
        (FIRESTORE, database("(default)")),
        (PUBLISHER, topic("changes")),
    }
    assert found[function("agent-read-receipts")] == {
        (FIRESTORE, database("(default)")),
        (PUBLISHER, topic("changes")),
        *{(SECRETS, secret(name)) for name in read_secrets},
    }
    assert found[function("drain-spool")] == {
        (PUBLISHER, topic("events")),
        (PUBLISHER, topic("readable")),
        (FIRESTORE, database("receipt-pipeline-spool")),
    }
    # The queue puller publishes and reads its AccessKey; no Firestore at all.
    puller = {
        (PUBLISHER, topic("events")),
        (SECRETS, secret("alibaba-access-key-id")),
        (SECRETS, secret("alibaba-access-key-secret")),
    }
    assert found.get(function("pull-queues"), set()) == (
        puller if "chatapp-smq" in providers else set()
    )


@pytest.mark.parametrize(
    ("providers", "spool_providers"),
    [(("bm",), ("chatapp",)), (("bm",), ()), (("chatapp",), ()), (("bm", "chatapp"), ())],
)
def test_without_a_provider_that_spools_the_webhook_has_no_firestore_access(
    providers: tuple[str, ...], spool_providers: tuple[str, ...]
) -> None:
    found = grants(settings_for(providers, spool_providers=spool_providers))
    assert not {
        role for role, _ in found[function("webhook")] if role.startswith("roles/datastore")
    }


def test_business_messages_spooling_gives_the_webhook_the_spool_alone() -> None:
    found = grants(settings_for(("bm",), spool_providers=("bm",)))
    firestore = {(r, on) for r, on in found[function("webhook")] if r == FIRESTORE}
    assert firestore == {(FIRESTORE, database("receipt-pipeline-spool"))}


def test_the_read_receipt_function_may_run_as_the_registered_account() -> None:
    registered = "bm-partner@partner-project.iam.gserviceaccount.com"
    found = grants(settings_for(("bm",), bm_api_service_account_email=registered))
    assert found[f"serviceAccount:{registered}"] == {
        (FIRESTORE, database("(default)")),
        (PUBLISHER, topic("changes")),
    }
    assert function("agent-read-receipts") not in found
    # ...and then that account, not the webhook's, reads WhatsApp's access token.
    found = grants(settings_for(("whatsapp",), bm_api_service_account_email=registered))
    assert found[f"serviceAccount:{registered}"] == {
        (FIRESTORE, database("(default)")),
        (PUBLISHER, topic("changes")),
        (SECRETS, secret("whatsapp-access-token")),
    }
    assert (SECRETS, secret("whatsapp-access-token")) not in found[function("webhook")]


def test_everyone_else_holds_exactly_these_roles() -> None:
    found = grants(settings_for(("bm",)))
    function_accounts = {function(f.name) for f in FUNCTIONS}
    others = {member: roles for member, roles in found.items() if member not in function_accounts}
    assert others == {
        # The build writes logs (Cloud Logging authorises writes per project) and pushes
        # images to the functions' repository only; it reads the sources' bucket.
        BUILD: {
            ("roles/logging.logWriter", "p"),
            (
                "roles/artifactregistry.writer",
                "${google_artifact_registry_repository.functions.name}",
            ),
            ("roles/storage.objectViewer", "p-receipt-pipeline-sources"),  # its name
        },
        INVOKER: {
            ("roles/run.invoker", service("record-events")),
            ("roles/run.invoker", service("agent-read-receipts")),
            ("roles/run.invoker", service("drain-spool")),
        },
        "allUsers": {("roles/run.invoker", service("webhook"))},
        PUBSUB_AGENT: {
            ("roles/iam.serviceAccountTokenCreator", "${google_service_account.push.name}"),
            ("roles/pubsub.publisher", "${google_pubsub_topic.dead_letter.id}"),
            *{
                ("roles/pubsub.subscriber", f'${{google_pubsub_subscription.push["{s}"].id}}')
                for s in PIPELINE["subscriptions"]
            },
        },
        SCHEDULER_AGENT: {
            ("roles/iam.serviceAccountTokenCreator", "${google_service_account.push.name}")
        },
    }


def test_functions_are_built_into_their_own_repository() -> None:
    settings = deploy.Settings(project="p")
    tf = terraform(settings)
    [repository] = tf.instances("google_artifact_registry_repository", "functions")
    assert (repository.argument("format"), repository.argument("location")) == (
        "DOCKER",
        "europe-west1",
    )
    assert repository.argument("repository_id") == "receipt-pipeline-functions"
    assert settings.docker_repository == (
        "projects/p/locations/europe-west1/repositories/receipt-pipeline-functions"
    )  # its id, as `make deploy` passes it
    for instance in tf.instances("google_cloudfunctions2_function", "pipeline"):
        build = resource("google_cloudfunctions2_function", "pipeline")["build_config"][0]
        assert build["docker_repository"] == "${google_artifact_registry_repository.functions.id}"
        assert instance.key in {f.name for f in FUNCTIONS}


def test_no_client_may_read_or_write_any_database() -> None:
    """The functions use IAM; security rules govern client SDKs, and deny them everything."""
    tf = terraform(deploy.Settings(project="p"))
    [ruleset] = tf.instances("google_firebaserules_ruleset", "deny_all")
    [rules_file] = resource("google_firebaserules_ruleset", "deny_all")["source"][0]["files"]
    rules = (TERRAFORM / "firestore.rules").read_text()
    assert rules_file["content"] == '${file("${path.module}/firestore.rules")}'
    code = [line.strip() for line in rules.splitlines() if line.strip() and "//" not in line]
    assert code == [
        "rules_version = '2';",
        "service cloud.firestore {",
        "match /databases/{database}/documents {",
        "match /{document=**} {",
        "allow read, write: if false;",
        "}",
        "}",
        "}",
    ]
    releases = {
        r.key: (r.argument("name"), r.argument("ruleset_name"))
        for r in tf.instances("google_firebaserules_release", "deny_all")
    }
    ruleset_name = f"projects/p/rulesets/{ruleset.argument('name')}"
    assert releases == {
        "main": ("cloud.firestore", ruleset_name),  # the (default) database's release
        "spool": ("cloud.firestore/receipt-pipeline-spool", ruleset_name),
    }
    assert (
        "firebaserules.googleapis.com" in resource("google_project_service", "required")["for_each"]
    )


def test_no_secret_value_in_terraform_or_the_repo() -> None:
    assert "google_secret_manager_secret_version" not in HCL["resource"]
    assert not list(all_attributes(HCL["resource"], "secret_data"))
    secret_names = {env for f in PIPELINE["functions"].values() for env in f["secrets"]}
    assert secret_names == {
        "BM_SIGNING_KEY",
        "BM_CLIENT_TOKEN",
        "CHATAPP_CALLBACK_TOKENS",
        "RBM_CLIENT_TOKEN",
        "WHATSAPP_APP_SECRET",
        "WHATSAPP_VERIFY_TOKEN",
        "WHATSAPP_ACCESS_TOKEN",
        "ALIBABA_CLOUD_ACCESS_KEY_ID",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    }
    for function in FUNCTIONS:  # secrets are mounted, never plain environment variables
        assert not secret_names & set(deploy.environment(function, deploy.Settings("p")))
    example = (TERRAFORM / "terraform.tfvars.example").read_text()
    assert not re.search(r"(?i)(key|token|secret)\s*=", example)


def test_scheduled_functions_are_called_by_cloud_scheduler_with_the_invoker() -> None:
    scheduled = {name for name, f in PIPELINE["functions"].items() if f["trigger"] == "schedule"}
    assert scheduled == {"drain-spool", "pull-queues"}
    job = resource("google_cloud_scheduler_job", "pipeline")
    assert 'fn.trigger == "schedule"' in job["for_each"]
    token = job["http_target"][0]["oidc_token"][0]
    assert token["service_account_email"] == "${google_service_account.push.email}"
    grant = resource("google_service_account_iam_member", "token_creator")
    assert grant["for_each"]["scheduler"] == "${local.scheduler_service_agent}"
    for name in scheduled:  # the drainer drains in order; the puller runs alone, one run at once
        function = PIPELINE["functions"][name]
        assert (function["max_instances"], function["concurrency"]) == (1, 1)


def test_service_account_ids_fit_in_30_characters() -> None:
    for settings in PIPELINE["functions"].values():
        assert len(f"receipt-pipeline-{settings['account']}") <= 30


def test_required_apis_are_enabled() -> None:
    services = str(resource("google_project_service", "required")["for_each"])
    for api in (
        "cloudfunctions",
        "cloudscheduler",
        "run",
        "cloudbuild",
        "artifactregistry",
        "pubsub",
        "firestore",
        "secretmanager",
    ):
        assert f"{api}.googleapis.com" in services


def test_receipt_ttl_matches_the_field_the_code_writes() -> None:
    ttl = resource("google_firestore_field", "receipt_expiry")
    # The messages hold their receipts (records.RECEIPTS); `receipts` is the previous layout's.
    assert (ttl["collection"], ttl["field"]) == ("${each.key}", "expireTime")
    assert f'["{records.MESSAGES}", "receipts"]' in ttl["for_each"]
    assert "ttl_config" in ttl
    assert "index_config" in ttl
    assert "var.receipt_retention_days > 0" in ttl["for_each"]


def test_the_report_query_has_its_collection_group_indexes() -> None:
    field = resource("google_firestore_field", "message_first_time")
    assert (field["collection"], field["field"]) == (records.MESSAGES, report.RANGE_FIELD)
    indexes = field["index_config"][0]["indexes"]
    scopes = {(index["query_scope"], index["order"]) for index in indexes}
    assert ("COLLECTION_GROUP", "ASCENDING") in scopes
    assert ("COLLECTION", "ASCENDING") in scopes  # the automatic ones stay
    composite = resource("google_firestore_index", "messages_by_agent")
    assert (composite["collection"], composite["query_scope"]) == (
        records.MESSAGES,
        "COLLECTION_GROUP",
    )
    fields = [(f["field_path"], f["order"]) for f in composite["fields"]]
    assert fields == [(report.EQUALITY_FIELD, "ASCENDING"), (report.RANGE_FIELD, "ASCENDING")]


# --- monitoring -----------------------------------------------------------------------


def test_the_receipt_statuses_charted_are_those_each_provider_records() -> None:
    """One log-based metric per provider and status (monitoring.tf): a status missing from
    `receipt_statuses` would go uncounted on the dashboard."""
    # The statuses on each provider's scale, and those it records without a rank.
    recorded = {provider.name: set(provider.scale.ranks) for provider in REGISTRY}
    recorded["rbm"] |= set(rbm.TTL_EVENTS)
    recorded["chatapp"] |= set(chatapp.UNRANKED_STATUSES)
    default = HCL["variable"]["receipt_statuses"]["default"]
    assert {provider: set(statuses) for provider, statuses in default.items()} == recorded
    assert all(len(set(statuses)) == len(statuses) for statuses in default.values())


@pytest.mark.parametrize("providers", PROVIDER_MIXES)
def test_receipt_metrics_only_for_the_enabled_providers(providers: tuple[str, ...]) -> None:
    tf = terraform(settings_for(providers))
    metrics = {instance.key for instance in tf.instances("google_logging_metric", "receipts")}
    statuses = HCL["variable"]["receipt_statuses"]["default"]
    recording = {"chatapp" if p == "chatapp-smq" else p for p in providers}  # the queue mode
    assert metrics == {f"{p}-{s}" for p in recording for s in statuses[p]}


def test_the_monitoring_api_is_enabled_and_alerts_go_nowhere_by_default() -> None:
    assert (
        resource("google_project_service", "monitoring")["service"] == "monitoring.googleapis.com"
    )
    tf = terraform(deploy.Settings(project="p"))
    assert tf.instances("google_monitoring_notification_channel", "email") == []
    assert HCL["variable"]["alert_emails"]["default"] == []
