"""`python -m tools.terraform fmt | validate | plan | schemas`: Terraform's own checks, offline.

fmt       terraform fmt -check -diff -recursive terraform (no providers needed)
validate  terraform validate against the real google and archive schemas
plan      terraform plan of a fresh project, with the functions' bundles built;
          --vars FILE (default terraform/terraform.tfvars, else the example), --var k=v,
          --json OUT writes `terraform show -json` of the plan
schemas   download the bindings and convert their schemas (done on first use anyway)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from tools.terraform import run


def _terminate(signum: int, _: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds the `with` blocks, which stop the providers


def _fmt() -> int:
    return subprocess.run(
        [run.TERRAFORM, "fmt", "-check", "-diff", "-recursive", "terraform"],
        cwd=run.ROOT,
        env={**os.environ, "TF_CLI_CONFIG_FILE": os.devnull},  # none needed, none warned about
        check=False,
        timeout=run.COMMAND_TIMEOUT,
    ).returncode


def _default_vars() -> Path:
    own = run.SOURCE / "terraform.tfvars"
    return own if own.exists() else run.SOURCE / "terraform.tfvars.example"


def _show(result: subprocess.CompletedProcess[str]) -> None:
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.terraform", description=__doc__)
    parser.add_argument("command", choices=["fmt", "validate", "plan", "schemas"])
    parser.add_argument("--vars", type=Path, action="append", default=[], metavar="FILE")
    parser.add_argument("--var", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--json", type=Path, metavar="OUT")
    arguments = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()

    if arguments.command == "fmt":
        return _fmt()
    if arguments.command == "schemas":
        for address, path in run.provider_schemas().items():
            print(f"{address}: {path}")
        return 0
    with run.workspace(build=arguments.command == "plan") as workspace:
        if arguments.command == "validate":
            result = workspace.validate(check=False)
            _show(result)
            code = result.returncode
        else:
            variables = dict(item.split("=", 1) for item in arguments.var)
            try:
                result, plan = workspace.plan(arguments.vars or [_default_vars()], variables)
            except run.TerraformError as error:
                _show(error.result)
                return error.result.returncode
            _show(result)
            if arguments.json:
                arguments.json.write_text(json.dumps(plan, indent=1))
            code = 0
    print(f"[{arguments.command}: {time.monotonic() - started:.1f}s]", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
