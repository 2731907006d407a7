"""mypy checks every provider's parts against the interface (`shared.core.provider`): a part's
loader returns its module typed as the part's Protocol, so a module that lacks a member or
has the wrong signature fails the type check, not a request in production."""

import re
from pathlib import Path

import pytest
from mypy import api

from tools.topology import ROOT

# A provider whose webhook module has no `receiver` and whose normaliser takes too little.
BROKEN_PROVIDER = {
    "__init__.py": """\
from shared.core.provider import Normaliser, WebhookPart


def _webhook() -> WebhookPart:
    from broken_provider import webhook

    return webhook


def _normaliser() -> Normaliser:
    from broken_provider import normalise

    return normalise
""",
    "webhook.py": "def receive() -> None: ...\n",
    "normalise.py": """\
from shared.core.events import Payload


def normalise(raw: bytes) -> list[Payload]:
    return []
""",
}


def test_mypy_fails_a_provider_module_that_does_not_fit_its_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "broken_provider"
    package.mkdir()
    for name, text in BROKEN_PROVIDER.items():
        (package / name).write_text(text)
    monkeypatch.chdir(ROOT)  # the project's configuration: strict, its paths
    monkeypatch.setenv("MYPYPATH", str(tmp_path))

    # A cache of its own: a shared one would report the errors at a previous run's paths.
    cache = str(tmp_path / "mypy_cache")
    report, _, status = api.run(["--cache-dir", cache, str(package), "shared/providers"])

    errors = re.findall(r"^(\S+?):(\d+): error: (.*)$", report, re.MULTILINE)
    init = str(package / "__init__.py")
    mismatch = 'Incompatible return value type (got Module, expected "{}")  [return-value]'
    # Only the broken provider's two loaders: every registered provider fits its parts.
    assert errors == [
        (init, "7", mismatch.format("WebhookPart")),  # its webhook module has no `receiver`
        (init, "13", mismatch.format("Normaliser")),
    ], report
    assert "def normalise(raw: bytes) -> list[Payload]" in report  # the wrong signature, shown
    assert status == 1
