"""Computed values the stub provider fills in at plan time instead of leaving them unknown (pure).

The real provider plans an ID, an email or a function URL as "(known after apply)". Each of
these is derived by Google from the resource's own arguments, in a documented format, so the
stub derives it the same way. Then a plan shows, resolved per `for_each` instance, which topic a
subscription dead-letters to, which function it pushes to, which account a role goes to:
assertions can check the wiring itself, not only the HCL that says it. A value not listed here
stays unknown. The formats are Google's; a URL's exact form is as good as this table, so tests
compare one resource's value with another's, never with a literal.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from tools.terraform.values import Value

_ACCOUNT = "{account_id}@{project}.iam.gserviceaccount.com"

# (resource type, or "data." + data source type) -> attribute path (block names, no indexes)
TEMPLATES: Mapping[str, Mapping[tuple[str, ...], str]] = {
    "google_cloudfunctions2_function": {
        ("id",): "projects/{project}/locations/{location}/functions/{name}",
        ("url",): "https://{location}-{project}.cloudfunctions.net/{name}",
        # Cloud Run's deterministic URL, and the service a 2nd gen function runs as.
        ("service_config", "uri"): "https://{name}-{project_number}.{location}.run.app",
        ("service_config", "service"): "projects/{project}/locations/{location}/services/{name}",
    },
    "google_service_account": {
        ("id",): "projects/{project}/serviceAccounts/" + _ACCOUNT,
        ("name",): "projects/{project}/serviceAccounts/" + _ACCOUNT,
        ("email",): _ACCOUNT,
        ("member",): "serviceAccount:" + _ACCOUNT,
    },
    "google_pubsub_topic": {("id",): "projects/{project}/topics/{name}"},
    "google_pubsub_subscription": {("id",): "projects/{project}/subscriptions/{name}"},
    "google_secret_manager_secret": {
        ("id",): "projects/{project}/secrets/{secret_id}",
        ("name",): "projects/{project_number}/secrets/{secret_id}",
    },
    "google_storage_bucket": {
        ("id",): "{name}",
        ("url",): "gs://{name}",
        ("self_link",): "https://www.googleapis.com/storage/v1/b/{name}",
    },
    "google_firestore_database": {("id",): "projects/{project}/databases/{name}"},
    "google_project_service": {("id",): "{project}/{service}"},
    "google_cloud_scheduler_job": {("id",): "projects/{project}/locations/{region}/jobs/{name}"},
    "data.google_project": {
        ("id",): "projects/{project}",
        ("name",): "{project}",
        ("number",): "{project_number}",
    },
}


@dataclass(frozen=True)
class Defaults:
    """What the provider block sets for every resource that does not set it itself."""

    project: str | None = None
    region: str | None = None


def project_number(project: str) -> str:
    """A stable, plausible 12-digit project number for a project ID."""
    digest = int(hashlib.sha256(project.encode()).hexdigest(), 16)
    return str(100_000_000_000 + digest % 900_000_000_000)


def derived_value(
    kind: str, path: tuple[str, ...], values: Mapping[str, Value], defaults: Defaults
) -> str | None:
    """The derived value of a computed attribute, or None when it is not derivable (yet)."""
    template = TEMPLATES.get(kind, {}).get(path)
    if template is None:
        return None
    fields = {name: value for name, value in values.items() if isinstance(value, str)}
    project = fields.get("project") or fields.get("project_id") or defaults.project
    location = fields.get("location") or fields.get("region") or defaults.region
    if project:
        fields.update(project=project, project_number=project_number(project))
    if location:
        fields.update(location=location, region=location)
    try:
        return template.format_map(fields)
    except KeyError:  # an argument it needs is unknown until apply
        return None
