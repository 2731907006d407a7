"""`make deploy`: the gcloud commands, with Terraform's settings; DRY_RUN only prints them."""

import os
import shlex
import subprocess
from pathlib import Path

from tests.python_process import run_python
from tools.deploy import gcloud as deploy
from tools.topology import FUNCTIONS


def run_deploy(tmp_path: Path, **environment: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Runs the deploy tool with a fake gcloud on PATH that records every call."""
    calls = tmp_path / "gcloud-calls"
    fake = tmp_path / "bin" / "gcloud"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}", **environment}
    result = run_python(["-m", "tools.deploy.gcloud"], env)
    return result, calls


def test_dry_run_prints_the_exact_commands_and_runs_none(tmp_path: Path) -> None:
    result, calls = run_deploy(tmp_path, DRY_RUN="1", PROJECT="demo-project")
    assert result.returncode == 0, result.stderr
    printed = [shlex.split(line) for line in result.stdout.splitlines()]
    settings = deploy.Settings(project="demo-project")
    deployed = [function for function in FUNCTIONS if settings.deployed(function)]
    assert printed == [deploy.command(function, settings) for function in deployed]
    assert "pull-queues" not in {function.name for function in deployed}  # no queue: no puller
    assert not calls.exists()


def test_the_queue_puller_is_deployed_with_its_queues(tmp_path: Path) -> None:
    queues = "ChatAppStatus=Alicom-Queue-1-ChatAppStatus"
    result, _ = run_deploy(tmp_path, DRY_RUN="1", PROJECT="p", CHATAPP_SMQ_QUEUES=queues)
    assert result.returncode == 0, result.stderr
    [puller] = [shlex.split(line) for line in result.stdout.splitlines() if "pull-queues" in line]
    given = flags(puller)
    assert f"CHATAPP_SMQ_QUEUES={queues}" in given["set-env-vars"]
    assert given["set-secrets"] == (
        "ALIBABA_CLOUD_ACCESS_KEY_ID=receipt-pipeline-alibaba-access-key-id:latest,"
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET=receipt-pipeline-alibaba-access-key-secret:latest"
    )


def test_without_dry_run_each_command_is_run(tmp_path: Path) -> None:
    result, calls = run_deploy(tmp_path, PROJECT="demo-project")
    assert result.returncode == 0, result.stderr
    settings = deploy.Settings(project="demo-project")
    assert [line.split()[:3] for line in calls.read_text().splitlines()] == [
        ["functions", "deploy", f"receipt-pipeline-{function.name}"]
        for function in FUNCTIONS
        if settings.deployed(function)
    ]


def test_a_missing_project_is_a_clear_error(tmp_path: Path) -> None:
    result, _ = run_deploy(tmp_path, DRY_RUN="1", PROJECT="", GOOGLE_CLOUD_PROJECT="")
    assert result.returncode != 0
    assert "set PROJECT" in result.stderr


def flags(arguments: list[str]) -> dict[str, str]:
    return dict(arg[2:].split("=", 1) for arg in arguments if arg.startswith("--") and "=" in arg)


def dry_run(tmp_path: Path, **environment: str) -> dict[str, dict[str, str]]:
    """The printed commands' flags by deployed function name."""
    result, _ = run_deploy(tmp_path, DRY_RUN="1", **environment)
    assert result.returncode == 0, result.stderr
    return {line.split()[3]: flags(shlex.split(line)) for line in result.stdout.splitlines()}


def env_vars(given: dict[str, str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in given["set-env-vars"].removeprefix("^;^").split(";"))


def test_the_commands_carry_the_settings_terraform_uses() -> None:
    settings = deploy.Settings(
        project="p",
        chatapp_enabled=True,
        rbm_enabled=True,
        whatsapp_enabled=True,
        min_instances={"webhook": 1},
        chatapp_smq_queues="ChatAppStatus=Alicom-Queue-1-ChatAppStatus",
    )
    for function in FUNCTIONS:
        arguments = deploy.command(function, settings)
        config = function.settings
        given = flags(arguments)
        assert arguments[:4] == [
            "gcloud",
            "functions",
            "deploy",
            f"receipt-pipeline-{function.name}",
        ]
        assert "--gen2" in arguments
        assert "--trigger-http" in arguments  # subscribers take Terraform's push subscriptions
        assert given["runtime"] == "python311"
        assert given["entry-point"] == function.target
        assert given["source"] == f"build/{function.name}"
        assert given["memory"] == config["memory"]
        assert given["cpu"] == config["cpu"]
        assert given["timeout"] == f"{config['timeout_seconds']}s"
        assert given["concurrency"] == str(config["concurrency"])
        assert given["max-instances"] == str(config["max_instances"])
        assert given["min-instances"] == ("1" if function.name == "webhook" else "0")
        public = config["public"]
        assert ("--allow-unauthenticated" in arguments) is public
        assert ("--no-allow-unauthenticated" in arguments) is not public
        assert given["ingress-settings"] == ("all" if public else "internal-only")
        # Built into the functions' own repository, the only one the build account may write.
        assert given["docker-repository"] == (
            "projects/p/locations/europe-west1/repositories/receipt-pipeline-functions"
        )
        assert env_vars(given) == deploy.environment(function, settings)
        mounted = given.get("set-secrets", "")
        for variable in config["secrets"]:
            assert f"{variable}=receipt-pipeline-" in mounted


def test_whatsapp_s_switch_and_api_settings_reach_its_functions(tmp_path: Path) -> None:
    given = dry_run(
        tmp_path,
        PROJECT="p",
        BM_ENABLED="false",
        WHATSAPP_ENABLED="true",
        WHATSAPP_API_ENDPOINT="https://graph.example.test",
        WHATSAPP_API_VERSION="v99.0",
    )
    # The webhook is deployed for WhatsApp alone, with its two secrets and no other provider's.
    assert given["receipt-pipeline-webhook"]["set-secrets"] == (
        "WHATSAPP_APP_SECRET=receipt-pipeline-whatsapp-app-secret:latest,"
        "WHATSAPP_VERIFY_TOKEN=receipt-pipeline-whatsapp-verify-token:latest"
    )
    read = given["receipt-pipeline-agent-read-receipts"]
    assert read["set-secrets"] == (
        "WHATSAPP_ACCESS_TOKEN=receipt-pipeline-whatsapp-access-token:latest"
    )
    environment = env_vars(read)
    assert environment["WHATSAPP_API_ENDPOINT"] == "https://graph.example.test"
    assert environment["WHATSAPP_API_VERSION"] == "v99.0"


def test_the_read_receipt_function_can_run_as_the_registered_account() -> None:
    registered = "bm-partner@partner-project.iam.gserviceaccount.com"
    settings = deploy.Settings(project="p", bm_api_service_account_email=registered)
    by_name = {f.name: flags(deploy.command(f, settings))["service-account"] for f in FUNCTIONS}
    assert by_name["agent-read-receipts"] == registered
    assert by_name["webhook"] == "receipt-pipeline-webhook@p.iam.gserviceaccount.com"


def test_the_spool_settings_reach_the_webhook_and_the_drainer(tmp_path: Path) -> None:
    commands = dry_run(
        tmp_path,
        PROJECT="demo-project",
        NAME_PREFIX="acme",
        CHATAPP_ENABLED="true",
        SPOOL_PROVIDERS="bm,chatapp",
        SPOOL_MAX_ATTEMPTS="8",
    )
    env = {name: env_vars(given) for name, given in commands.items()}
    assert env["acme-webhook"]["SPOOL_DATABASE"] == "acme-spool"
    assert env["acme-webhook"]["SPOOL_PROVIDERS"] == "bm,chatapp"
    assert (
        env["acme-drain-spool"]["SPOOL_DATABASE"],
        env["acme-drain-spool"]["SPOOL_MAX_ATTEMPTS"],
    ) == (
        "acme-spool",
        "8",
    )
    assert "SPOOL_DATABASE" not in env["acme-record-events"]  # the recorder keeps the main one
