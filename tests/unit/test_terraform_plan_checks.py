"""The plan readers and checks on small hand-made plans: each check finds what it should.

The integration tests run them on real plans of terraform/, where they find nothing; these
show that they would have found something.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from tools.terraform import plan as checks

AGENT = "serviceAccount:service-1@gcp-sa-pubsub.iam.gserviceaccount.com"
URI = "https://f-1.r.run.app"
SERVICE = "projects/p/locations/r/services/f"


def change(
    address: str, type_: str, after: dict[str, Any], unknown: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "address": address,
        "mode": "managed",
        "type": type_,
        "name": address.split(".")[1].split("[")[0],
        "index": None,
        "change": {"actions": ["create"], "after": after, "after_unknown": unknown or {}},
    }


def pipeline() -> dict[str, Any]:
    """A topic pushed to a function, dead-lettered to a subscribed topic, and the grants."""
    function = {
        "name": "f",
        "service_config": [
            {
                "uri": URI,
                "service": SERVICE,
                "environment_variables": {"THREADS": "4"},
                "secret_environment_variables": [
                    {"key": "TOKEN", "secret": "token", "version": "latest", "project_id": "p"}
                ],
            }
        ],
        "build_config": [{"environment_variables": None}],
    }
    push = {
        "name": "push",
        "topic": "projects/p/topics/main",
        "push_config": [
            {
                "push_endpoint": URI,
                "oidc_token": [
                    {"audience": URI, "service_account_email": "push@p.iam.gserviceaccount.com"}
                ],
            }
        ],
        "dead_letter_policy": [
            {"dead_letter_topic": "projects/p/topics/dl", "max_delivery_attempts": 10}
        ],
    }
    return {
        "resource_changes": [
            change(
                "google_pubsub_topic.main",
                "google_pubsub_topic",
                {"id": "projects/p/topics/main", "name": "main"},
            ),
            change(
                "google_pubsub_topic.dl",
                "google_pubsub_topic",
                {"id": "projects/p/topics/dl", "name": "dl"},
            ),
            change(
                "google_cloudfunctions2_function.f", "google_cloudfunctions2_function", function
            ),
            change(
                "google_service_account.push",
                "google_service_account",
                {"email": "push@p.iam.gserviceaccount.com"},
            ),
            change(
                "google_secret_manager_secret.token",
                "google_secret_manager_secret",
                {"secret_id": "token"},
            ),
            change("google_pubsub_subscription.push", "google_pubsub_subscription", push),
            change(
                "google_pubsub_subscription.dl",
                "google_pubsub_subscription",
                {"name": "dl", "topic": "projects/p/topics/dl"},
            ),
            change(
                "google_pubsub_topic_iam_member.dl",
                "google_pubsub_topic_iam_member",
                {
                    "topic": "projects/p/topics/dl",
                    "role": "roles/pubsub.publisher",
                    "member": AGENT,
                },
            ),
            change(
                "google_pubsub_subscription_iam_member.push",
                "google_pubsub_subscription_iam_member",
                {"subscription": "push", "role": "roles/pubsub.subscriber", "member": AGENT},
            ),
            change(
                "google_cloud_run_v2_service_iam_member.public",
                "google_cloud_run_v2_service_iam_member",
                {"name": SERVICE, "role": "roles/run.invoker", "member": "allUsers"},
            ),
        ]
    }


def find(data: dict[str, Any], address: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in data["resource_changes"] if c["address"] == address)[
        "change"
    ]["after"]
    return found


def test_a_sound_pipeline_reads_as_wired() -> None:
    plan = checks.Plan(pipeline())
    assert checks.pushes(plan) == [
        checks.Push(
            "google_pubsub_subscription.push",
            "google_cloudfunctions2_function.f",
            "google_cloudfunctions2_function.f",
            "google_service_account.push",
        )
    ]
    assert checks.dead_letter_problems(plan) == []
    assert checks.dead_letter_topics(plan) == {"google_pubsub_topic.dl"}
    assert checks.roles_of(plan, AGENT) == {
        ("roles/pubsub.publisher", "google_pubsub_topic.dl"),
        ("roles/pubsub.subscriber", "google_pubsub_subscription.push"),
    }
    assert checks.public_grants(plan) == [
        checks.Grant(
            "google_cloud_run_v2_service_iam_member.public",
            "roles/run.invoker",
            "allUsers",
            "google_cloudfunctions2_function.f",
        )
    ]
    assert checks.mentioning(plan, "allUsers") == ["google_cloud_run_v2_service_iam_member.public"]
    assert checks.secret_environment(plan) == {
        "google_cloudfunctions2_function.f": {"TOKEN": "google_secret_manager_secret.token"}
    }
    assert checks.plain_secret_problems(plan, {"TOKEN"}) == []


def unsubscribed_dead_letters(data: dict[str, Any]) -> None:
    data["resource_changes"] = [
        c for c in data["resource_changes"] if c["address"] != "google_pubsub_subscription.dl"
    ]


def no_dead_letter_policy(data: dict[str, Any]) -> None:
    find(data, "google_pubsub_subscription.push")["dead_letter_policy"] = []


def dead_letters_to_itself(data: dict[str, Any]) -> None:
    find(data, "google_pubsub_subscription.push")["dead_letter_policy"][0]["dead_letter_topic"] = (
        "projects/p/topics/main"
    )


def too_few_attempts(data: dict[str, Any]) -> None:
    find(data, "google_pubsub_subscription.push")["dead_letter_policy"][0][
        "max_delivery_attempts"
    ] = 3


@pytest.mark.parametrize(
    ("breakage", "problem"),
    [
        (
            unsubscribed_dead_letters,
            "google_pubsub_topic.dl (dead letters of google_pubsub_subscription.push)"
            " has no subscription",
        ),
        (no_dead_letter_policy, "google_pubsub_subscription.push has no dead_letter_policy"),
        (dead_letters_to_itself, "google_pubsub_subscription.push dead-letters to its own topic"),
        (too_few_attempts, "google_pubsub_subscription.push: max_delivery_attempts 3"),
    ],
)
def test_dead_letter_problems_are_found(
    breakage: Callable[[dict[str, Any]], None], problem: str
) -> None:
    data = copy.deepcopy(pipeline())
    breakage(data)
    assert checks.dead_letter_problems(checks.Plan(data)) == [problem]


def test_a_push_to_an_unknown_or_other_endpoint_does_not_resolve() -> None:
    data = pipeline()
    push = find(data, "google_pubsub_subscription.push")
    push["push_config"][0]["oidc_token"][0]["audience"] = "https://elsewhere"
    next(c for c in data["resource_changes"] if c["address"] == "google_pubsub_subscription.push")[
        "change"
    ]["after_unknown"] = {"push_config": [{"push_endpoint": True}]}
    (resolved,) = checks.pushes(checks.Plan(data))
    assert (resolved.endpoint, resolved.audience) == (None, None)


def test_secrets_as_plain_values_are_found() -> None:
    data = pipeline()
    config = find(data, "google_cloudfunctions2_function.f")
    config["service_config"][0]["environment_variables"]["TOKEN"] = "s3cret"
    config["build_config"][0]["environment_variables"] = {"TOKEN": "s3cret"}
    config["service_config"][0]["secret_environment_variables"].append(
        {"key": "OTHER", "secret": "nowhere", "version": ""}
    )
    data["resource_changes"].append(
        change(
            "google_secret_manager_secret_version.v",
            "google_secret_manager_secret_version",
            {"secret_data": "x"},
        )
    )
    assert checks.plain_secret_problems(checks.Plan(data), {"TOKEN"}) == [
        "google_cloudfunctions2_function.f: TOKEN is a plain service_config variable",
        "google_cloudfunctions2_function.f: TOKEN is a plain build_config variable",
        "google_cloudfunctions2_function.f: OTHER reads None",
        "google_cloudfunctions2_function.f: OTHER has no version",
        "google_secret_manager_secret_version.v puts a secret value in state",
    ]


def test_public_members_in_a_policy_are_found() -> None:
    data = pipeline()
    policy = {
        "bindings": [{"role": "roles/pubsub.subscriber", "members": ["allAuthenticatedUsers"]}]
    }
    data["resource_changes"].append(
        change(
            "google_pubsub_topic_iam_policy.open",
            "google_pubsub_topic_iam_policy",
            {"topic": "projects/p/topics/main", "policy_data": json.dumps(policy)},
        )
    )
    public = checks.public_grants(checks.Plan(data))
    assert [(g.resource, g.member, g.target) for g in public][-1] == (
        "google_pubsub_topic_iam_policy.open",
        "allAuthenticatedUsers",
        "google_pubsub_topic.main",
    )


def test_deleted_resources_are_not_deployed() -> None:
    data = pipeline()
    data["resource_changes"][0]["change"]["actions"] = ["delete"]
    assert "google_pubsub_topic.main" not in checks.Plan(data).resources
