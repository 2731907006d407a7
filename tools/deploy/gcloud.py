"""`make deploy`: redeploys every function from build/ with gcloud, as Terraform configures it.

Terraform provisions everything first (identities, topics, subscriptions, secrets); this
redeploys code. The settings come from terraform/pipeline.json and the same variables as
terraform.tfvars, spelled as environment variables. DRY_RUN=1 prints the commands only.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.core.config import comma_list
from shared.providers import chatapp
from tools.deploy.bundle import BUILD_DIR
from tools.topology import FUNCTIONS, ROOT, RUNTIME, Function

TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """The Terraform variables that shape a function, with Terraform's defaults."""

    project: str
    region: str = "europe-west1"
    name_prefix: str = "receipt-pipeline"
    business_messages_enabled: bool = True
    chatapp_enabled: bool = False
    rbm_enabled: bool = False
    rbm_api_endpoint: str = ""
    whatsapp_enabled: bool = False
    whatsapp_api_endpoint: str = ""
    whatsapp_api_version: str = ""
    chatapp_allowed_ips: tuple[str, ...] = ()
    spool_providers: tuple[str, ...] = ("chatapp",)
    spool_max_attempts: int = 5
    auto_read_receipts: bool = True
    bm_api_service_account_email: str = ""
    receipt_retention_days: int = 0
    max_instances: Mapping[str, int] = field(default_factory=dict)
    min_instances: Mapping[str, int] = field(default_factory=dict)
    # Chat App's queue mode: `Type=Queue,...` as CHATAPP_SMQ_QUEUES, and its two endpoints.
    chatapp_smq_queues: str = ""
    chatapp_smq_endpoint: str = chatapp.SMQ_ENDPOINT
    chatapp_smq_token_endpoint: str = chatapp.SMQ_TOKEN_ENDPOINT

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        project = environ.get("PROJECT") or environ.get("GOOGLE_CLOUD_PROJECT") or ""
        if not project:
            sys.exit("set PROJECT (or GOOGLE_CLOUD_PROJECT) to the project to deploy to")
        return cls(
            project=project,
            region=environ.get("REGION") or cls.region,
            name_prefix=environ.get("NAME_PREFIX") or cls.name_prefix,
            business_messages_enabled=_flag(
                environ.get("BM_ENABLED"), cls.business_messages_enabled
            ),
            chatapp_enabled=_flag(environ.get("CHATAPP_ENABLED"), cls.chatapp_enabled),
            rbm_enabled=_flag(environ.get("RBM_ENABLED"), cls.rbm_enabled),
            rbm_api_endpoint=environ.get("RBM_API_ENDPOINT", ""),
            whatsapp_enabled=_flag(environ.get("WHATSAPP_ENABLED"), cls.whatsapp_enabled),
            whatsapp_api_endpoint=environ.get("WHATSAPP_API_ENDPOINT", ""),
            whatsapp_api_version=environ.get("WHATSAPP_API_VERSION", ""),
            chatapp_allowed_ips=comma_list(environ.get("CHATAPP_ALLOWED_IPS", "")),
            spool_providers=comma_list(environ.get("SPOOL_PROVIDERS", "chatapp")),
            spool_max_attempts=int(environ.get("SPOOL_MAX_ATTEMPTS") or cls.spool_max_attempts),
            auto_read_receipts=_flag(environ.get("AUTO_READ_RECEIPTS"), cls.auto_read_receipts),
            bm_api_service_account_email=environ.get("BM_API_SERVICE_ACCOUNT_EMAIL", ""),
            receipt_retention_days=int(environ.get("RECEIPT_RETENTION_DAYS") or 0),
            max_instances=_counts(environ.get("MAX_INSTANCES", "")),
            min_instances=_counts(environ.get("MIN_INSTANCES", "")),
            chatapp_smq_queues=environ.get("CHATAPP_SMQ_QUEUES", ""),
            chatapp_smq_endpoint=environ.get("CHATAPP_SMQ_ENDPOINT") or cls.chatapp_smq_endpoint,
            chatapp_smq_token_endpoint=(
                environ.get("CHATAPP_SMQ_TOKEN_ENDPOINT") or cls.chatapp_smq_token_endpoint
            ),
        )

    @property
    def providers(self) -> set[str]:
        enabled = {
            "bm": self.business_messages_enabled,
            "chatapp": self.chatapp_enabled,
            "rbm": self.rbm_enabled,
            "whatsapp": self.whatsapp_enabled,
            "chatapp-smq": bool(self.chatapp_smq_queues.strip()),
        }
        return {provider for provider, on in enabled.items() if on}

    def deployed(self, function: Function) -> bool:
        """As locals.tf decides: a function with `deployed_with` needs one of those on."""
        switches = function.settings.get("deployed_with")
        return switches is None or bool(self.providers & set(switches))

    @property
    def read_api_settings(self) -> dict[str, str]:
        """The READ function's optional API settings, as locals.tf: only those given."""
        settings = {
            "RBM_API_ENDPOINT": self.rbm_api_endpoint,
            "WHATSAPP_API_ENDPOINT": self.whatsapp_api_endpoint,
            "WHATSAPP_API_VERSION": self.whatsapp_api_version,
        }
        return {name: value for name, value in settings.items() if value}

    @property
    def spooling_providers(self) -> list[str]:
        """The providers whose events the webhook spools: listed and enabled."""
        return sorted(set(self.spool_providers) & self.providers)

    @property
    def spool_database(self) -> str:
        return f"{self.name_prefix}-spool"

    @property
    def docker_repository(self) -> str:
        """The functions' Artifact Registry repository, the only one the build may write to."""
        return (
            f"projects/{self.project}/locations/{self.region}"
            f"/repositories/{self.name_prefix}-functions"
        )

    def account(self, function: Function) -> str:
        if function.name == "agent-read-receipts" and self.bm_api_service_account_email:
            return self.bm_api_service_account_email
        account = function.settings["account"]
        return f"{self.name_prefix}-{account}@{self.project}.iam.gserviceaccount.com"


def environment(function: Function, settings: Settings) -> dict[str, str]:
    """The function's environment variables, as locals.tf computes them."""
    config = function.settings
    env = {"GOOGLE_CLOUD_PROJECT": settings.project, "THREADS": str(config["concurrency"])}
    env |= {
        f"{topic.upper()}_TOPIC": f"{settings.name_prefix}-{topic}"
        for topic in config["publishes_to"]
    }
    if function.name in ("webhook", "drain-spool"):
        env["SPOOL_DATABASE"] = settings.spool_database
    if function.name == "drain-spool":
        env["SPOOL_MAX_ATTEMPTS"] = str(settings.spool_max_attempts)
    if function.name == "webhook":
        env["SPOOL_PROVIDERS"] = ",".join(settings.spooling_providers)
        if settings.chatapp_allowed_ips:
            env["CHATAPP_ALLOWED_IPS"] = ",".join(settings.chatapp_allowed_ips)
    if function.name == "record-events" and settings.receipt_retention_days > 0:
        env["RECEIPT_RETENTION_DAYS"] = str(settings.receipt_retention_days)
    if function.name == "agent-read-receipts":
        env["AUTO_READ_RECEIPTS"] = str(settings.auto_read_receipts).lower()
        env |= settings.read_api_settings
    if function.name == "pull-queues":
        env["CHATAPP_SMQ_QUEUES"] = settings.chatapp_smq_queues
        env["CHATAPP_SMQ_ENDPOINT"] = settings.chatapp_smq_endpoint
        env["CHATAPP_SMQ_TOKEN_ENDPOINT"] = settings.chatapp_smq_token_endpoint
    return env


def secrets(function: Function, settings: Settings) -> dict[str, str]:
    """Environment variable -> Secret Manager secret id, for the enabled providers."""
    return {
        env: f"{settings.name_prefix}-{secret['secret']}"
        for env, secret in function.settings["secrets"].items()
        if secret["provider"] in settings.providers
    }


def command(function: Function, settings: Settings) -> list[str]:
    config = function.settings
    public = config["public"]
    prefix, project = settings.name_prefix, settings.project
    build_account = (
        f"projects/{project}/serviceAccounts/{prefix}-build@{project}.iam.gserviceaccount.com"
    )
    # "^;^" makes ";" the separator, so values may hold commas (an IP allow-list).
    env = ";".join(f"{k}={v}" for k, v in sorted(environment(function, settings).items()))
    arguments = [
        "gcloud", "functions", "deploy", f"{prefix}-{function.name}",
        "--gen2",
        f"--project={project}",
        f"--region={settings.region}",
        f"--runtime={RUNTIME}",
        f"--source={BUILD_DIR.relative_to(ROOT) / function.name}",
        f"--entry-point={function.target}",
        "--trigger-http",
        "--allow-unauthenticated" if public else "--no-allow-unauthenticated",
        f"--ingress-settings={'all' if public else 'internal-only'}",
        f"--service-account={settings.account(function)}",
        f"--build-service-account={build_account}",
        f"--docker-repository={settings.docker_repository}",
        f"--memory={config['memory']}",
        f"--cpu={config['cpu']}",
        f"--timeout={config['timeout_seconds']}s",
        f"--concurrency={config['concurrency']}",
        f"--max-instances={settings.max_instances.get(function.name, config['max_instances'])}",
        f"--min-instances={settings.min_instances.get(function.name, 0)}",
        f"--set-env-vars=^;^{env}",
    ]  # fmt: skip
    mounted = secrets(function, settings)
    if mounted:
        arguments.append(
            "--set-secrets=" + ",".join(f"{k}={v}:latest" for k, v in sorted(mounted.items()))
        )
    return arguments


def main() -> None:
    settings = Settings.from_env(os.environ)
    dry_run = _flag(os.environ.get("DRY_RUN"), False)
    for function in filter(settings.deployed, FUNCTIONS):
        arguments = command(function, settings)
        print(shlex.join(arguments), flush=True)
        if not dry_run:
            subprocess.run(arguments, check=True)


def _flag(value: str | None, default: bool) -> bool:
    return default if not value else value.strip().lower() in TRUE


def _counts(value: str) -> dict[str, int]:
    """`webhook=1,record-events=2`, as the Terraform map variables."""
    return {
        name.strip(): int(count)
        for name, count in (item.split("=", 1) for item in comma_list(value))
    }


if __name__ == "__main__":
    main()
