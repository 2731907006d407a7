"""Running the project's Python in a fresh interpreter, as a server or a make target would."""

import subprocess
import sys
from collections.abc import Mapping

from tools.topology import ROOT


def run_python(arguments: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
