"""terraform/ through the real Terraform, offline: fmt, validate and plan against the real
google 7.31.0 and archive 2.7.1 schemas, served by tools/terraform's stub providers.

The assertions are on the plan (`terraform show -json`), resolved per instance: the stub
derives IDs, emails and function URLs the way Google does (tools/terraform/known.py), so a
subscription's endpoint is compared with the function's own planned URL, never a literal.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tools.terraform import plan as checks
from tools.terraform import run
from tools.topology import load

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

pytestmark = pytest.mark.integration


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
        "every-provider-manual-read-receipts",
        {
            "business_messages_enabled": "true",
            "chatapp_enabled": "true",
            "auto_read_receipts": "false",
            "receipt_retention_days": "30",
            "bm_api_service_account_email": EXTERNAL_ACCOUNT,
            "rbm_api_endpoint": "https://europe-rcsbusinessmessaging.googleapis.com",
        },
        providers=frozenset({"bm", "chatapp", "rbm"}),
        auto_read_receipts=False,
    ),
    Scenario(
        "chatapp-queue-mode-without-http-push",
        {"chatapp_smq_queues": SMQ_QUEUES},
        providers=frozenset({"rbm", "chatapp-smq"}),
    ),
    Scenario(
        "chatapp-both-modes-international",
        {
            "rbm_enabled": "false",
            "chatapp_enabled": "true",
            "chatapp_smq_queues": SMQ_QUEUES,
            "chatapp_smq_endpoint": "https://1493622401794734.mns.ap-southeast-1.aliyuncs.com",
            "chatapp_smq_token_endpoint": "https://dybaseapi.ap-southeast-1.aliyuncs.com",
        },
        providers=frozenset({"chatapp", "chatapp-smq"}),
    ),
]


@pytest.fixture(scope="module")
def workspace() -> Iterator[run.Workspace]:
    with run.workspace() as ready:
        yield ready


@pytest.fixture(scope="module", params=SCENARIOS, ids=lambda scenario: scenario.id)
def planned(
    request: pytest.FixtureRequest, workspace: run.Workspace
) -> tuple[Scenario, checks.Plan]:
    scenario: Scenario = request.param
    _, data = workspace.plan([EXAMPLE], scenario.variables, name=scenario.id)
    return scenario, checks.Plan(data)


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
    scenario, plan = planned
    expected = {
        f'google_pubsub_subscription.push["{sub}"]': f'{FUNCTION}["{spec["function"]}"]'
        for sub, spec in PIPELINE["subscriptions"].items()
    }
    pushes = checks.pushes(plan)
    assert {push.subscription: push.endpoint for push in pushes} == expected
    assert {push.subscription: push.audience for push in pushes} == expected
    assert {push.invoker for push in pushes} == {"google_service_account.push"}
    # ...and the invoker may call exactly the private functions.
    invoker = plan.resources["google_service_account.push"].get("member")
    private = {
        f'{FUNCTION}["{name}"]' for name, fn in scenario.functions.items() if not fn["public"]
    }
    assert checks.roles_of(plan, invoker) == {("roles/run.invoker", target) for target in private}


def test_dead_letters_have_a_topic_with_its_own_subscription(
    planned: tuple[Scenario, checks.Plan],
) -> None:
    _, plan = planned
    assert checks.dead_letter_problems(plan) == []
    assert checks.dead_letter_topics(plan) == {"google_pubsub_topic.dead_letter"}
    subscription = plan.resources["google_pubsub_subscription.dead_letter"]
    assert plan.owner_of(subscription.get("topic")) == "google_pubsub_topic.dead_letter"


def test_the_pubsub_service_agent_has_exactly_the_roles_it_needs(
    planned: tuple[Scenario, checks.Plan],
) -> None:
    _, plan = planned
    number = plan.data_sources["data.google_project.this"]["number"]
    agent = f"serviceAccount:service-{number}@gcp-sa-pubsub.iam.gserviceaccount.com"
    assert checks.roles_of(plan, agent) == {
        ("roles/pubsub.publisher", "google_pubsub_topic.dead_letter"),
        *(
            ("roles/pubsub.subscriber", f'google_pubsub_subscription.push["{sub}"]')
            for sub in PIPELINE["subscriptions"]
        ),
        ("roles/iam.serviceAccountTokenCreator", "google_service_account.push"),
    }


def test_only_the_webhook_is_public(planned: tuple[Scenario, checks.Plan]) -> None:
    _, plan = planned
    (public,) = [name for name, fn in PIPELINE["functions"].items() if fn["public"]]
    binding = "google_cloud_run_v2_service_iam_member.public_webhook"
    assert checks.public_grants(plan) == [
        checks.Grant(binding, "roles/run.invoker", "allUsers", f'{FUNCTION}["{public}"]')
    ]
    assert checks.mentioning(plan, "allUsers") == [binding]
    assert checks.mentioning(plan, "allAuthenticatedUsers") == []


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
    # Each function may read exactly the secrets it is given, and no secret is left over.
    for function, secrets in expected.items():
        account = plan.resources[function].get("service_config", 0, "service_account_email")
        readable = {
            t
            for role, t in checks.roles_of(plan, f"serviceAccount:{account}")
            if role == "roles/secretmanager.secretAccessor"
        }
        assert readable == set(secrets.values()), function
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
    assert ("google_firestore_field.receipt_expiry[0]" in plan.resources) is retention
    recorder = plan.resources[f'{FUNCTION}["record-events"]'].get(
        "service_config", 0, "environment_variables"
    )
    assert ("RECEIPT_RETENTION_DAYS" in recorder) is retention


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
    for variable, terraform_variable in endpoints.items():
        given = scenario.variables.get(terraform_variable)
        assert environment[variable] == (
            given or plan.data["variables"][terraform_variable]["value"]
        )
    scheduled = plan.resources[job]
    assert scheduled.get("schedule") == "* * * * *"
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
