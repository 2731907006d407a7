"""`make build`: each function's deployable source in build/<function>/.

A bundle is the function's own directory, the shared/ package, and its requirements with
every transitive dependency pinned (constraints.txt): what Cloud Functions builds.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from tools.topology import FUNCTIONS, ROOT, Function

BUILD_DIR = ROOT / "build"
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache")


def bundle(function: Function, out_dir: Path = BUILD_DIR) -> Path:
    target = out_dir / function.name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(ROOT / "functions" / function.target, target, ignore=_IGNORE)
    shutil.copytree(ROOT / "shared", target / "shared", ignore=_IGNORE)
    shutil.copy2(ROOT / "constraints.txt", target / "constraints.txt")
    requirements = target / "requirements.txt"
    pinned = (
        "\n# Every transitive dependency at the version the tests ran with.\n-c constraints.txt\n"
    )
    requirements.write_text(requirements.read_text() + pinned)
    return target


def main() -> None:
    out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else BUILD_DIR
    for function in FUNCTIONS:
        print(f"built {bundle(function, out_dir)}")


if __name__ == "__main__":
    main()
