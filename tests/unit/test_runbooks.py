"""The alert runbooks have one source: docs/runbooks/, which terraform/monitoring.tf reads
into each alert policy's documentation and docs/deploy-to-google-cloud.md links to."""

from __future__ import annotations

import functools
import re
from collections import Counter
from typing import Any

import hcl2

from tools.topology import ROOT

MONITORING = ROOT / "terraform" / "monitoring.tf"
RUNBOOKS = ROOT / "docs" / "runbooks"
DOCS_PAGE = ROOT / "docs" / "deploy-to-google-cloud.md"
POLICY = "google_monitoring_alert_policy"
# python-hcl2 keeps an expression as its source text: the one form each policy's content takes.
CONTENT = re.compile(
    r'^\$\{join\("\\n", \[templatefile\("\$\{local\.runbooks\}/(?P<file>[^"]+)", '
    r"local\.runbook_values\), local\.runbook\]\)\}$"
)
PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


def _unquoted(text: str) -> str:
    return text[1:-1] if text.startswith('"') and text.endswith('"') else text


@functools.cache
def _parsed() -> dict[str, Any]:
    with MONITORING.open() as source:
        parsed: dict[str, Any] = hcl2.load(source)
    return parsed


def _locals(parsed: dict[str, Any]) -> dict[str, Any]:
    return {name: value for block in parsed["locals"] for name, value in block.items()}


def _policies(parsed: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        _unquoted(name): body
        for block in parsed["resource"]
        for kind, resources in block.items()
        if _unquoted(kind) == POLICY
        for name, body in resources.items()
    }


def _runbook_files_by_policy() -> dict[str, str]:
    """Each alert policy's address -> the runbook file its documentation's content reads."""
    parsed = _parsed()
    webhook_answers = _locals(parsed)["webhook_answers"]
    found = {}
    for name, body in _policies(parsed).items():
        [documentation] = body["documentation"]
        match = CONTENT.match(documentation["content"])
        assert match, f"{name}: documentation must be read from a runbook: {documentation}"
        if match["file"] == "${each.value.runbook}":
            # One policy per webhook answer (for_each over local.webhook_answers).
            assert "local.webhook_answers" in body["for_each"], name
            for key, answer in webhook_answers.items():
                found[f'{name}["{_unquoted(key)}"]'] = _unquoted(answer["runbook"])
        else:
            found[name] = match["file"]
    return found


def test_terraform_reads_the_runbooks_from_docs() -> None:
    assert _unquoted(_locals(_parsed())["runbooks"]) == "${path.module}/../docs/runbooks"
    assert (MONITORING.parent / "../docs/runbooks").resolve() == RUNBOOKS


def test_every_alert_policy_reads_its_own_runbook_and_every_runbook_is_read_once() -> None:
    by_policy = _runbook_files_by_policy()
    assert len(by_policy) >= 7  # the seven alerts, and any added since
    uses = Counter(by_policy.values())
    files = {path.name for path in RUNBOOKS.glob("*.md")}
    assert set(uses) == files, (
        f"read but missing: {sorted(set(uses) - files)}; orphans: {sorted(files - set(uses))}"
    )
    assert [file for file, count in uses.items() if count > 1] == []


def test_every_placeholder_of_a_runbook_is_filled_in_and_every_value_is_used() -> None:
    values = set(_locals(_parsed())["runbook_values"])
    used: set[str] = set()
    for path in sorted(RUNBOOKS.glob("*.md")):
        placeholders = set(PLACEHOLDER.findall(path.read_text()))
        assert placeholders <= values, (path.name, sorted(placeholders - values))
        assert "%{" not in path.read_text()  # directives would not read as Markdown
        used |= placeholders
    assert used == values, sorted(values - used)


def test_the_docs_link_every_runbook() -> None:
    page = DOCS_PAGE.read_text()
    for path in sorted(RUNBOOKS.glob("*.md")):
        assert f"](runbooks/{path.name})" in page, path.name
