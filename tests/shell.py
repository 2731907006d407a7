"""What a shell makes of the files the local tools write."""

import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path


def source_in_bash(path: Path, names: Sequence[str]) -> list[str]:
    """The values of these variables once bash has sourced `path`, as `make replay` does."""
    values = " ".join(f'"${{{name}}}"' for name in names)
    script = f"set -a; . {shlex.quote(str(path))}; set +a; printf '%s\\0' {values}"
    output = subprocess.run(["bash", "-c", script], capture_output=True, check=True).stdout
    return output.decode().split("\0")[:-1]
