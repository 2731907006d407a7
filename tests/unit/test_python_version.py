"""Test what you deploy: .python-version is the one place the Python version is said, and
the functions' runtime, the tools' targets and the Python running these tests follow it."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

from tools.topology import PYTHON_VERSION, ROOT, RUNTIME


def _tracked_text() -> dict[str, str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    found = {}
    for name in listed:
        path = ROOT / name
        if path.is_file() and path.suffix in {".py", ".tf", ".md", ".toml", ".json", ""}:
            try:
                found[name] = path.read_text()
            except UnicodeDecodeError:
                continue
    return found


def test_the_version_is_a_minor_version_and_the_runtime_its_id() -> None:
    assert re.fullmatch(r"3\.\d+", PYTHON_VERSION)
    assert f"python3{PYTHON_VERSION.split('.')[1]}" == RUNTIME


def test_the_tests_run_on_the_deployed_python() -> None:
    assert f"{sys.version_info.major}.{sys.version_info.minor}" == PYTHON_VERSION, (
        "the venv's Python is not .python-version's: `make clean` and run make again"
    )


def test_lint_and_type_check_target_the_deployed_python() -> None:
    tools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]
    assert tools["ruff"]["target-version"] == "py" + PYTHON_VERSION.replace(".", "")
    assert tools["mypy"]["python_version"] == PYTHON_VERSION


def test_make_creates_its_venvs_with_the_deployed_python() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "PYTHON_VERSION := $(shell cat .python-version)" in makefile
    [python] = re.findall(r"^PYTHON \?= (.*)$", makefile, re.MULTILINE)
    assert python.startswith("$(shell command -v python$(PYTHON_VERSION) ")


def test_every_runtime_id_in_the_project_is_the_deployed_one() -> None:
    """Terraform's build_config, `make deploy`'s --runtime (from tools.topology), the docs and
    the tests name no other Cloud Functions Python runtime."""
    named = {
        (name, runtime)
        for name, text in _tracked_text().items()
        for runtime in re.findall(r"\bpython3\d\d\b", text)
        if runtime != RUNTIME
    }
    assert named == set()
    terraform = (ROOT / "terraform" / "functions.tf").read_text()
    assert re.findall(r'runtime\s*=\s*"([^"]+)"', terraform) == [RUNTIME]
