"""What a plan deploys, read from `terraform show -json` (pure).

`Plan` indexes the planned resources; the functions below resolve the wiring the pipeline
depends on (which function each push subscription calls, who holds which role on what, which
secret reaches which function) and return it as plain data, or return the problems they find
(an empty list when there are none). Tests assert on those, so a new resource (a monitoring
policy, a new function) needs a resolver or a check here, not a new way to read plans.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PUBLIC_MEMBERS = frozenset({"allUsers", "allAuthenticatedUsers"})
# The attribute that names what an IAM member resource grants on.
_IAM_TARGETS = ("topic", "subscription", "secret_id", "name", "bucket", "service_account_id")
_IAM_TYPES = ("_iam_member", "_iam_binding", "_iam_policy")
_SECRET_VERSION_TYPES = ("google_secret_manager_secret_version",)


class _Unknown:
    def __repr__(self) -> str:
        return "(known after apply)"


UNKNOWN: Any = _Unknown()  # a value the plan leaves to apply


@dataclass(frozen=True)
class Resource:
    address: str
    type: str
    name: str
    index: str | int | None
    values: Mapping[str, Any]  # after the change; unknown values are UNKNOWN

    def get(self, *path: str | int) -> Any:
        """A nested value (`get("push_config", 0, "push_endpoint")`); None when absent."""
        current: Any = self.values
        for step in path:
            if current is UNKNOWN:
                return UNKNOWN
            if isinstance(step, int):
                current = (
                    current[step] if isinstance(current, list) and len(current) > step else None
                )
            else:
                current = current.get(step) if isinstance(current, dict) else None
        return current


def _merge_unknown(after: Any, unknown: Any) -> Any:
    if unknown is True:
        return UNKNOWN
    if isinstance(unknown, dict):
        base = dict(after) if isinstance(after, dict) else {}
        for key, flag in unknown.items():
            base[key] = _merge_unknown(base.get(key), flag)
        return base
    if isinstance(unknown, list):
        items = list(after) if isinstance(after, list) else []
        items += [None] * (len(unknown) - len(items))
        return [_merge_unknown(item, flag) for item, flag in zip(items, unknown, strict=True)]
    return after


class Plan:
    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.resources: dict[str, Resource] = {}
        for change in data.get("resource_changes", []):
            if change.get("mode") != "managed" or change["change"]["actions"] == ["delete"]:
                continue
            self.resources[change["address"]] = Resource(
                change["address"],
                change["type"],
                change["name"],
                change.get("index"),
                _merge_unknown(change["change"]["after"], change["change"]["after_unknown"]),
            )
        # Data sources are read while planning; their values are in the plan's prior state.
        self.data_sources: dict[str, Mapping[str, Any]] = {
            resource["address"]: resource["values"]
            for resource in data.get("prior_state", {})
            .get("values", {})
            .get("root_module", {})
            .get("resources", [])
            if resource.get("mode") == "data"
        }

    def of_type(self, type_: str) -> list[Resource]:
        return [resource for resource in self.resources.values() if resource.type == type_]

    def instances(self, type_: str, name: str) -> dict[str | int | None, Resource]:
        """The instances of one resource block, by their for_each key or count index."""
        return {r.index: r for r in self.of_type(type_) if r.name == name}

    def owner_of(self, value: Any) -> str | None:
        """The address of the resource this value names (its id, name, email or service)."""
        if not isinstance(value, str) or not value:
            return None
        for resource in self.resources.values():
            if resource.type.endswith(_IAM_TYPES):
                continue  # a grant names what it grants on; it is not that thing
            names = (
                resource.get("id"),
                resource.get("name"),
                resource.get("email"),
                resource.get("secret_id"),
                resource.get("service_config", 0, "service"),
            )
            if value in names:
                return resource.address
        return None

    def functions_by_uri(self) -> dict[str, str]:
        return {
            uri: function.address
            for function in self.of_type("google_cloudfunctions2_function")
            if isinstance(uri := function.get("service_config", 0, "uri"), str)
        }


@dataclass(frozen=True)
class Grant:
    resource: str  # the IAM resource's address
    role: str
    member: str
    target: str  # the address of what it grants on, or the raw value when not in the plan


def grants(plan: Plan) -> list[Grant]:
    """Every IAM grant in the plan: `*_iam_member`, and each member of a binding or policy."""
    found = []
    for resource in plan.resources.values():
        if not resource.type.endswith(_IAM_TYPES):
            continue
        raw = next((resource.get(key) for key in _IAM_TARGETS if resource.get(key)), None)
        target = (
            plan.owner_of(raw)
            or _bigquery_table(plan, resource)
            or str(raw or resource.get("project"))
        )
        if resource.type.endswith("_iam_policy"):
            policy = resource.get("policy_data")
            bindings = json.loads(policy).get("bindings", []) if isinstance(policy, str) else []
        else:
            members = resource.get("members") or [resource.get("member")]
            bindings = [{"role": resource.get("role"), "members": members}]
        found += [
            Grant(resource.address, binding["role"], member, target)
            for binding in bindings
            for member in binding["members"]
        ]
    return found


def _bigquery_table(plan: Plan, grant: Resource) -> str | None:
    """The table a BigQuery table grant names by dataset and table id (its id is known only
    after apply)."""
    names = (grant.get("dataset_id"), grant.get("table_id"))
    if names[1] is None:
        return None
    tables = plan.of_type("google_bigquery_table")
    return next(
        (t.address for t in tables if (t.get("dataset_id"), t.get("table_id")) == names), None
    )


def roles_of(plan: Plan, member: str) -> set[tuple[str, str]]:
    """(role, target) for everything granted to one member."""
    return {(grant.role, grant.target) for grant in grants(plan) if grant.member == member}


def public_grants(plan: Plan) -> list[Grant]:
    return [grant for grant in grants(plan) if grant.member in PUBLIC_MEMBERS]


@dataclass(frozen=True)
class Push:
    subscription: str
    endpoint: str | None  # the address of the function it pushes to
    audience: str | None  # the address of the function its OIDC token is for
    invoker: str | None  # the address of the account whose token it sends


def pushes(plan: Plan) -> list[Push]:
    """Where each push subscription delivers, resolved to resources in the plan."""
    by_uri = plan.functions_by_uri()
    found = []
    for subscription in plan.of_type("google_pubsub_subscription"):
        endpoint = subscription.get("push_config", 0, "push_endpoint")
        if endpoint is None:
            continue
        found.append(
            Push(
                subscription.address,
                by_uri.get(endpoint),
                by_uri.get(subscription.get("push_config", 0, "oidc_token", 0, "audience")),
                plan.owner_of(
                    subscription.get("push_config", 0, "oidc_token", 0, "service_account_email")
                ),
            )
        )
    return found


def dead_letter_problems(plan: Plan) -> list[str]:
    """Every push subscription dead-letters to a topic of the plan that has a subscription."""
    problems = []
    topics = {r.address for r in plan.of_type("google_pubsub_topic")}
    subscribed = {plan.owner_of(s.get("topic")) for s in plan.of_type("google_pubsub_subscription")}
    for subscription in plan.of_type("google_pubsub_subscription"):
        policy = subscription.get("dead_letter_policy", 0)
        if subscription.get("push_config", 0) is None:
            continue  # a pull subscription (such as a dead-letter one) is read, not pushed
        if not policy:
            problems.append(f"{subscription.address} has no dead_letter_policy")
            continue
        topic = plan.owner_of(policy.get("dead_letter_topic"))
        attempts = policy.get("max_delivery_attempts")
        if topic not in topics:
            problems.append(f"{subscription.address} dead-letters to {topic!r}, not a topic")
        elif topic == plan.owner_of(subscription.get("topic")):
            problems.append(f"{subscription.address} dead-letters to its own topic")
        elif topic not in subscribed:
            problems.append(f"{topic} (dead letters of {subscription.address}) has no subscription")
        if not isinstance(attempts, int) or not 5 <= attempts <= 100:
            problems.append(f"{subscription.address}: max_delivery_attempts {attempts!r}")
    return problems


def dead_letter_topics(plan: Plan) -> set[str]:
    return {
        topic
        for s in plan.of_type("google_pubsub_subscription")
        if (topic := plan.owner_of(s.get("dead_letter_policy", 0, "dead_letter_topic")))
    }


def secret_environment(plan: Plan) -> dict[str, dict[str, str]]:
    """Per function, each secret environment variable and the secret resource it reads."""
    found = {}
    for function in plan.of_type("google_cloudfunctions2_function"):
        entries = function.get("service_config", 0, "secret_environment_variables") or []
        found[function.address] = {
            entry["key"]: plan.owner_of(entry["secret"]) or entry["secret"] for entry in entries
        }
    return found


def plain_secret_problems(plan: Plan, secret_names: set[str]) -> list[str]:
    """Secrets reach functions only through Secret Manager, never as plain values.

    `secret_names` are the environment variables that hold secrets; none may be a plain
    environment variable (of the service or the build), each secret variable must read a
    secret of the plan at a version, and no secret value (a secret version) is in the plan.
    """
    problems = []
    for function in plan.of_type("google_cloudfunctions2_function"):
        for where in (("service_config", 0), ("build_config", 0)):
            plain = function.get(*where, "environment_variables") or {}
            if plain is UNKNOWN:
                problems.append(f"{function.address}: {where[0]} environment unknown at plan")
                continue
            for name in sorted(set(plain) & secret_names):
                problems.append(f"{function.address}: {name} is a plain {where[0]} variable")
        for entry in function.get("service_config", 0, "secret_environment_variables") or []:
            owner = plan.owner_of(entry.get("secret"))
            if owner is None or not owner.startswith("google_secret_manager_secret."):
                problems.append(f"{function.address}: {entry.get('key')} reads {owner!r}")
            if not entry.get("version"):
                problems.append(f"{function.address}: {entry.get('key')} has no version")
    for type_ in _SECRET_VERSION_TYPES:
        problems += [f"{r.address} puts a secret value in state" for r in plan.of_type(type_)]
    return problems


def mentioning(plan: Plan, text: str) -> list[str]:
    """Addresses of the resources with `text` in any of their values, however deep."""

    def found(value: Any) -> bool:
        if isinstance(value, str):
            return text in value
        if isinstance(value, dict):
            return any(found(item) for item in value.values())
        if isinstance(value, list):
            return any(found(item) for item in value)
        return False

    return sorted(r.address for r in plan.resources.values() if found(r.values))


# Monitoring: alert conditions, the filters they and the log-based metrics use, the dashboard.

_CONDITION_KINDS = (
    "condition_threshold",
    "condition_absent",
    "condition_matched_log",
    "condition_monitoring_query_language",
    "condition_prometheus_query_language",
    "condition_sql",
)


@dataclass(frozen=True)
class Condition:
    policy: str  # the alert policy's address
    name: str  # its display name
    kind: str  # condition_threshold, condition_absent, ...
    values: Mapping[str, Any]  # the condition's own block

    @property
    def filter(self) -> str:
        found = self.values.get("filter") or self.values.get("query") or ""
        return str(found)

    @property
    def aggregations(self) -> list[Mapping[str, Any]]:
        return list(self.values.get("aggregations") or [])


def alert_conditions(plan: Plan) -> list[Condition]:
    """Every condition of every alert policy, whatever its kind."""
    found = []
    for policy in plan.of_type("google_monitoring_alert_policy"):
        for condition in policy.get("conditions") or []:
            for kind in _CONDITION_KINDS:
                for block in condition.get(kind) or []:
                    found.append(Condition(policy.address, condition["display_name"], kind, block))
    return found


_QUOTED = r'"((?:[^"\\]|\\.)*)"'


def filter_values(text: str, field: str) -> set[str]:
    """The values a Monitoring or Logging filter compares `field` with, in any of the forms
    `field = "a"`, `field = one_of("a", "b")` (Monitoring) or `field=("a" OR "b")` (Logging)."""
    found: set[str] = set()
    name = re.escape(field)
    for match in re.finditer(rf"(?<![\w.]){name}\s*=\s*(?:one_of)?\(([^)]*)\)", text):
        found.update(json.loads(f'"{value}"') for value in re.findall(_QUOTED, match.group(1)))
    for match in re.finditer(rf"(?<![\w.]){name}\s*=\s*{_QUOTED}", text):
        found.add(json.loads(f'"{match.group(1)}"'))
    return found


def log_metric_types(plan: Plan) -> dict[str, str]:
    """The Monitoring metric type of each log-based metric (`logging.googleapis.com/user/NAME`),
    and the address of the metric resource."""
    return {
        f"logging.googleapis.com/user/{metric.get('name')}": metric.address
        for metric in plan.of_type("google_logging_metric")
    }


def dashboard(plan: Plan, address: str) -> dict[str, Any]:
    """A dashboard's JSON, decoded."""
    decoded: dict[str, Any] = json.loads(plan.resources[address].get("dashboard_json"))
    return decoded
