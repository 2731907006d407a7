"""terraform/ through the real Terraform, offline: fmt, validate and plan against the real
google 7.31.0 and archive 2.7.1 schemas, served by tools/terraform's stub providers.

The assertions are on the plan (`terraform show -json`), resolved per instance: the stub
derives IDs, emails and function URLs the way Google does (tools/terraform/derived_values.py),
so a subscription's endpoint is compared with the function's own planned URL, never a literal.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.publisher import PubSubSettings
from shared.adapters.read_receipt_sender import ReadReceiptConfig
from shared.adapters.spool import DrainConfig, Drained
from shared.adapters.store import RecorderConfig
from shared.adapters.webhook import WebhookConfig
from shared.core import records, routing
from shared.core.config import DEFAULT_CHANGES_TOPIC, DEFAULT_TOPICS, Env
from shared.core.polling import Schedule
from shared.core.spool import DEFAULT_MAX_ATTEMPTS
from shared.ops import report
from shared.providers import REGISTRY, chatapp, queue_pullers, rbm
from tools.deploy import gcloud as deploy
from tools.local.stack import LOCAL_SPOOL_DATABASE
from tools.terraform import plan as checks
from tools.terraform import run
from tools.topology import FUNCTIONS, RUNTIME, SUBSCRIPTIONS, load

PIPELINE = load()
EXAMPLE = run.SOURCE / "terraform.tfvars.example"
FUNCTION = "google_cloudfunctions2_function.pipeline"
SECRET_NAMES = {env for fn in PIPELINE["functions"].values() for env in fn["secrets"]}
EXTERNAL_ACCOUNT = "bm-partner@partner-project.iam.gserviceaccount.com"
BASIC_ROLES = {"roles/owner", "roles/editor", "roles/viewer"}
SMQ_QUEUES = (
    '{ChatAppStatus = "Alicom-Queue-1-ChatAppStatus", '
    'ChatAppInbound = "Alicom-Queue-1-ChatAppInbound"}'
)

# One worker of `make test` runs the group: it shares the plans and the wheels cache.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("terraform")]


@dataclass(frozen=True)
class Scenario:
    """Variables on top of the example file, and the switches they leave on."""

    id: str
    variables: dict[str, str] = field(default_factory=dict)
    # The example file's; "chatapp-smq" is Chat App's queue mode (the puller and its job).
    providers: frozenset[str] = frozenset({"rbm"})
    auto_read_receipts: bool = True

    @property
    def functions(self) -> dict[str, dict[str, Any]]:
        """The pipeline's functions this scenario deploys (locals.tf's `deployed_with`)."""
        return {
            name: fn
            for name, fn in PIPELINE["functions"].items()
            if "deployed_with" not in fn or self.providers & set(fn["deployed_with"])
        }


SCENARIOS = [
    Scenario("example"),
    Scenario(
        "chatapp-only",
        {"rbm_enabled": "false", "chatapp_enabled": "true"},
        providers=frozenset({"chatapp"}),
    ),
    Scenario(
        "whatsapp-only",
        {"rbm_enabled": "false", "whatsapp_enabled": "true"},
        providers=frozenset({"whatsapp"}),
    ),
    Scenario(
        "every-provider-manual-read-receipts",
        {
            "business_messages_enabled": "true",
            "chatapp_enabled": "true",
            "whatsapp_enabled": "true",
            "auto_read_receipts": "false",
            "receipt_retention_days": "30",
            "bm_api_service_account_email": EXTERNAL_ACCOUNT,
            "rbm_api_endpoint": "https://europe-rcsbusinessmessaging.googleapis.com",
            "whatsapp_api_endpoint": "https://graph.example.test",
            "whatsapp_api_version": "v99.0",
            "spool_providers": '["bm", "chatapp"]',
            "spool_max_attempts": "7",
            "chatapp_allowed_ips": '["1.2.3.4", "10.0.0.0/8"]',
            "max_instances": "{record-events = 7}",
        },
        providers=frozenset({"bm", "chatapp", "rbm", "whatsapp"}),
        auto_read_receipts=False,
    ),
    # Alerts to e-mail and to an existing channel, every threshold other than its default.
    Scenario(
        "alerts-to-channels-custom-thresholds",
        {
            "alert_emails": '["ops@example.com", "oncall@example.com"]',
            "alert_notification_channels": '["projects/my-project/notificationChannels/123"]',
            "alert_dead_letters": "3",
            "alert_oldest_unacked_seconds": "1234",
            "alert_webhook_auth_failures": "77",
            "alert_webhook_5xx": "4",
            "alert_spool_minutes": "7",
            "alert_drainer_silent_minutes": "13",
            "alert_read_receipt_failures": "2",
        },
    ),
    Scenario(
        "chatapp-queue-mode-without-http-push",
        {"chatapp_smq_queues": SMQ_QUEUES},
        providers=frozenset({"rbm", "chatapp-smq"}),
    ),
    Scenario(  # nothing pushes to the webhook: it is not deployed, nothing is public
        "chatapp-queue-mode-alone",
        {"rbm_enabled": "false", "chatapp_smq_queues": SMQ_QUEUES},
        providers=frozenset({"chatapp-smq"}),
    ),
    Scenario(
        "chatapp-both-modes-international",
        {
            "rbm_enabled": "false",
            "chatapp_enabled": "true",
            "chatapp_smq_queues": SMQ_QUEUES,
            "chatapp_smq_endpoint": "https://1493622401794734.mns.ap-southeast-1.aliyuncs.com",
            "chatapp_smq_token_endpoint": "https://dybaseapi.ap-southeast-1.aliyuncs.com",
            "spool_providers": "[]",  # Chat App on, spooling nothing: no Firestore for the webhook
        },
        providers=frozenset({"chatapp", "chatapp-smq"}),
    ),
    Scenario(  # the change stream's consumers (test_terraform_changes.py)
        "change-stream-push-and-bigquery",
        {
            "changes_push_endpoint": "https://crm.example.com/receipts",
            "analytics_dataset": "receipts",
        },
    ),
    Scenario(
        "change-stream-push-own-audience",
        {
            "changes_push_endpoint": "https://crm.example.com/receipts?source=pipeline",
            "changes_push_audience": "crm-receipts",
        },
    ),
]


# One workspace, and one plan per scenario, for the whole session: a module that imports these
# fixtures gets fixtures of its own (pytest caches per module of definition), yet the same plans.
_WORKSPACES: list[run.Workspace] = []
_PLANS: dict[str, checks.Plan] = {}


@pytest.fixture(scope="session")
def workspace(request: pytest.FixtureRequest) -> run.Workspace:
    if not _WORKSPACES:
        stack = contextlib.ExitStack()
        request.config.add_cleanup(stack.close)  # after every module that shares it
        _WORKSPACES.append(stack.enter_context(run.workspace()))
    return _WORKSPACES[0]


@pytest.fixture(scope="session", params=SCENARIOS, ids=lambda scenario: scenario.id)
def planned(
    request: pytest.FixtureRequest, workspace: run.Workspace
) -> tuple[Scenario, checks.Plan]:
    scenario: Scenario = request.param
    if scenario.id not in _PLANS:
        _, data = workspace.plan([EXAMPLE], scenario.variables, name=scenario.id)
        _PLANS[scenario.id] = checks.Plan(data)
    return scenario, _PLANS[scenario.id]


# fmt and validate


def test_fmt_is_terraform_s_own(tmp_path: Path) -> None:
    command = [run.TERRAFORM, "fmt", "-check", "-recursive"]
    assert (
        subprocess.run(
            [*command, "terraform"], cwd=run.ROOT, capture_output=True, check=False
        ).returncode
        == 0
    )
    shutil.copytree(
        run.SOURCE, tmp_path / "terraform", ignore=shutil.ignore_patterns(".terraform*")
    )
    misaligned = tmp_path / "terraform" / "pubsub.tf"
    misaligned.write_text(
        misaligned.read_text().replace(
            "  ack_deadline_seconds       =", "  ack_deadline_seconds =", 1
        )
    )
    result = subprocess.run(
        [*command, "terraform"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stdout.strip()) == (3, "terraform/pubsub.tf")


def test_the_configuration_is_valid(workspace: run.Workspace) -> None:
    validation = workspace.validation()
    assert (validation["valid"], validation["diagnostics"]) == (True, [])
    assert "Success! The configuration is valid." in workspace.validate().stdout


def _block_span(text: str, name: str) -> tuple[int, int]:
    """Start of the line opening the first `name {` block, and the end of its closing line."""
    opening = re.search(rf"^[ \t]*{name} \{{\n", text, re.MULTILINE)
    assert opening is not None, f"no {name} block to edit"
    depth = 0
    for index in range(opening.end() - 2, len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return opening.start(), text.index("\n", index) + 1
    raise AssertionError(f"unbalanced {name} block")


def misspell(text: str) -> str:
    return text.replace(
        "ack_deadline_seconds       = local", "ack_deadline_secondz       = local", 1
    )


def drop_required(text: str) -> str:
    start, end = _block_span(text, 'resource "google_pubsub_subscription" "dead_letter"')
    block = text[start:end]
    return (
        text[:start]
        + re.sub(r"^\s*topic\s*=.*\n", "", block, count=1, flags=re.MULTILINE)
        + text[end:]
    )


def nest_wrongly(text: str) -> str:
    """The dead-letter policy moved inside the retry policy."""
    start, end = _block_span(text, "dead_letter_policy")
    moved, rest = text[start:end], text[:start] + text[end:]
    inner = _block_span(rest, "retry_policy")[1] - len("  }\n")
    return rest[:inner] + moved + rest[inner:]


def mistype(text: str) -> str:
    return text.replace(
        "ack_deadline_seconds       = 60", 'ack_deadline_seconds       = "a minute"', 1
    )


def bad_enum(text: str) -> str:
    return text.replace(
        'concurrency_mode                  = "OPTIMISTIC"',
        'concurrency_mode                  = "OPTIMISTIK"',
        1,
    )


@pytest.mark.parametrize(
    ("edit", "file", "summary", "detail"),
    [
        pytest.param(
            misspell,
            "pubsub.tf",
            "Unsupported argument",
            'An argument named "ack_deadline_secondz" is not expected here. '
            'Did you mean "ack_deadline_seconds"?',
            id="misspelt-argument",
        ),
        pytest.param(
            drop_required,
            "pubsub.tf",
            "Missing required argument",
            'The argument "topic" is required, but no definition was found.',
            id="missing-required-argument",
        ),
        pytest.param(
            nest_wrongly,
            "pubsub.tf",
            "Unsupported block type",
            'Blocks of type "dead_letter_policy" are not expected here.',
            id="block-nested-wrongly",
        ),
        pytest.param(
            mistype,
            "pubsub.tf",
            "Incorrect attribute value type",
            'Inappropriate value for attribute "ack_deadline_seconds": a number is required.',
            id="mistyped-argument",
        ),
        # Not Terraform's check but the provider's, which the stub emulates from the docs.
        pytest.param(
            bad_enum,
            "firestore.tf",
            'expected concurrency_mode to be one of ["OPTIMISTIC" "PESSIMISTIC" '
            '"OPTIMISTIC_WITH_ENTITY_GROUPS" ""], got OPTIMISTIK',
            "",
            id="undocumented-enum-value",
        ),
    ],
)
def test_a_broken_copy_fails_with_terraform_s_own_error(
    workspace: run.Workspace, edit: Callable[[str], str], file: str, summary: str, detail: str
) -> None:
    broken = workspace.variant(f"broken-{edit.__name__}")
    path = broken.module / file
    original = path.read_text()
    path.write_text(edit(original))
    assert path.read_text() != original, "the edit found nothing to break"
    validation = broken.validation()
    found = [(d["severity"], d["summary"], d["detail"]) for d in validation["diagnostics"]]
    assert (validation["valid"], found) == (False, [("error", summary, detail)])


def test_a_value_known_only_when_planning_is_checked_then(workspace: run.Workspace) -> None:
    """`each.value` is unknown to validate; the plan checks every instance's own value."""
    broken = workspace.variant("broken-ingress")
    functions = broken.module / "functions.tf"
    functions.write_text(functions.read_text().replace('"ALLOW_INTERNAL_ONLY"', '"ALLOW_INTERNAL"'))
    assert broken.validation()["valid"] is True
    with pytest.raises(run.TerraformError) as failed:
        broken.plan([EXAMPLE], name="broken-ingress")
    private = sorted(name for name, fn in SCENARIOS[0].functions.items() if not fn["public"])
    failing = re.findall(
        r'with google_cloudfunctions2_function\.pipeline\["([\w-]+)"\]', failed.value.result.stderr
    )
    assert sorted(failing) == private  # the webhook's ALLOW_ALL is fine
    assert (
        'Error: expected service_config.0.ingress_settings to be one of ["ALLOW_ALL" '
        '"ALLOW_INTERNAL_ONLY" "ALLOW_INTERNAL_AND_GCLB" ""], got ALLOW_INTERNAL'
    ) in failed.value.result.stderr


def test_the_pins_must_be_the_served_schemas(workspace: run.Workspace) -> None:
    variant = workspace.root / "variants" / "other-pin"
    module = run.Workspace.copy(variant, build=False)
    versions = module / "versions.tf"
    versions.write_text(versions.read_text().replace('"7.31.0"', '"7.29.0"'))
    with pytest.raises(run.PinError, match=r"must be pinned to exactly 7\.31\.0"):
        run.Workspace.initialised(variant, workspace.providers, module)


# The plan


def test_the_plan_uses_the_pinned_providers(planned: tuple[Scenario, checks.Plan]) -> None:
    _, plan = planned
    configs = plan.data["configuration"]["provider_config"]
    assert {name: config["version_constraint"] for name, config in configs.items()} == {
        "google": "7.31.0",
        "archive": "2.7.1",
    }


def test_each_push_subscription_calls_its_function(planned: tuple[Scenario, checks.Plan]) -> None:
    _, plan = planned
    expected = {
        f'google_pubsub_subscription.push["{sub}"]': f'{FUNCTION}["{spec["function"]}"]'
        for sub, spec in PIPELINE["subscriptions"].items()
    }
    pushes = [p for p in checks.pushes(plan) if not change_stream_consumer(p.subscription)]
    assert {push.subscription: push.endpoint for push in pushes} == expected
    assert {push.subscription: push.audience for push in pushes} == expected
    assert {push.invoker for push in pushes} == {"google_service_account.push"}


def test_dead_letters_have_a_topic_with_its_own_subscription(
    planned: tuple[Scenario, checks.Plan],
) -> None:
    _, plan = planned
    assert checks.dead_letter_problems(plan) == []
    topics = {t for t in checks.dead_letter_topics(plan) if not change_stream_consumer(t)}
    assert topics == {"google_pubsub_topic.dead_letter"}
    subscription = plan.resources["google_pubsub_subscription.dead_letter"]
    assert plan.owner_of(subscription.get("topic")) == "google_pubsub_topic.dead_letter"


def changes_consumed(plan: checks.Plan) -> bool:
    """Whether a consumer of the change stream is switched on in this plan."""
    return any(change_stream_consumer(address) for address in plan.resources)


def change_stream_consumer(address: str) -> bool:
    """A resource of the change stream's consumers: test_terraform_changes.py asserts on those."""
    return ".changes_" in address or address.startswith("google_bigquery_")


def webhook_deployed(scenario: Scenario) -> bool:
    """Whether a provider that pushes to the webhook is on (not Chat App's queue mode alone)."""
    return bool(set(PIPELINE["functions"]["webhook"]["deployed_with"]) & scenario.providers)


def test_only_the_webhook_is_public(planned: tuple[Scenario, checks.Plan]) -> None:
    scenario, plan = planned
    (public,) = [name for name, fn in PIPELINE["functions"].items() if fn["public"]]
    pushed_to = webhook_deployed(scenario)
    binding = f'google_cloud_run_v2_service_iam_member.public_webhook["{public}"]'
    expected = [checks.Grant(binding, "roles/run.invoker", "allUsers", f'{FUNCTION}["{public}"]')]
    assert checks.public_grants(plan) == (expected if pushed_to else [])
    assert checks.mentioning(plan, "allUsers") == ([binding] if pushed_to else [])
    assert checks.mentioning(plan, "allAuthenticatedUsers") == []
    assert (f'{FUNCTION}["{public}"]' in plan.resources) == bool(pushed_to)


def test_no_basic_roles(planned: tuple[Scenario, checks.Plan]) -> None:
    _, plan = planned
    assert [g for g in checks.grants(plan) if g.role in BASIC_ROLES] == []
    assert len(checks.grants(plan)) > 20  # the plan does hold the pipeline's grants


def test_secrets_reach_functions_only_through_secret_manager(
    planned: tuple[Scenario, checks.Plan],
) -> None:
    scenario, plan = planned
    enabled = scenario.providers
    expected = {
        f'{FUNCTION}["{name}"]': {
            env: f'google_secret_manager_secret.pipeline["{secret["secret"]}"]'
            for env, secret in fn["secrets"].items()
            if secret["provider"] in enabled
        }
        for name, fn in scenario.functions.items()
    }
    assert checks.plain_secret_problems(plan, SECRET_NAMES) == []
    assert checks.secret_environment(plan) == expected
    # No secret is left over (who may read each: the exact grants, below).
    assert {r.address for r in plan.of_type("google_secret_manager_secret")} == {
        s for secrets in expected.values() for s in secrets.values()
    }


def test_the_switches_reach_the_functions(planned: tuple[Scenario, checks.Plan]) -> None:
    scenario, plan = planned
    read_receipts = plan.resources[f'{FUNCTION}["agent-read-receipts"]']
    environment = read_receipts.get("service_config", 0, "environment_variables")
    assert environment["AUTO_READ_RECEIPTS"] == str(scenario.auto_read_receipts).lower()
    account = read_receipts.get("service_config", 0, "service_account_email")
    own = 'google_service_account.function["agent-read-receipts"]'
    if "bm_api_service_account_email" in scenario.variables:
        assert account == EXTERNAL_ACCOUNT
        assert own not in plan.resources
    else:
        assert plan.owner_of(account) == own
    retention = "receipt_retention_days" in scenario.variables
    assert ('google_firestore_field.receipt_expiry["messages"]' in plan.resources) is retention
    recorder = plan.resources[f'{FUNCTION}["record-events"]'].get(
        "service_config", 0, "environment_variables"
    )
    assert ("RECEIPT_RETENTION_DAYS" in recorder) is retention


# The Terraform variable each optional WhatsApp API setting of the READ function comes from.
WHATSAPP_API_SETTINGS = {
    "WHATSAPP_API_ENDPOINT": "whatsapp_api_endpoint",
    "WHATSAPP_API_VERSION": "whatsapp_api_version",
}


def test_whatsapp_is_served_with_its_switch_and_its_secrets_reach_only_their_readers(
    planned: tuple[Scenario, checks.Plan],
) -> None:
    scenario, plan = planned
    outputs = plan.data["planned_values"]["outputs"]
    whatsapp_secrets = {
        name: f'google_secret_manager_secret.pipeline["{name}"]'
        for name in ("whatsapp-app-secret", "whatsapp-verify-token", "whatsapp-access-token")
    }
    read_receipts = plan.resources[f'{FUNCTION}["agent-read-receipts"]']
    read_environment = read_receipts.get("service_config", 0, "environment_variables")
    if "whatsapp" not in scenario.providers:
        assert outputs["whatsapp_webhook_url"]["value"] is None
        assert not set(whatsapp_secrets.values()) & set(plan.resources)
        assert not [name for name in read_environment if name.startswith("WHATSAPP_")]
        return
    webhook = plan.resources[f'{FUNCTION}["webhook"]']  # deployed for WhatsApp alone too
    uri = webhook.get("service_config", 0, "uri")
    assert outputs["whatsapp_webhook_url"]["value"] == f"{uri}/whatsapp"
    secret_environment = checks.secret_environment(plan)
    assert {
        env: secret
        for env, secret in secret_environment[f'{FUNCTION}["webhook"]'].items()
        if env.startswith("WHATSAPP_")
    } == {
        "WHATSAPP_APP_SECRET": whatsapp_secrets["whatsapp-app-secret"],
        "WHATSAPP_VERIFY_TOKEN": whatsapp_secrets["whatsapp-verify-token"],
    }
    assert secret_environment[f'{FUNCTION}["agent-read-receipts"]'] == {
        "WHATSAPP_ACCESS_TOKEN": whatsapp_secrets["whatsapp-access-token"]
    }
    # The Graph API's endpoint and version only when given: the code's defaults otherwise.
    assert {name: v for name, v in read_environment.items() if name.startswith("WHATSAPP_")} == {
        name: scenario.variables[variable]
        for name, variable in WHATSAPP_API_SETTINGS.items()
        if variable in scenario.variables
    }


def test_each_function_deploys_the_zip_of_its_own_build(
    planned: tuple[Scenario, checks.Plan],
) -> None:
    scenario, plan = planned
    for name in scenario.functions:
        archive = plan.data_sources[f'data.archive_file.source["{name}"]']
        source = plan.resources[f'google_storage_bucket_object.source["{name}"]']
        assert source.get("name") == f"{name}/{archive['output_md5']}.zip"
        storage = plan.resources[f'{FUNCTION}["{name}"]'].get(
            "build_config", 0, "source", 0, "storage_source", 0
        )
        assert storage["object"] == source.get("name")


# The plan against the code: what each function reads, what `make deploy` gives it, where
# the code writes (pipeline.json, functions/, shared/) and the grants it needs, exactly.


# What functions/<name>/main.py reads at start, per function: each raises when short.
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
# Each function's environment: always these, then each optional one when its variable is given.
ENVIRONMENT = {
    "webhook": {"SPOOL_PROVIDERS", "SPOOL_DATABASE", *DEFAULT_TOPICS},
    "record-events": {"CHANGES_TOPIC"},
    "agent-read-receipts": {"AUTO_READ_RECEIPTS", "CHANGES_TOPIC"},
    "drain-spool": {"SPOOL_DATABASE", "SPOOL_MAX_ATTEMPTS", *DEFAULT_TOPICS},
    "pull-queues": {
        "EVENTS_TOPIC",
        "CHATAPP_SMQ_QUEUES",
        "CHATAPP_SMQ_ENDPOINT",
        "CHATAPP_SMQ_TOKEN_ENDPOINT",
    },
}
OPTIONAL_ENVIRONMENT = {
    ("webhook", "CHATAPP_ALLOWED_IPS"): "chatapp_allowed_ips",
    ("record-events", "RECEIPT_RETENTION_DAYS"): "receipt_retention_days",
    ("agent-read-receipts", "RBM_API_ENDPOINT"): "rbm_api_endpoint",
    **{("agent-read-receipts", env): name for env, name in WHATSAPP_API_SETTINGS.items()},
}


def values(plan: checks.Plan) -> dict[str, Any]:
    return {name: variable(plan, name) for name in plan.data["variables"]}


def default(plan: checks.Plan, name: str) -> Any:
    return plan.data["configuration"]["root_module"]["variables"][name].get("default")


def references(plan: checks.Plan, address: str, *path: str | int) -> list[str]:
    """What a resource's argument refers to as configured: the wiring of values that are
    known only after apply (an ID Google assigns)."""
    block = re.sub(r"\[.*\]$", "", address)
    [resource] = [
        r for r in plan.data["configuration"]["root_module"]["resources"] if r["address"] == block
    ]
    expression: Any = resource["expressions"]
    for step in path:
        expression = expression[step]
    found: list[str] = expression["references"]
    return found


def deploy_settings(plan: checks.Plan) -> deploy.Settings:
    """`make deploy`'s settings for the variables this plan was made with (its fields are
    named after them)."""
    given = values(plan)
    queues = sorted(given["chatapp_smq_queues"].items())
    spelt = {  # as `make deploy` takes them: comma-separated
        "project": given["project_id"],
        "chatapp_allowed_ips": tuple(given["chatapp_allowed_ips"]),
        "spool_providers": tuple(given["spool_providers"]),
        "chatapp_smq_queues": ",".join(f"{kind}={queue}" for kind, queue in queues),
    }
    fields = {f.name for f in dataclasses.fields(deploy.Settings)}
    return deploy.Settings(**{name: given[name] for name in fields & set(given)} | spelt)


def test_each_function_starts_with_exactly_the_environment_it_reads(
    planned: tuple[Scenario, checks.Plan],
) -> None:
    """Each planned function's environment and secrets load its configuration, name nothing
    else, and are the ones `make deploy` gives it (tools/deploy/gcloud.py)."""
    scenario, plan = planned
    settings = deploy_settings(plan)
    by_name = {f.name: f for f in FUNCTIONS}
    assert set(plan.instances("google_cloudfunctions2_function", "pipeline")) == set(
        scenario.functions
    )
    assert {f.name for f in FUNCTIONS if settings.deployed(f)} == set(scenario.functions)
    for name, function in plan.instances("google_cloudfunctions2_function", "pipeline").items():
        assert isinstance(name, str)
        environment = function.get("service_config", 0, "environment_variables")
        secret_ids = {
            entry["key"]: entry["secret"]
            for entry in function.get("service_config", 0, "secret_environment_variables")
        }
        CONFIG_LOADERS[name](Env({**environment, **dict.fromkeys(secret_ids, "secret-value")}))
        optional = {
            env
            for (owner, env), variable in OPTIONAL_ENVIRONMENT.items()
            if owner == name and variable in scenario.variables
        }
        assert (
            set(environment) == {"GOOGLE_CLOUD_PROJECT", "THREADS"} | ENVIRONMENT[name] | optional
        )
        assert environment == deploy.environment(by_name[name], settings), name
        assert secret_ids == deploy.secrets(by_name[name], settings), name


def test_each_function_runs_with_its_pipeline_settings(
    planned: tuple[Scenario, checks.Plan],
) -> None:
    """pipeline.json's settings, and the variables' instance counts, reach each function; its
    entry point is in its source with the signature pipeline.json declares."""
    scenario, plan = planned
    given = values(plan)
    accounts = set()
    for function in FUNCTIONS:
        if function.name not in scenario.functions:
            continue
        config = function.settings
        planned_function = plan.resources[f'{FUNCTION}["{function.name}"]']
        build = planned_function.get("build_config", 0)
        assert (build["runtime"], build["entry_point"]) == (RUNTIME, function.target)
        assert references(plan, FUNCTION, "build_config", 0, "docker_repository")[-1] == (
            "google_artifact_registry_repository.functions"
        )
        service = planned_function.get("service_config", 0)
        assert {
            "available_memory": service["available_memory"],
            "available_cpu": service["available_cpu"],
            "timeout_seconds": service["timeout_seconds"],
            "max_instance_request_concurrency": service["max_instance_request_concurrency"],
            "max_instance_count": service["max_instance_count"],
            "min_instance_count": service["min_instance_count"],
            "ingress_settings": service["ingress_settings"],
            "THREADS": service["environment_variables"]["THREADS"],
        } == {
            "available_memory": config["memory"],
            "available_cpu": config["cpu"],
            "timeout_seconds": config["timeout_seconds"],
            "max_instance_request_concurrency": config["concurrency"],
            "max_instance_count": given["max_instances"].get(
                function.name, config["max_instances"]
            ),
            "min_instance_count": given["min_instances"].get(function.name, 0),
            "ingress_settings": "ALLOW_ALL" if config["public"] else "ALLOW_INTERNAL_ONLY",
            "THREADS": str(config["concurrency"]),
        }, function.name
        accounts.add(service["service_account_email"])
        tree = ast.parse((run.ROOT / function.source).read_text())
        [definition] = [
            n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function.target
        ]
        decorator = (
            f"functions_framework.{'http' if function.signature == 'http' else 'cloud_event'}"
        )
        assert decorator in {ast.unparse(d) for d in definition.decorator_list}
    assert len(accounts) == len(scenario.functions)  # an account of its own each
    assert {
        path.name for path in (run.ROOT / "functions").iterdir() if (path / "main.py").exists()
    } == {function.target for function in FUNCTIONS}
    for account in plan.of_type("google_service_account"):
        assert len(account.get("account_id")) <= 30, account.address  # Google's limit


def test_each_push_subscription_waits_retries_and_dead_letters_as_configured(
    planned: tuple[Scenario, checks.Plan],
) -> None:
    _, plan = planned
    assert {s.id for s in SUBSCRIPTIONS} == set(PIPELINE["subscriptions"])  # the local stack's
    subscribers = {name for name, fn in PIPELINE["functions"].items() if fn["trigger"] == "push"}
    assert {s["function"] for s in PIPELINE["subscriptions"].values()} == subscribers
    for key, spec in PIPELINE["subscriptions"].items():
        subscription = plan.resources[f'google_pubsub_subscription.push["{key}"]']
        # For push, the ack deadline is the request's timeout: the function's own.
        timeout = PIPELINE["functions"][spec["function"]]["timeout_seconds"]
        assert subscription.get("ack_deadline_seconds") == timeout
        assert subscription.get("retry_policy") == [
            {"minimum_backoff": "10s", "maximum_backoff": "600s"}
        ]
        assert subscription.get("dead_letter_policy", 0, "max_delivery_attempts") == variable(
            plan, "max_delivery_attempts"
        )
        assert (
            plan.owner_of(subscription.get("topic"))
            == f'google_pubsub_topic.pipeline["{spec["topic"]}"]'
        )


def test_every_topic_the_code_publishes_to_exists(planned: tuple[Scenario, checks.Plan]) -> None:
    scenario, plan = planned
    topics = plan.instances("google_pubsub_topic", "pipeline")
    assert set(topics) == set(PIPELINE["topics"]) == {routing.EVENTS, routing.READABLE, "changes"}
    names = {topic.get("name") for topic in topics.values()}
    assert DEFAULT_CHANGES_TOPIC in names  # the code's default: the stream's topic
    for name in scenario.functions:
        environment = plan.resources[f'{FUNCTION}["{name}"]'].get(
            "service_config", 0, "environment_variables"
        )
        variables = [*DEFAULT_TOPICS, "CHANGES_TOPIC"]
        published = {environment[env] for env in variables if env in environment}
        assert published == {
            f"receipt-pipeline-{t}" for t in PIPELINE["functions"][name]["publishes_to"]
        }
        assert published <= names


def test_the_spool_is_one_database_with_the_code_s_defaults(
    planned: tuple[Scenario, checks.Plan],
) -> None:
    """The webhook spools the enabled providers listed, into the database the drainer drains."""
    scenario, plan = planned
    given = values(plan)
    spool = plan.resources["google_firestore_database.spool"].get("name")
    assert spool == deploy.Settings("p").spool_database == LOCAL_SPOOL_DATABASE
    spooled = ",".join(sorted(set(given["spool_providers"]) & scenario.providers))
    environments = {
        name: plan.resources[f'{FUNCTION}["{name}"]'].get(
            "service_config", 0, "environment_variables"
        )
        for name in scenario.functions
    }
    if "webhook" in environments:
        assert environments["webhook"]["SPOOL_PROVIDERS"] == spooled
        assert environments["webhook"]["SPOOL_DATABASE"] == spool
    assert environments["drain-spool"]["SPOOL_DATABASE"] == spool
    assert environments["drain-spool"]["SPOOL_MAX_ATTEMPTS"] == str(given["spool_max_attempts"])
    assert default(plan, "spool_max_attempts") == DEFAULT_MAX_ATTEMPTS
    assert deploy.Settings("p").spool_max_attempts == DEFAULT_MAX_ATTEMPTS


# Who holds which role on what, as the plan grants it.
PUBLISHER, SECRET_ACCESSOR, FIRESTORE = (
    "roles/pubsub.publisher",
    "roles/secretmanager.secretAccessor",
    "roles/datastore.user",
)
# The secrets the webhook reads per provider (the READ function reads WhatsApp's access token,
# the queue puller Alibaba's AccessKey).
WEBHOOK_SECRETS = {
    "bm": {"bm-signing-key", "bm-client-token"},
    "chatapp": {"chatapp-callback-tokens"},
    "rbm": {"rbm-client-token"},
    "whatsapp": {"whatsapp-app-secret", "whatsapp-verify-token"},
    "chatapp-smq": set(),
}
IAM_MEMBER_TYPES = {
    "google_pubsub_topic_iam_member",
    "google_pubsub_subscription_iam_member",
    "google_secret_manager_secret_iam_member",
    "google_cloud_run_v2_service_iam_member",
    "google_service_account_iam_member",
    "google_storage_bucket_iam_member",
    "google_artifact_registry_repository_iam_member",
    "google_project_iam_member",
    "google_bigquery_table_iam_member",
}


def held(plan: checks.Plan) -> dict[str, set[tuple[str, str]]]:
    """Member -> {(role, what on)}, a condition written after the target."""
    found: dict[str, set[tuple[str, str]]] = {}
    for grant in checks.grants(plan):
        target = grant.target
        if target == "None":  # a repository's name, known after apply: as configured
            target = references(plan, grant.resource, "repository")[-1]
        condition = plan.resources[grant.resource].get("condition", 0, "expression")
        found.setdefault(grant.member, set()).add(
            (grant.role, f"{target}, if {condition}" if condition else target)
        )
    return found


def test_everyone_holds_exactly_these_roles_on_exactly_these_resources(
    planned: tuple[Scenario, checks.Plan],
) -> None:
    scenario, plan = planned
    given = values(plan)
    project = given["project_id"]
    # `_iam_member` adds one member; `_iam_binding`/`_iam_policy` would remove others'.
    assert {r.type for r in plan.resources.values() if "_iam_" in r.type} <= IAM_MEMBER_TYPES

    def topic(key: str) -> str:
        return f'google_pubsub_topic.pipeline["{key}"]'

    def secret(name: str) -> str:
        return f'google_secret_manager_secret.pipeline["{name}"]'

    def database(name: str) -> str:
        return f'{project}, if resource.name == "projects/{project}/databases/{name}"'

    def account(name: str) -> str:
        email = plan.resources[f'{FUNCTION}["{name}"]'].get(
            "service_config", 0, "service_account_email"
        )
        return f"serviceAccount:{email}"

    spool = database(f"{given['name_prefix']}-spool")
    spooling = set(given["spool_providers"]) & scenario.providers
    number = plan.data_sources["data.google_project.this"]["number"]
    push = plan.resources["google_service_account.push"].get("member")
    build = plan.resources["google_service_account.build"].get("member")
    functions = scenario.functions
    expected: dict[str, set[tuple[str, str]]] = {
        build: {
            ("roles/logging.logWriter", project),
            ("roles/artifactregistry.writer", "google_artifact_registry_repository.functions"),
            ("roles/storage.objectViewer", "google_storage_bucket.sources"),
        },
        push: {
            ("roles/run.invoker", f'{FUNCTION}["{n}"]')
            for n, f in functions.items()
            if not f["public"]
        },
        f"serviceAccount:service-{number}@gcp-sa-pubsub.iam.gserviceaccount.com": {
            (PUBLISHER, "google_pubsub_topic.dead_letter"),
            ("roles/iam.serviceAccountTokenCreator", "google_service_account.push"),
            *{
                ("roles/pubsub.subscriber", f'google_pubsub_subscription.push["{s}"]')
                for s in PIPELINE["subscriptions"]
            },
        },
        f"serviceAccount:service-{number}@gcp-sa-cloudscheduler.iam.gserviceaccount.com": {
            ("roles/iam.serviceAccountTokenCreator", "google_service_account.push")
        },
    }
    if "webhook" in functions:
        expected["allUsers"] = {("roles/run.invoker", f'{FUNCTION}["webhook"]')}
        expected[account("webhook")] = {
            (PUBLISHER, topic("events")),
            (PUBLISHER, topic("readable")),
            *{(SECRET_ACCESSOR, secret(s)) for p in scenario.providers for s in WEBHOOK_SECRETS[p]},
            # Firestore only to spool, only in the spool's database, only while a provider spools.
            *([(FIRESTORE, spool)] if spooling else []),
        }
    # Both record changes, and publish them to the change stream.
    expected[account("record-events")] = {
        (FIRESTORE, database("(default)")),
        (PUBLISHER, topic("changes")),
    }
    # The READ function's account: the one registered with the partner, if given.
    expected[account("agent-read-receipts")] = {
        (FIRESTORE, database("(default)")),
        (PUBLISHER, topic("changes")),
        *(
            [(SECRET_ACCESSOR, secret("whatsapp-access-token"))]
            if "whatsapp" in scenario.providers
            else []
        ),
    }
    expected[account("drain-spool")] = {
        (PUBLISHER, topic("events")),
        (PUBLISHER, topic("readable")),
        (FIRESTORE, spool),
    }
    if "pull-queues" in functions:  # it publishes and reads its AccessKey; no Firestore at all
        expected[account("pull-queues")] = {
            (PUBLISHER, topic("events")),
            (SECRET_ACCESSOR, secret("alibaba-access-key-id")),
            (SECRET_ACCESSOR, secret("alibaba-access-key-secret")),
        }
    # The change stream's consumers, each with its switch (test_terraform_changes.py).
    agent = f"serviceAccount:service-{number}@gcp-sa-pubsub.iam.gserviceaccount.com"
    consumers = {
        "push": "google_pubsub_subscription.changes_push[0]",
        "bigquery": "google_pubsub_subscription.changes_bigquery[0]",
    }
    on = {name for name, subscription in consumers.items() if subscription in plan.resources}
    if on:
        expected[agent].add((PUBLISHER, "google_pubsub_topic.changes_dead_letter[0]"))
    expected[agent] |= {("roles/pubsub.subscriber", consumers[name]) for name in on}
    if "push" in on:
        token_creator = (
            "roles/iam.serviceAccountTokenCreator",
            "google_service_account.changes_push[0]",
        )
        expected[agent].add(token_creator)
    if "bigquery" in on:
        expected[agent].add(("roles/bigquery.dataEditor", "google_bigquery_table.changes[0]"))
    assert held(plan) == expected


def test_scheduled_functions_are_called_by_cloud_scheduler_with_the_invoker(
    planned: tuple[Scenario, checks.Plan],
) -> None:
    scenario, plan = planned
    scheduled = {name for name, fn in PIPELINE["functions"].items() if fn["trigger"] == "schedule"}
    assert scheduled == {"drain-spool", "pull-queues"}
    jobs = plan.instances("google_cloud_scheduler_job", "pipeline")
    assert set(jobs) == scheduled & set(scenario.functions)
    invoker = plan.resources["google_service_account.push"].get("email")
    for name, job in jobs.items():
        function = plan.resources[f'{FUNCTION}["{name}"]']
        uri = function.get("service_config", 0, "uri")
        assert job.get("schedule") == PIPELINE["functions"][name]["schedule"]
        assert job.get("http_target", 0, "oidc_token") == [
            {"service_account_email": invoker, "audience": uri}
        ]
        assert job.get("http_target", 0, "uri") == uri
        # The drainer drains in order; the puller runs alone: one instance, one run at once.
        service = function.get("service_config", 0)
        assert (service["max_instance_count"], service["max_instance_request_concurrency"]) == (
            1,
            1,
        )


def test_required_apis_are_enabled(planned: tuple[Scenario, checks.Plan]) -> None:
    _, plan = planned
    services = {s.get("service") for s in plan.of_type("google_project_service")}
    assert {
        f"{api}.googleapis.com"
        for api in (
            "cloudfunctions",
            "cloudscheduler",
            "run",
            "cloudbuild",
            "artifactregistry",
            "pubsub",
            "firestore",
            "firebaserules",
            "secretmanager",
            "monitoring",
        )
    } <= services


def test_functions_are_built_into_their_own_repository(
    planned: tuple[Scenario, checks.Plan],
) -> None:
    _, plan = planned
    given = values(plan)
    repository = plan.resources["google_artifact_registry_repository.functions"]
    assert (repository.get("format"), repository.get("location")) == ("DOCKER", given["region"])
    assert repository.get("repository_id") == f"{given['name_prefix']}-functions"
    assert deploy_settings(plan).docker_repository == (  # its id, as `make deploy` passes it
        f"projects/{given['project_id']}/locations/{given['region']}/repositories/"
        f"{repository.get('repository_id')}"
    )


def test_no_client_may_read_or_write_any_database(planned: tuple[Scenario, checks.Plan]) -> None:
    """The functions use IAM; security rules govern client SDKs, and deny them everything."""
    _, plan = planned
    ruleset = plan.resources["google_firebaserules_ruleset.deny_all"]
    [rules] = ruleset.get("source", 0, "files")
    code = [
        line.strip() for line in rules["content"].splitlines() if line.strip() and "//" not in line
    ]
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
    releases = plan.instances("google_firebaserules_release", "deny_all")
    spool = plan.resources["google_firestore_database.spool"].get("name")
    assert {key: release.get("name") for key, release in releases.items()} == {
        "main": "cloud.firestore",  # the (default) database's release
        "spool": f"cloud.firestore/{spool}",
    }
    assert "google_firebaserules_ruleset.deny_all.name" in references(
        plan, "google_firebaserules_release.deny_all", "ruleset_name"
    )


def test_no_secret_value_in_terraform_or_the_example(planned: tuple[Scenario, checks.Plan]) -> None:
    _, plan = planned
    assert not [r for r in plan.resources.values() if "secret_data" in r.values]
    assert {
        "BM_SIGNING_KEY",
        "BM_CLIENT_TOKEN",
        "CHATAPP_CALLBACK_TOKENS",
        "RBM_CLIENT_TOKEN",
        "WHATSAPP_APP_SECRET",
        "WHATSAPP_VERIFY_TOKEN",
        "WHATSAPP_ACCESS_TOKEN",
        "ALIBABA_CLOUD_ACCESS_KEY_ID",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    } == SECRET_NAMES
    assert not re.search(r"(?i)(key|token|secret)\s*=", EXAMPLE.read_text())


def test_receipts_expire_on_the_field_the_code_writes(
    planned: tuple[Scenario, checks.Plan],
) -> None:
    """With a retention, a TTL on the messages (which hold their receipts, records.MESSAGES) and
    on the previous layout's `receipts`, without an index on the timestamp."""
    _, plan = planned
    retention = variable(plan, "receipt_retention_days")
    fields = plan.instances("google_firestore_field", "receipt_expiry")
    expected = {records.MESSAGES, "receipts"} if retention > 0 else set()
    assert set(fields) == expected
    for key, expiry in fields.items():
        assert (expiry.get("collection"), expiry.get("field")) == (key, "expireTime")
        assert expiry.get("ttl_config")
        assert expiry.get("index_config") == [{"indexes": []}]


def test_the_report_query_has_its_collection_group_indexes(
    planned: tuple[Scenario, checks.Plan],
) -> None:
    _, plan = planned
    field = plan.resources["google_firestore_field.message_first_time"]
    assert (field.get("collection"), field.get("field")) == (records.MESSAGES, report.RANGE_FIELD)
    scopes = {(i["query_scope"], i["order"]) for i in field.get("index_config", 0, "indexes")}
    assert ("COLLECTION_GROUP", "ASCENDING") in scopes
    assert ("COLLECTION", "ASCENDING") in scopes  # the automatic ones stay
    composite = plan.resources["google_firestore_index.messages_by_agent"]
    assert (composite.get("collection"), composite.get("query_scope")) == (
        records.MESSAGES,
        "COLLECTION_GROUP",
    )
    assert [(f["field_path"], f["order"]) for f in composite.get("fields")] == [
        (report.EQUALITY_FIELD, "ASCENDING"),
        (report.RANGE_FIELD, "ASCENDING"),
    ]


def test_the_receipt_statuses_charted_are_those_each_provider_records(
    planned: tuple[Scenario, checks.Plan],
) -> None:
    """One log-based metric per provider and status (monitoring.tf): a status missing from
    `receipt_statuses` would go uncounted on the dashboard."""
    _, plan = planned
    # The statuses on each provider's scale, and those it records without a rank.
    recorded = {provider.name: set(provider.scale.ranks) for provider in REGISTRY}
    recorded["rbm"] |= set(rbm.TTL_EVENTS)
    recorded["chatapp"] |= set(chatapp.UNRANKED_STATUSES)
    statuses = default(plan, "receipt_statuses")
    assert {provider: set(listed) for provider, listed in statuses.items()} == recorded
    assert all(len(set(listed)) == len(listed) for listed in statuses.values())


# Monitoring (terraform/monitoring.tf)

POLICY = "google_monitoring_alert_policy"
UNACKED_AGE = "pubsub.googleapis.com/subscription/oldest_unacked_message_age"
UNDELIVERED = "pubsub.googleapis.com/subscription/num_undelivered_messages"
REQUESTS = "run.googleapis.com/request_count"
# Per log line the metrics read, the dataclass whose fields a `vars(...)` extra logs.
LOGGED_AS_VARS = {"spool drained": Drained}


def variable(plan: checks.Plan, name: str) -> Any:
    """A variable's value in the plan; one given with -var is shown as written (HCL text)."""
    value = plan.data["variables"][name]["value"]
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return json.loads(value)
    return value


def conditions_on(plan: checks.Plan, metric_type: str) -> list[checks.Condition]:
    return [
        c
        for c in checks.alert_conditions(plan)
        if checks.filter_values(c.filter, "metric.type") == {metric_type}
    ]


def subscription_names(plan: checks.Plan) -> tuple[set[str], set[str]]:
    """The push subscriptions' names, and the dead-letter subscriptions' (a dead-letter topic's)."""
    subscriptions = [
        s
        for s in plan.of_type("google_pubsub_subscription")
        if not change_stream_consumer(s.address)
    ]
    dead_letter_topics = checks.dead_letter_topics(plan)
    push = {s.get("name") for s in subscriptions if s.get("push_config", 0)}
    dead = {
        s.get("name") for s in subscriptions if plan.owner_of(s.get("topic")) in dead_letter_topics
    }
    return push, dead


def services(plan: checks.Plan, public: bool | None = None) -> set[str]:
    """The Cloud Run services the functions run as (a 2nd gen function's own name)."""
    return {
        f.get("name")
        for f in plan.of_type("google_cloudfunctions2_function")
        if public is None
        or (f.get("service_config", 0, "ingress_settings") == "ALLOW_ALL") is public
    }


def test_every_push_subscription_has_a_backlog_age_condition(
    planned: tuple[Scenario, checks.Plan],
) -> None:
    _, plan = planned
    push, dead_letter = subscription_names(plan)
    assert push == {f"receipt-pipeline-{sub}" for sub in PIPELINE["subscriptions"]}
    [age] = [c for c in conditions_on(plan, UNACKED_AGE) if not change_stream_consumer(c.policy)]
    assert checks.filter_values(age.filter, "resource.type") == {"pubsub_subscription"}
    assert checks.filter_values(age.filter, "resource.label.subscription_id") == push
    # No cross-series reducer: each subscription is its own series, and its own incident.
    assert [a.get("cross_series_reducer") for a in age.aggregations] == [None]
    assert (age.values["comparison"], age.values["threshold_value"]) == (
        "COMPARISON_GT",
        variable(plan, "alert_oldest_unacked_seconds"),
    )
    assert not dead_letter & push  # dead letters wait by design: their own condition


def test_every_dead_letter_subscription_has_a_dead_letter_condition(
    planned: tuple[Scenario, checks.Plan],
) -> None:
    _, plan = planned
    push, dead_letter = subscription_names(plan)
    assert dead_letter == {"receipt-pipeline-dead-letter"}
    assert not push & dead_letter
    pipeline = [c for c in conditions_on(plan, UNDELIVERED) if not change_stream_consumer(c.policy)]
    waiting = {
        c.policy: checks.filter_values(c.filter, "resource.label.subscription_id") for c in pipeline
    }
    assert waiting == {f"{POLICY}.dead_letters": dead_letter}
    [condition] = pipeline
    assert (condition.values["comparison"], condition.values["threshold_value"]) == (
        "COMPARISON_GT",
        variable(plan, "alert_dead_letters"),
    )


def test_the_webhook_s_refusals_are_cloud_run_s_own_count(
    planned: tuple[Scenario, checks.Plan],
) -> None:
    """401/403 and 5xx from request_count: the refusal log lines are rate-limited."""
    scenario, plan = planned
    if not webhook_deployed(scenario):
        assert conditions_on(plan, REQUESTS) == []  # no webhook, nothing to watch
        return
    found = {}
    for condition in conditions_on(plan, REQUESTS):
        assert checks.filter_values(condition.filter, "resource.type") == {"cloud_run_revision"}
        assert checks.filter_values(condition.filter, "resource.label.service_name") == services(
            plan, public=True
        )
        [aggregation] = condition.aggregations
        assert (aggregation["alignment_period"], aggregation["cross_series_reducer"]) == (
            "300s",
            "REDUCE_SUM",
        )
        codes = checks.filter_values(condition.filter, "metric.label.response_code")
        classes = checks.filter_values(condition.filter, "metric.label.response_code_class")
        found[condition.policy] = (codes, classes, condition.values["threshold_value"])
    assert found == {
        f'{POLICY}.webhook["auth_failures"]': (
            {"401", "403"},
            set(),
            variable(plan, "alert_webhook_auth_failures"),
        ),
        f'{POLICY}.webhook["5xx"]': (set(), {"5xx"}, variable(plan, "alert_webhook_5xx")),
    }
    assert services(plan, public=True) == {"receipt-pipeline-webhook"}


def test_the_log_based_conditions_and_their_thresholds(
    planned: tuple[Scenario, checks.Plan],
) -> None:
    scenario, plan = planned
    metrics = checks.log_metric_types(plan)
    on_logs = {}
    for condition in checks.alert_conditions(plan):
        [metric_type] = checks.filter_values(condition.filter, "metric.type")
        if metric_type in metrics:
            on_logs[(condition.policy, condition.kind, metrics[metric_type])] = (
                condition.values.get("threshold_value"),
                condition.values["duration"],
                checks.filter_values(condition.filter, "metric.label.state"),
            )
    assert on_logs == {
        (f"{POLICY}.spool", "condition_threshold", "google_logging_metric.spool_not_empty"): (
            0,
            f"{variable(plan, 'alert_spool_minutes') * 60}s",
            set(),
        ),
        (f"{POLICY}.spool", "condition_absent", "google_logging_metric.spool_drains"): (
            None,
            f"{variable(plan, 'alert_drainer_silent_minutes') * 60}s",
            set(),
        ),
        (
            f"{POLICY}.read_receipts_failed",
            "condition_threshold",
            "google_logging_metric.read_receipts",
        ): (variable(plan, "alert_read_receipt_failures"), "0s", {"FAILED"}),
        (
            f"{POLICY}.read_credentials_rejected",
            "condition_threshold",
            "google_logging_metric.read_credentials_rejected",
        ): (0, "0s", set()),
    }
    # The thresholds are the variables': those a scenario sets reach the plan.
    for name, value in scenario.variables.items():
        if name.startswith("alert_") and not value.startswith("["):
            assert variable(plan, name) == int(value), name


def test_every_alert_policy_notifies_the_channels_from_the_variables(
    planned: tuple[Scenario, checks.Plan],
) -> None:
    scenario, plan = planned
    emails, existing = variable(plan, "alert_emails"), variable(plan, "alert_notification_channels")
    channels = plan.of_type("google_monitoring_notification_channel")
    assert sorted((c.get("type"), c.get("labels")["email_address"]) for c in channels) == sorted(
        ("email", email) for email in emails
    )
    policies = plan.of_type(POLICY)
    assert {p.address for p in policies} == {
        f"{POLICY}.{name}"
        for name in (
            "dead_letters",
            "backlog_age",
            *(['webhook["auth_failures"]', 'webhook["5xx"]'] if webhook_deployed(scenario) else []),
            "spool",
            "read_receipts_failed",
            "read_credentials_rejected",
            # With a consumer of the change stream (test_terraform_changes.py).
            *(["changes_undelivered[0]"] if changes_consumed(plan) else []),
        )
    }
    for policy in policies:
        # The existing channels by name, then each created one's (Google's id: known after apply).
        assert policy.get("notification_channels") == [*existing, *[checks.UNKNOWN] * len(emails)]
        assert policy.get("enabled") in (None, True)


def test_every_alert_policy_says_what_it_means_and_what_to_do(
    planned: tuple[Scenario, checks.Plan],
) -> None:
    """Each policy's documentation gives the commands, spelt for this deployment."""
    _, plan = planned
    replay = plan.data["planned_values"]["outputs"]["replay_command"]["value"]
    _, dead_letter = subscription_names(plan)
    assert f"DEAD_LETTER_SUBSCRIPTION={dead_letter.pop()} " in replay
    spool = plan.resources["google_firestore_database.spool"].get("name")
    assert f"SPOOL_DATABASE={spool} " in replay
    for key, topic in plan.instances("google_pubsub_topic", "pipeline").items():
        assert f"{str(key).upper()}_TOPIC={topic.get('name')} " in replay
    secrets = [s.get("secret_id") for s in plan.of_type("google_secret_manager_secret")]
    commands = {
        "dead_letters": [f"{replay} ARGS=list", f'{replay} ARGS="redrive dead-letters"'],
        "backlog_age": ["max_instances"],
        'webhook["auth_failures"]': [
            "refused a request",
            "make secrets PROJECT=my-project NAME_PREFIX=receipt-pipeline SECRET=NAME",
            *(f"`{s.removeprefix('receipt-pipeline-')}`" for s in secrets),
        ],
        'webhook["5xx"]': ["event not acknowledged"],
        "spool": [f'{replay} ARGS="redrive spool"', "spool drained"],
        "read_receipts_failed": ["agent READ receipt settled", "terraform output service_accounts"],
        "read_credentials_rejected": [
            "make secrets PROJECT=my-project NAME_PREFIX=receipt-pipeline"
            " SECRET=whatsapp-access-token",
            "make deploy PROJECT=my-project REGION=europe-west1",
            "New instances read the latest version",
            'jsonPayload.message="agent READ receipt settled"'
            " AND jsonPayload.credentialsRejected=true",
            "agentReadReceipt.error",
            "error 190",
            "HTTP 401",
        ],
        "changes_undelivered[0]": [
            "gcloud pubsub subscriptions pull receipt-pipeline-changes-dead-letter",
            "docs/change-stream-consumers.md",
        ],
    }
    for policy in plan.of_type(POLICY):
        [documentation] = policy.get("documentation")
        assert documentation["mime_type"] == "text/markdown"
        assert documentation["subject"]
        for text in commands[policy.address.removeprefix(f"{POLICY}.")]:
            assert text in documentation["content"], (policy.address, text)


def _logged(source: Path) -> dict[str, set[str]]:
    """Each message a module logs (a literal first argument), with the fields it logs (a dict
    literal as `extra`, or a name the module assigned one to)."""
    tree = ast.parse(source.read_text())
    named = {
        target.id: node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    found: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("debug", "info", "warning", "error", "exception", "critical")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            continue
        message = node.args[0].value
        fields = {"message"}
        for keyword in node.keywords:
            extra = keyword.value
            if keyword.arg == "extra" and isinstance(extra, ast.Name) and extra.id in named:
                extra = named[extra.id]
            if keyword.arg == "extra" and isinstance(extra, ast.Dict):
                fields |= {
                    k.value
                    for k in extra.keys
                    if isinstance(k, ast.Constant) and isinstance(k.value, str)
                }
            elif keyword.arg == "extra" and message in LOGGED_AS_VARS:
                fields |= {f.name for f in dataclasses.fields(LOGGED_AS_VARS[message])}
        found[message] = found.get(message, set()) | fields
    return found


def test_the_log_based_metrics_read_the_lines_the_code_writes(
    planned: tuple[Scenario, checks.Plan],
) -> None:
    """Each metric's message and fields are read from functions/*/main.py: a renamed line fails."""
    _, plan = planned
    logged: dict[str, set[str]] = {}
    for function in PIPELINE["functions"].values():
        for message, fields in _logged(
            run.ROOT / "functions" / function["entry_point"] / "main.py"
        ).items():
            logged[message] = logged.get(message, set()) | fields
    metrics = plan.of_type("google_logging_metric")
    assert {m.name for m in metrics} == {
        "receipts",
        "read_receipts",
        "read_credentials_rejected",
        "spool_drains",
        "spool_not_empty",
    }
    for metric in metrics:
        text = " ".join(
            [
                metric.get("filter"),
                metric.get("value_extractor") or "",
                *(metric.get("label_extractors") or {}).values(),
            ]
        )
        [message] = checks.filter_values(metric.get("filter"), "jsonPayload.message")
        assert message in logged, (metric.address, message)
        assert set(re.findall(r"jsonPayload\.(\w+)", text)) <= logged[message], metric.address
        # Logs of this deployment's functions only, as Cloud Run writes them.
        assert checks.filter_values(metric.get("filter"), "resource.type") == {"cloud_run_revision"}
        assert checks.filter_values(
            metric.get("filter"), "resource.labels.service_name"
        ) == services(plan)
    assert "remaining" in logged["spool drained"]  # what spool_not_empty selects on


def test_a_rejected_read_credential_alerts_at_once_per_provider(
    planned: tuple[Scenario, checks.Plan],
) -> None:
    """Any READ line saying the API refused the credential (WhatsApp's 190, a 401) alerts."""
    _, plan = planned
    metric = plan.resources["google_logging_metric.read_credentials_rejected"]
    text = metric.get("filter")
    assert checks.filter_values(text, "jsonPayload.message") == {"agent READ receipt settled"}
    assert "jsonPayload.credentialsRejected=true" in text.split(" AND ")
    assert metric.get("label_extractors") == {"provider": "EXTRACT(jsonPayload.provider)"}
    assert metric.get("metric_descriptor", 0, "value_type") == "INT64"
    [condition] = [
        c
        for c in checks.alert_conditions(plan)
        if c.policy == f"{POLICY}.read_credentials_rejected"
    ]
    [metric_type] = checks.filter_values(condition.filter, "metric.type")
    assert checks.log_metric_types(plan)[metric_type] == metric.address
    assert (condition.values["comparison"], condition.values["threshold_value"]) == (
        "COMPARISON_GT",
        0,
    )
    [aggregation] = condition.aggregations
    assert (
        aggregation["alignment_period"],
        aggregation["per_series_aligner"],
        aggregation["cross_series_reducer"],
        aggregation["group_by_fields"],
    ) == ("300s", "ALIGN_SUM", "REDUCE_SUM", ["metric.label.provider"])
    policy = plan.resources[f"{POLICY}.read_credentials_rejected"]
    assert policy.get("severity") == "ERROR"
    assert policy.get("display_name") == "receipt-pipeline: agent READ credentials rejected"


def test_receipts_per_minute_by_provider_and_status(planned: tuple[Scenario, checks.Plan]) -> None:
    """One metric per enabled provider and status, each charted with its labels."""
    scenario, plan = planned
    statuses = variable(plan, "receipt_statuses")
    recording = {"chatapp" if p == "chatapp-smq" else p for p in scenario.providers}
    expected = {(p, s) for p in recording for s in statuses[p]}
    found = {}
    for metric in plan.instances("google_logging_metric", "receipts").values():
        [provider] = checks.filter_values(metric.get("filter"), "jsonPayload.provider")
        status = metric.get("value_extractor").removeprefix("EXTRACT(jsonPayload.receiptStatuses.")
        status = status.removesuffix(")")
        assert f"jsonPayload.receiptStatuses.{status}:*" in metric.get("filter")
        assert metric.get("metric_descriptor", 0, "value_type") == "DISTRIBUTION"
        found[(provider, status)] = metric.get("name")
    assert set(found) == expected
    [query] = [
        d["timeSeriesQuery"]["prometheusQuery"]
        for w in checks.dashboard(plan, "google_monitoring_dashboard.pipeline")["gridLayout"][
            "widgets"
        ]
        if w["title"] == "Receipts per minute by provider and status"
        for d in w["xyChart"]["dataSets"]
    ]
    terms = query.split(" or ")
    assert len(terms) == len(expected)
    for (provider, status), name in found.items():
        promql = "logging_googleapis_com:user_" + name.replace("-", "_") + "_sum"
        [term] = [t for t in terms if f"{promql}{{" in t]
        assert f'"provider", "{provider}"' in term
        assert f'"status", "{status}"' in term


def test_the_dashboard_charts_every_subscription_and_function(
    planned: tuple[Scenario, checks.Plan],
) -> None:
    scenario, plan = planned
    push, dead_letter = subscription_names(plan)
    widgets = checks.dashboard(plan, "google_monitoring_dashboard.pipeline")["gridLayout"][
        "widgets"
    ]
    filters = {
        w["title"]: [
            d["timeSeriesQuery"]["timeSeriesFilter"]["filter"]
            for d in w["xyChart"]["dataSets"]
            if "timeSeriesFilter" in d["timeSeriesQuery"]
        ]
        for w in widgets
    }
    webhook_charts = {
        "Webhook acknowledgement latency (ms)",
        "Webhook answers per minute by status code",
    }
    assert set(filters) == (webhook_charts if webhook_deployed(scenario) else set()) | {
        "Receipts per minute by provider and status",
        "Acknowledgement latency p99 by function (ms)",
        "Backlog: undelivered messages by subscription",
        "Oldest unacknowledged message by push subscription (s)",
        "Dead letters waiting",
        "Agent READ receipts per minute by state and provider",
        "Agent READ receipts refused for their credentials per minute by provider",
        "Spool: drain runs per minute, and those ending with events left",
    }

    def values(title: str, field: str) -> list[set[str]]:
        return [checks.filter_values(f, field) for f in filters[title]]

    subscription = "resource.label.subscription_id"
    assert values("Backlog: undelivered messages by subscription", subscription) == [
        push | dead_letter
    ]
    assert values("Oldest unacknowledged message by push subscription (s)", subscription) == [push]
    assert values("Dead letters waiting", subscription) == [dead_letter]
    service = "resource.label.service_name"
    if webhook_deployed(scenario):
        latency = values("Webhook acknowledgement latency (ms)", service)
        assert latency == [services(plan, public=True)] * 3
    assert values(
        "Acknowledgement latency p99 by function (ms)",
        service,
    ) == [services(plan)]
    log_metrics = checks.log_metric_types(plan)
    for title in (
        "Agent READ receipts per minute by state and provider",
        "Agent READ receipts refused for their credentials per minute by provider",
        "Spool: drain runs per minute, and those ending with events left",
    ):
        for metric_types in values(title, "metric.type"):
            assert metric_types <= set(log_metrics), title


def test_a_new_subscription_is_monitored_without_editing_monitoring_tf(
    workspace: run.Workspace,
) -> None:
    """monitoring.tf reads pipeline.json: a subscription added there is watched and charted."""
    variant = workspace.variant("another-subscription")
    (variant.root / "build").symlink_to(workspace.root / "build")  # the bundles, as built
    topology = variant.module / "pipeline.json"
    pipeline = json.loads(topology.read_text())
    pipeline["subscriptions"]["record-events-again"] = {
        "topic": "events",
        "function": "record-events",
    }
    topology.write_text(json.dumps(pipeline))
    _, data = variant.plan([EXAMPLE], name="another-subscription")
    plan = checks.Plan(data)
    push, _ = subscription_names(plan)
    assert "receipt-pipeline-record-events-again" in push
    [age] = conditions_on(plan, UNACKED_AGE)
    assert checks.filter_values(age.filter, "resource.label.subscription_id") == push
    widgets = checks.dashboard(plan, "google_monitoring_dashboard.pipeline")["gridLayout"][
        "widgets"
    ]
    [backlog] = [w for w in widgets if w["title"].startswith("Backlog")]
    [series] = backlog["xyChart"]["dataSets"]
    backlog_filter = series["timeSeriesQuery"]["timeSeriesFilter"]["filter"]
    assert push < checks.filter_values(backlog_filter, "resource.label.subscription_id")


def test_the_queue_puller_is_planned_with_its_switch_only(
    planned: tuple[Scenario, checks.Plan],
) -> None:
    scenario, plan = planned
    puller = f'{FUNCTION}["pull-queues"]'
    job = 'google_cloud_scheduler_job.pipeline["pull-queues"]'
    secrets = {
        f'google_secret_manager_secret.pipeline["{name}"]'
        for name in ("alibaba-access-key-id", "alibaba-access-key-secret")
    }
    planned_here = set(plan.resources)
    if "chatapp-smq" not in scenario.providers:
        assert not ({puller, job} | secrets) & planned_here
        return
    assert {puller, job} | secrets <= planned_here
    environment = plan.resources[puller].get("service_config", 0, "environment_variables")
    assert environment["CHATAPP_SMQ_QUEUES"] == (
        "ChatAppInbound=Alicom-Queue-1-ChatAppInbound,ChatAppStatus=Alicom-Queue-1-ChatAppStatus"
    )
    endpoints = {
        "CHATAPP_SMQ_ENDPOINT": "chatapp_smq_endpoint",
        "CHATAPP_SMQ_TOKEN_ENDPOINT": "chatapp_smq_token_endpoint",
    }
    defaults = {  # the code's own, unless given
        "CHATAPP_SMQ_ENDPOINT": chatapp.SMQ_ENDPOINT,
        "CHATAPP_SMQ_TOKEN_ENDPOINT": chatapp.SMQ_TOKEN_ENDPOINT,
    }
    for variable, terraform_variable in endpoints.items():
        given = scenario.variables.get(terraform_variable)
        assert environment[variable] == (given or defaults[variable])
    scheduled = plan.resources[job]
    # Every minute, the period each run polls for by default.
    assert scheduled.get("schedule") == "* * * * *"
    assert Schedule.from_env(Env({})).period == 60
    uri = plan.resources[puller].get("service_config", 0, "uri")
    assert scheduled.get("http_target", 0, "uri") == uri


# The stub providers' processes


def _gone(pid: int) -> bool:
    """Exited (a zombie left to a parent that does not reap counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def _wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:g}s")
        time.sleep(0.05)


def _archive_only(workspace: run.Workspace) -> dict[str, Path]:
    return {a: p for a, p in workspace.providers.schemas.items() if a.endswith("/archive")}


def test_providers_are_stopped_by_their_process_ids(
    workspace: run.Workspace, tmp_path: Path
) -> None:
    with run.StubProviders(_archive_only(workspace), tmp_path, cwd=tmp_path) as providers:
        pids = providers.pids
        assert pids
        assert not any(_gone(pid) for pid in pids)
    assert all(_gone(pid) for pid in pids)
    assert all(not _gone(pid) for pid in workspace.providers.pids)  # the others run on


def test_providers_stop_when_their_starter_is_killed(
    workspace: run.Workspace, tmp_path: Path
) -> None:
    starter = (
        "import json, sys, time\n"
        "from pathlib import Path\n"
        "from tools.terraform.run import StubProviders\n"
        f"schemas = {json.dumps({a: str(p) for a, p in _archive_only(workspace).items()})}\n"
        f"here = Path({str(tmp_path)!r})\n"
        "providers = StubProviders({a: Path(p) for a, p in schemas.items()}, here, cwd=here)\n"
        "providers.start()\n"
        "print(json.dumps(providers.pids), flush=True)\n"
        "time.sleep(300)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", starter],
        cwd=run.ROOT,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(run.ROOT)},
    )
    pids: list[int] = []
    try:
        assert process.stdout is not None
        pids = json.loads(run.read_line(process.stdout, run.START_TIMEOUT))
        os.kill(process.pid, signal.SIGKILL)  # no finally, no atexit: only the pipe closes
        process.wait(10)
        _wait_until(lambda: all(_gone(pid) for pid in pids), 20, "the orphaned providers to exit")
    finally:  # whatever failed, leave no process of this test behind
        if process.poll() is None:
            process.kill()
            process.wait(10)
        for pid in pids:
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)
        if process.stdout:
            process.stdout.close()
