"""The pipeline's deployable pieces and how Pub/Sub connects them, from terraform/pipeline.json.

Terraform, `make deploy` and the local stack all read that one file, so they cannot drift.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PIPELINE_FILE = ROOT / "terraform" / "pipeline.json"
# The one place the Python version is said: the functions' runtime on Google Cloud, and what
# `make` lints, type-checks and tests with (tests/unit/test_python_version.py holds the rest
# to it: Terraform, pyproject.toml, the docs).
PYTHON_VERSION = (ROOT / ".python-version").read_text().strip()
RUNTIME = "python" + PYTHON_VERSION.replace(".", "")  # Cloud Functions' runtime id


@dataclass(frozen=True)
class Function:
    name: str  # the deployed function's name, after the prefix
    target: str  # entry point, and directory under functions/
    signature: str  # functions-framework signature type
    settings: dict[str, Any]

    @property
    def source(self) -> str:
        return f"functions/{self.target}/main.py"


@dataclass(frozen=True)
class Subscription:
    id: str
    topic_key: str
    function: str  # the target of the function it pushes to


def load() -> dict[str, Any]:
    pipeline: dict[str, Any] = json.loads(PIPELINE_FILE.read_text())
    return pipeline


_PIPELINE = load()
FUNCTIONS = tuple(
    Function(name, settings["entry_point"], settings["signature"], settings)
    for name, settings in _PIPELINE["functions"].items()
)
_BY_NAME = {function.name: function for function in FUNCTIONS}
WEBHOOK = _BY_NAME["webhook"]
RECORD_EVENTS = _BY_NAME["record-events"]
AGENT_READ_RECEIPTS = _BY_NAME["agent-read-receipts"]
PULL_QUEUES = _BY_NAME["pull-queues"]

SUBSCRIPTIONS = tuple(
    Subscription(sub_id, sub["topic"], _BY_NAME[sub["function"]].target)
    for sub_id, sub in _PIPELINE["subscriptions"].items()
)
