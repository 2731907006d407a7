"""terraform/ against the code: parsed with python-hcl2, since no terraform binary runs here.

checkov runs in `make lint`; these tests check what a static analyser cannot know: that
what Terraform deploys is what the code needs.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Callable, Iterator
from typing import Any

import hcl2
import pytest

from shared.adapters.publisher import PubSubSettings
from shared.adapters.read_receipt_sender import ReadReceiptConfig
from shared.adapters.spool import DrainConfig
from shared.adapters.store import RecorderConfig
from shared.adapters.webhook import WebhookConfig
from shared.core import routing
from shared.core.config import DEFAULT_TOPICS, Env
from shared.core.polling import Schedule
from shared.ops import report
from shared.providers import REGISTRY, chatapp, queue_pullers
from tools.deploy import gcloud as deploy
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
SMQ_QUEUES = (
    "ChatAppStatus=Alicom-Queue-1-ChatAppStatus,ChatAppInbound=Alicom-Queue-1-ChatAppInbound"
)


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


@pytest.mark.parametrize(
    "providers",
    # The queue mode with no Chat App HTTP push token; and both Chat App modes together.
    [("bm",), ("chatapp",), ("bm", "chatapp"), ("bm", "chatapp-smq"), ("chatapp", "chatapp-smq")],
)
@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.name)
def test_each_function_starts_with_exactly_what_terraform_gives_it(
    function: Any, providers: tuple[str, ...]
) -> None:
    settings = deploy.Settings(
        project="p",
        business_messages_enabled="bm" in providers,
        chatapp_enabled="chatapp" in providers,
        chatapp_smq_queues=SMQ_QUEUES if "chatapp-smq" in providers else "",
    )
    if not settings.deployed(function):
        assert function.settings["deployed_with"]  # off with its switch, as locals.tf has it
        return
    environment = deploy.environment(function, settings)
    secret_values = dict.fromkeys(deploy.secrets(function, settings), "secret-value")
    CONFIG_LOADERS[function.name](Env({**environment, **secret_values}))  # raises if short


def test_terraform_computes_the_environment_the_deploy_tool_does() -> None:
    """locals.tf and tools/deploy/gcloud.py build the same variables (tests above use that)."""
    locals_ = HCL["locals"]
    functions, extra = locals_["functions"], locals_["extra_env"]
    for name in ("GOOGLE_CLOUD_PROJECT", "THREADS", "_TOPIC"):
        assert name in str(functions)
    assert "CHATAPP_ALLOWED_IPS" in str(extra["webhook"])
    assert "SPOOL_PROVIDERS" in str(extra["webhook"])
    assert "RECEIPT_RETENTION_DAYS" in str(extra["record-events"])
    assert "AUTO_READ_RECEIPTS" in str(extra["agent-read-receipts"])
    for name in ("CHATAPP_SMQ_QUEUES", "CHATAPP_SMQ_ENDPOINT", "CHATAPP_SMQ_TOKEN_ENDPOINT"):
        assert name in str(extra["pull-queues"])
    full = deploy.Settings(
        project="p",
        chatapp_allowed_ips=("1.2.3.4",),
        receipt_retention_days=30,
        chatapp_enabled=True,
        chatapp_smq_queues=SMQ_QUEUES,
    )
    keys = {f.name: set(deploy.environment(f, full)) for f in FUNCTIONS}
    assert keys == {
        "webhook": {
            "GOOGLE_CLOUD_PROJECT",
            "THREADS",
            *DEFAULT_TOPICS,
            "SPOOL_PROVIDERS",
            "CHATAPP_ALLOWED_IPS",
        },
        "record-events": {"GOOGLE_CLOUD_PROJECT", "THREADS", "RECEIPT_RETENTION_DAYS"},
        "agent-read-receipts": {"GOOGLE_CLOUD_PROJECT", "THREADS", "AUTO_READ_RECEIPTS"},
        "drain-spool": {"GOOGLE_CLOUD_PROJECT", "THREADS", *DEFAULT_TOPICS},
        "pull-queues": {
            "GOOGLE_CLOUD_PROJECT",
            "THREADS",
            "EVENTS_TOPIC",
            "CHATAPP_SMQ_QUEUES",
            "CHATAPP_SMQ_ENDPOINT",
            "CHATAPP_SMQ_TOKEN_ENDPOINT",
        },
    }


def test_the_queue_modes_defaults_and_switch_are_the_codes() -> None:
    variables = HCL["variable"]
    assert variables["chatapp_smq_endpoint"]["default"] == chatapp.SMQ_ENDPOINT
    assert variables["chatapp_smq_token_endpoint"]["default"] == chatapp.SMQ_TOKEN_ENDPOINT
    assert variables["chatapp_smq_queues"]["default"] == {}
    assert '"chatapp-smq"' in str(HCL["locals"]["enabled_providers"])
    assert "deployed_with" in str(HCL["locals"]["deployed"])
    assert PIPELINE["functions"]["pull-queues"]["deployed_with"] == ["chatapp-smq"]
    # The scheduler runs the puller every minute, the period each run polls for by default.
    assert PIPELINE["functions"]["pull-queues"]["schedule"] == "* * * * *"
    assert Schedule.from_env(Env({})).period == 60


def test_concurrency_and_threads_match() -> None:
    for function in FUNCTIONS:
        settings = deploy.Settings(project="p")
        threads = deploy.environment(function, settings)["THREADS"]
        assert threads == str(function.settings["concurrency"])
        assert f"--concurrency={threads}" in deploy.command(function, settings)


# --- Pub/Sub --------------------------------------------------------------------------


def test_every_topic_the_code_publishes_to_exists() -> None:
    assert set(PIPELINE["topics"]) == {routing.EVENTS, routing.READABLE}
    topics = resource("google_pubsub_topic", "pipeline")
    assert topics["for_each"] == "${local.pipeline.topics}"
    assert topics["name"] == "${var.name_prefix}-${each.key}"
    webhook = PIPELINE["functions"]["webhook"]
    assert set(webhook["publishes_to"]) == set(PIPELINE["topics"])
    # The variables the webhook reads name exactly those topics.
    env = deploy.environment(
        next(f for f in FUNCTIONS if f.name == "webhook"), deploy.Settings("p")
    )
    assert {env[name] for name in DEFAULT_TOPICS} == {
        f"receipt-pipeline-{t}" for t in PIPELINE["topics"]
    }


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
    assert '["webhook"]' in webhook["name"]
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
        "agent-read-receipts": set(),
        "drain-spool": set(),
        "pull-queues": {"ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET"},
    }
    firestore = resource("google_project_iam_member", "firestore_user")
    assert firestore["role"] == "roles/datastore.user"
    assert "databases/(default)" in firestore["condition"][0]["expression"]


def test_no_secret_value_in_terraform_or_the_repo() -> None:
    assert "google_secret_manager_secret_version" not in HCL["resource"]
    assert not list(all_attributes(HCL["resource"], "secret_data"))
    secret_names = {env for f in PIPELINE["functions"].values() for env in f["secrets"]}
    assert secret_names == {
        "BM_SIGNING_KEY",
        "BM_CLIENT_TOKEN",
        "CHATAPP_CALLBACK_TOKENS",
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
    assert (ttl["collection"], ttl["field"]) == ("receipts", "expireTime")
    assert "ttl_config" in ttl
    assert "index_config" in ttl
    assert "var.receipt_retention_days > 0" in ttl["count"]


def test_the_report_query_has_its_collection_group_indexes() -> None:
    field = resource("google_firestore_field", "message_first_time")
    assert (field["collection"], field["field"]) == (report.MESSAGES, report.RANGE_FIELD)
    indexes = field["index_config"][0]["indexes"]
    scopes = {(index["query_scope"], index["order"]) for index in indexes}
    assert ("COLLECTION_GROUP", "ASCENDING") in scopes
    assert ("COLLECTION", "ASCENDING") in scopes  # the automatic ones stay
    composite = resource("google_firestore_index", "messages_by_agent")
    assert (composite["collection"], composite["query_scope"]) == (
        report.MESSAGES,
        "COLLECTION_GROUP",
    )
    fields = [(f["field_path"], f["order"]) for f in composite["fields"]]
    assert fields == [(report.EQUALITY_FIELD, "ASCENDING"), (report.RANGE_FIELD, "ASCENDING")]
