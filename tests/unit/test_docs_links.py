"""tools/docs_links.py, run by `make lint`: broken links and anchors are reported, good ones
are not."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools import docs_links
from tools.topology import ROOT


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


GOOD = {
    "README.md": (
        "# Title\n\nSee [setup](docs/setup.md), [its step](docs/setup.md#step-2-the-secrets),\n"
        "[the `make deploy` part](docs/setup.md#the-make-deploy-command-gen2),"
        " [again](docs/setup.md#notes-1), [a folder](docs/runbooks/)\n"
        "and [here](#title), ![a chart](docs/chart.png), [a site](https://example.com/x#y).\n"
        "\n[ref]: docs/setup.md#notes\n"
    ),
    "docs/setup.md": (
        "# Setup\n\n## Step 2: the secrets\n\n## The `make deploy` command (gen2)\n\n"
        "## Notes\n\n## Notes\n\nBack to [the front](../README.md#title).\n"
        "```sh\n# not a heading, and [not a link](nowhere.md)\n```\n"
        "Code is no link: `[x](nowhere.md)`.\n"
    ),
    "docs/chart.png": "",
    "docs/runbooks/one.md": "Text.\n",
}


def test_good_links_and_anchors_pass(tmp_path: Path) -> None:
    root = _write(tmp_path, GOOD)
    assert docs_links.broken(root) == []
    assert docs_links.main([str(root)]) == 0


def test_a_missing_file_and_a_missing_heading_are_reported_with_their_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _write(
        tmp_path,
        {
            **GOOD,
            "docs/broken.md": (
                "# Broken\n\n[gone](gone.md)\n[no heading](setup.md#step-3)\n"
                "[no own heading](#elsewhere) [ok](setup.md#notes)\n[ref]: ../nope/x.png\n"
            ),
        },
    )
    assert docs_links.broken(root) == [
        "docs/broken.md:3: gone.md (no such file)",
        "docs/broken.md:4: setup.md#step-3 (no such heading)",
        "docs/broken.md:5: #elsewhere (no such heading)",
        "docs/broken.md:6: ../nope/x.png (no such file)",
    ]
    assert docs_links.main([str(root)]) == 1
    assert "4 broken links" in capsys.readouterr().err


def test_the_anchors_are_github_s() -> None:
    assert docs_links.slug("Step 2: the secrets") == "step-2-the-secrets"
    assert docs_links.slug("The `make deploy` command (gen2)") == "the-make-deploy-command-gen2"
    assert docs_links.slug("[Linked](x.md) and snake_case") == "linked-and-snake_case"
    assert docs_links.anchors("# A\n## A\n## A\n") == {"a", "a-1", "a-2"}


def test_the_project_s_own_pages_have_no_broken_link() -> None:
    assert docs_links.broken(ROOT) == []
