"""The change stream in the offline plan (terraform/changes.tf): the topic always, its two
consumers only with their switches, in every scenario of test_terraform_plan.py.

changes_push_endpoint: a push subscription to the business's HTTPS endpoint with an OIDC token
of an account of its own, a retry policy and a dead-letter topic read by a pull subscription.
analytics_dataset: a BigQuery table written by a Pub/Sub BigQuery subscription, and the views,
whose queries are the files of terraform/analytics/ (tests/analytics.py runs them).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.analytics import bigquery_sql, view_names
from tests.integration import test_terraform_plan as terraform_plan
from tests.integration.test_terraform_plan import EXAMPLE, FUNCTION, Scenario
from tools.terraform import plan as checks
from tools.terraform import run

# One worker of `make test` runs the group: it shares the plans and the wheels cache.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("terraform")]

# The plan of every scenario, and the workspace, from test_terraform_plan.py's fixtures.
planned = terraform_plan.planned
workspace = terraform_plan.workspace

CHANGES = 'google_pubsub_topic.pipeline["changes"]'
PUSH = "google_pubsub_subscription.changes_push[0]"
PUSH_ACCOUNT = "google_service_account.changes_push[0]"
BIGQUERY = "google_pubsub_subscription.changes_bigquery[0]"
TABLE = "google_bigquery_table.changes[0]"
DEAD_LETTER = "google_pubsub_topic.changes_dead_letter[0]"
DEAD_LETTER_SUBSCRIPTION = "google_pubsub_subscription.changes_dead_letter[0]"
ALERT = "google_monitoring_alert_policy.changes_undelivered[0]"
RECORDERS = {"record-events", "agent-read-receipts"}  # the functions that record changes


def variable(plan: checks.Plan, name: str) -> Any:
    return plan.data["variables"][name]["value"]


def service_agent(plan: checks.Plan) -> str:
    number = plan.data_sources["data.google_project.this"]["number"]
    return f"serviceAccount:service-{number}@gcp-sa-pubsub.iam.gserviceaccount.com"


def consumers(plan: checks.Plan) -> set[str]:
    """Every resource of the consumers: changes.tf's, other than the topic."""
    return {
        address
        for address in plan.resources
        if ".changes_" in address
        or address.startswith(("google_bigquery_", "google_project_service.bigquery"))
    }


def test_the_topic_always_exists_and_only_the_recorders_publish_to_it(
    planned: tuple[Scenario, checks.Plan],
) -> None:
    _, plan = planned
    topic = plan.resources[CHANGES]
    assert topic.get("name") == "receipt-pipeline-changes"  # the code's default CHANGES_TOPIC
    publishers = {g.member for g in checks.grants(plan) if g.target == CHANGES}
    accounts = {
        name: plan.resources[f'{FUNCTION}["{name}"]'].get(
            "service_config", 0, "service_account_email"
        )
        for name in RECORDERS
    }
    assert publishers == {f"serviceAccount:{account}" for account in accounts.values()}
    assert {g.role for g in checks.grants(plan) if g.target == CHANGES} == {
        "roles/pubsub.publisher"
    }
    for function in plan.of_type("google_cloudfunctions2_function"):
        environment = function.get("service_config", 0, "environment_variables")
        expected = topic.get("name") if function.index in RECORDERS else None
        assert environment.get("CHANGES_TOPIC") == expected, function.address


def test_each_consumer_exists_with_its_switch_only(planned: tuple[Scenario, checks.Plan]) -> None:
    scenario, plan = planned
    push = "changes_push_endpoint" in scenario.variables
    analytics = "analytics_dataset" in scenario.variables
    expected = set()
    if push or analytics:
        expected |= {
            DEAD_LETTER,
            DEAD_LETTER_SUBSCRIPTION,
            "google_pubsub_topic_iam_member.changes_dead_letter_publisher[0]",
            ALERT,
        }
    if push:
        expected |= {
            PUSH,
            PUSH_ACCOUNT,
            'google_pubsub_subscription_iam_member.changes_dead_letter_subscriber["push"]',
            "google_service_account_iam_member.changes_push_token_creator[0]",
        }
    if analytics:
        expected |= {
            BIGQUERY,
            TABLE,
            "google_bigquery_dataset.analytics[0]",
            "google_bigquery_table_iam_member.changes_writer[0]",
            'google_pubsub_subscription_iam_member.changes_dead_letter_subscriber["bigquery"]',
            "google_project_service.bigquery[0]",
            'google_bigquery_table.events["events"]',
            *(
                f'google_bigquery_table.messages["{v}"]'
                for v in ("business_messages", "user_messages")
            ),
            *(f'google_bigquery_table.metrics["{v}"]' for v in view_names()[3:]),
        }
    assert consumers(plan) == expected
    assert scenario.id.startswith("change-stream") is bool(expected)  # the switches are tested


def test_the_pubsub_service_agent_has_exactly_what_the_consumers_need(
    planned: tuple[Scenario, checks.Plan],
) -> None:
    _, plan = planned
    on = consumers(plan)
    expected = {("roles/pubsub.publisher", DEAD_LETTER)} if DEAD_LETTER in on else set()
    if PUSH in on:
        expected |= {
            ("roles/pubsub.subscriber", PUSH),
            ("roles/iam.serviceAccountTokenCreator", PUSH_ACCOUNT),
        }
    if BIGQUERY in on:
        expected |= {("roles/pubsub.subscriber", BIGQUERY), ("roles/bigquery.dataEditor", TABLE)}
    granted = checks.roles_of(plan, service_agent(plan))
    assert {(role, target) for role, target in granted if target in on} == expected
    # Nothing of BigQuery is granted on the project: the one grant is on the table.
    assert not {
        g for g in checks.grants(plan) if g.role.startswith("roles/bigquery.") and g.target != TABLE
    }


def test_the_push_carries_an_oidc_token_of_its_own_account_and_dead_letters(
    planned: tuple[Scenario, checks.Plan],
) -> None:
    scenario, plan = planned
    if PUSH not in plan.resources:
        return
    endpoint = scenario.variables["changes_push_endpoint"]
    audience = scenario.variables.get("changes_push_audience", endpoint)
    push = plan.resources[PUSH]
    assert plan.owner_of(push.get("topic")) == CHANGES
    [config] = push.get("push_config")
    assert config["push_endpoint"] == endpoint
    [token] = config["oidc_token"]
    assert token["audience"] == audience
    assert plan.owner_of(token["service_account_email"]) == PUSH_ACCOUNT
    # The body is the event itself; attributes and metadata are headers.
    assert config["no_wrapper"] == [{"write_metadata": True}]
    # The account is the pushes' alone: it holds no role, and nothing else runs as it.
    account = f"serviceAccount:{token['service_account_email']}"
    assert checks.roles_of(plan, account) == set()
    assert set(checks.mentioning(plan, token["service_account_email"])) == {
        PUSH_ACCOUNT,
        PUSH,
        "google_service_account_iam_member.changes_push_token_creator[0]",  # on it, not to it
    }
    [retry] = push.get("retry_policy")
    assert (retry["minimum_backoff"], retry["maximum_backoff"]) == ("10s", "600s")
    [policy] = push.get("dead_letter_policy")
    assert plan.owner_of(policy["dead_letter_topic"]) == DEAD_LETTER
    assert policy["max_delivery_attempts"] == variable(plan, "max_delivery_attempts")
    assert plan.owner_of(plan.resources[DEAD_LETTER_SUBSCRIPTION].get("topic")) == DEAD_LETTER
    assert plan.resources[DEAD_LETTER_SUBSCRIPTION].get("push_config") == []  # pulled: kept
    assert checks.dead_letter_problems(plan) == []


def test_bigquery_gets_every_event_and_the_views_are_the_files(
    planned: tuple[Scenario, checks.Plan],
) -> None:
    scenario, plan = planned
    if BIGQUERY not in plan.resources:
        return
    dataset = scenario.variables["analytics_dataset"]
    project = variable(plan, "project_id")
    subscription = plan.resources[BIGQUERY]
    assert plan.owner_of(subscription.get("topic")) == CHANGES
    assert subscription.get("filter") is None  # every event
    [config] = subscription.get("bigquery_config")
    assert config["table"] == f"{project}.{dataset}.changes"
    assert config["write_metadata"] is True
    assert (config["use_topic_schema"], config["use_table_schema"]) == (None, None)
    [policy] = subscription.get("dead_letter_policy")
    assert plan.owner_of(policy["dead_letter_topic"]) == DEAD_LETTER
    assert policy["max_delivery_attempts"] == variable(plan, "max_delivery_attempts")

    table = plan.resources[TABLE]
    assert (table.get("dataset_id"), table.get("table_id")) == (dataset, "changes")
    assert table.get("deletion_protection") is True  # the events; a view is only its query
    assert plan.resources["google_bigquery_dataset.analytics[0]"].get("dataset_id") == dataset
    columns = {c["name"]: c["type"] for c in json.loads(table.get("schema"))}
    assert columns == {
        "subscription_name": "STRING",
        "message_id": "STRING",
        "publish_time": "TIMESTAMP",
        "data": "STRING",
        "attributes": "JSON",
    }
    [partitioning] = table.get("time_partitioning")
    assert (partitioning["type"], partitioning["field"]) == ("DAY", "publish_time")

    views = {
        view.get("table_id"): view
        for view in plan.of_type("google_bigquery_table")
        if view.get("view")
    }
    assert sorted(views) == sorted(view_names())
    for name, view in views.items():
        assert view.get("dataset_id") == dataset
        [definition] = view.get("view")
        assert definition["query"] == bigquery_sql(name, dataset=f"{project}.{dataset}"), name
        assert definition["use_legacy_sql"] is False
        assert view.get("deletion_protection") is False


def test_an_alert_watches_each_consumer_and_the_stream_s_dead_letters(
    planned: tuple[Scenario, checks.Plan],
) -> None:
    _, plan = planned
    if ALERT not in plan.resources:
        assert DEAD_LETTER_SUBSCRIPTION not in plan.resources
        return
    alert = plan.resources[ALERT]
    backlog, dead_letters = (
        alert.get("conditions", n, "condition_threshold", 0, "filter") for n in (0, 1)
    )
    watched = {plan.resources[s].get("name") for s in (PUSH, BIGQUERY) if s in plan.resources}
    listed = backlog.split("one_of(", 1)[1].split(")", 1)[0]
    assert {name.strip().strip('"') for name in listed.split(",")} == watched
    assert "oldest_unacked_message_age" in backlog
    dead_letter_name = plan.resources[DEAD_LETTER_SUBSCRIPTION].get("name")
    assert f'resource.label.subscription_id = "{dead_letter_name}"' in dead_letters
    assert "num_undelivered_messages" in dead_letters
    content = alert.get("documentation", 0, "content")
    assert dead_letter_name in content
    assert "${" not in content.replace("${resource", "")
    assert alert.get("notification_channels") == plan.resources[
        "google_monitoring_alert_policy.dead_letters"
    ].get("notification_channels")


def test_the_push_endpoint_must_be_https(workspace: run.Workspace) -> None:
    with pytest.raises(run.TerraformError, match="changes_push_endpoint must be an https://"):
        workspace.plan(
            [EXAMPLE], {"changes_push_endpoint": "http://crm.example.com/receipts"}, name="http"
        )
