"""The real Terraform on a temporary copy of terraform/, with the stub providers attached.

Nothing is written under terraform/ or build/: the copy, its `.terraform`, the functions'
bundles (`../build`, where storage.tf looks) and the zips all live in a temporary directory.
Each stub provider is a child process on a free port; it is stopped by its process id when
the run ends, and stops by itself if the run is killed (its stdin closes).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tools.terraform import wheels

ROOT = wheels.ROOT
SOURCE = ROOT / "terraform"
RUNBOOKS = ROOT / "docs" / "runbooks"  # the alerts' documentation, read from `../docs/runbooks`
TERRAFORM = shutil.which("terraform") or "/usr/local/bin/terraform"
START_TIMEOUT = 60.0  # loading the google schema takes a few seconds on a busy machine
COMMAND_TIMEOUT = 300.0
BUILD_MODULE = "tools.deploy.bundle"  # what `make build` runs
_LOCAL_FILES = shutil.ignore_patterns(
    ".terraform*",
    "*.tfstate*",
    "*tfplan",
    "terraform.tfvars",
    "terraform.tfvars.json",
    "*.auto.tfvars*",
)


def provider_schemas() -> dict[str, Path]:
    """Registry address -> schema JSON, for every pinned binding (downloaded on first use)."""
    found = {}
    for wheel in wheels.ensure_wheels():
        path = wheels.cached_schema(wheel)
        found[f"registry.terraform.io/hashicorp/{wheels.provider_name(path)}"] = path
    return found


@dataclass
class _Started:
    address: str
    process: subprocess.Popen[bytes]
    port: int


@dataclass
class StubProviders:
    """The stub provider processes of one run, and the TF_REATTACH_PROVIDERS that finds them."""

    schemas: Mapping[str, Path]
    log_dir: Path
    cwd: Path  # where relative paths in the config resolve, as for a provider Terraform starts
    _started: list[_Started] = field(default_factory=list)

    def start(self) -> StubProviders:
        try:
            for address, schema in self.schemas.items():
                self._started.append(self._start(address, schema))
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, address: str, schema: Path) -> _Started:
        log = self.log_dir / f"{address.rsplit('/', 1)[-1]}.log"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "tools.terraform.provider", str(schema)],
                cwd=self.cwd,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdin=subprocess.PIPE,  # held open by us: its EOF tells the provider we are gone
                stdout=subprocess.PIPE,
                stderr=stderr,
                start_new_session=True,  # Ctrl-C reaches us, and we stop it in order
            )
        try:
            assert process.stdout is not None
            line = read_line(process.stdout, START_TIMEOUT)
        except (TimeoutError, EOFError) as error:
            _stop(process)
            raise RuntimeError(
                f"stub provider {address} did not start ({error}); see {log}"
            ) from None
        return _Started(address, process, int(json.loads(line)["port"]))

    def log_tails(self, lines: int = 20) -> str:
        """The end of each provider's log (its tracebacks), for an error message."""
        tails = []
        for log in sorted(self.log_dir.glob("*.log")):
            text = log.read_text(errors="replace").strip()
            if text:
                tails.append(f"\n--- {log.name}:\n" + "\n".join(text.splitlines()[-lines:]))
        return "".join(tails)

    @property
    def pids(self) -> list[int]:
        return [started.process.pid for started in self._started]

    def reattach(self) -> str:
        return json.dumps(
            {
                started.address: {
                    "Protocol": "grpc",
                    "ProtocolVersion": 6,
                    "Pid": started.process.pid,
                    "Test": True,  # Terraform neither starts nor kills it
                    "Addr": {"Network": "tcp", "String": f"127.0.0.1:{started.port}"},
                }
                for started in self._started
            }
        )

    def stop(self) -> None:
        while self._started:
            _stop(self._started.pop().process)

    def __enter__(self) -> StubProviders:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def read_line(stream: IO[bytes], timeout: float) -> bytes:
    """One line from a child's stdout, or TimeoutError: the child may hang, never this."""
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while not buffer.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no handshake within {timeout:g}s")
            if selector.select(remaining):
                chunk = os.read(stream.fileno(), 4096)
                if not chunk:
                    raise EOFError("exited before its handshake")
                buffer += chunk
    return buffer


def _stop(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGTERM to this one process id, SIGKILL if it lingers; then reap it."""
    if process.stdin:
        with contextlib.suppress(OSError):
            process.stdin.close()
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
    if process.stdout:
        process.stdout.close()


@dataclass(frozen=True)
class Workspace:
    """A copy of terraform/ at `root/terraform`, its functions' bundles at `root/build`, the
    alerts' runbooks at `root/docs/runbooks`."""

    root: Path
    providers: StubProviders
    module: Path

    @classmethod
    def copy(cls, root: Path, source: Path = SOURCE, build: bool = True) -> Path:
        """Copies the module (and builds the bundles beside it); returns the copy."""
        module = root / "terraform"
        # Local state and variable files stay behind: a run's values are the ones it is given.
        shutil.copytree(source, module, ignore=_LOCAL_FILES)
        shutil.copytree(RUNBOOKS, root / "docs" / "runbooks")
        if build:
            # `make build`'s own code, into the copy's ../build where storage.tf looks.
            subprocess.run(
                [sys.executable, "-m", BUILD_MODULE, str(root / "build")],
                cwd=ROOT,
                check=True,
                capture_output=True,
                timeout=COMMAND_TIMEOUT,
            )
        return module

    @classmethod
    def initialised(cls, root: Path, providers: StubProviders, module: Path) -> Workspace:
        workspace = cls(root, providers, module)
        # Reattached providers are "unmanaged": init installs nothing and asks no registry.
        workspace.terraform("init", "-input=false", "-backend=false")
        workspace.check_pins()
        return workspace

    def variant(self, name: str, source: Path = SOURCE) -> Workspace:
        """Another copy of the module, served by the same providers (for validate)."""
        root = self.root / "variants" / name
        return Workspace.initialised(root, self.providers, Workspace.copy(root, source, False))

    def check_pins(self) -> None:
        """The versions the module pins must be the ones whose schemas are served."""
        listed = self.terraform("providers").stdout
        for address, schema in self.providers.schemas.items():
            served = wheels.provider_version(schema)
            pinned = re.search(rf"provider\[{re.escape(address)}\] (\S+)", listed)
            if pinned is None or pinned.group(1) != served:
                raise PinError(
                    f"{address} must be pinned to exactly {served}, the version whose schema "
                    f"is served, not {pinned and pinned.group(1)}:\n{listed}"
                )

    def environment(self) -> dict[str, str]:
        config = self.root / "terraformrc"
        config.touch()  # an empty CLI config: no warning about a missing one
        return {
            **os.environ,
            "TF_REATTACH_PROVIDERS": self.providers.reattach(),
            "TF_CLI_CONFIG_FILE": str(config),
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "CHECKPOINT_DISABLE": "1",
        }

    def terraform(self, *arguments: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [TERRAFORM, f"-chdir={self.module}", arguments[0], "-no-color", *arguments[1:]],
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        if check and result.returncode != 0:
            raise TerraformError(arguments, result, self.providers.log_tails())
        return result

    def validate(self, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.terraform("validate", check=check)

    def validation(self) -> dict[str, Any]:
        """`terraform validate -json`: `valid`, and diagnostics in Terraform's words, unwrapped."""
        found: dict[str, Any] = json.loads(self.terraform("validate", "-json", check=False).stdout)
        return found

    def plan(
        self,
        var_files: Sequence[Path] = (),
        variables: Mapping[str, str] | None = None,
        name: str = "plan",
    ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
        """`terraform plan`'s output, and the plan as `terraform show -json` gives it."""
        out = self.root / f"{name}.tfplan"
        arguments = [f"-var-file={path.resolve()}" for path in var_files]
        arguments += [f"-var={key}={value}" for key, value in (variables or {}).items()]
        result = self.terraform("plan", "-input=false", "-lock=false", f"-out={out}", *arguments)
        shown = self.terraform("show", "-json", str(out))
        plan: dict[str, Any] = json.loads(shown.stdout)
        return result, plan


class PinError(RuntimeError):
    """terraform/versions.tf pins a provider version other than the schema served."""


class TerraformError(RuntimeError):
    def __init__(
        self, arguments: Sequence[str], result: subprocess.CompletedProcess[str], logs: str = ""
    ) -> None:
        super().__init__(
            f"terraform {' '.join(arguments)} exited {result.returncode}:\n"
            f"{result.stderr}{result.stdout}{logs}"
        )
        self.result = result


@contextlib.contextmanager
def workspace(source: Path = SOURCE, build: bool = True) -> Iterator[Workspace]:
    """A ready workspace (copied, built, providers running, initialised), removed after."""
    schemas = provider_schemas()
    with tempfile.TemporaryDirectory(prefix="terraform-check-") as temporary:
        root = Path(temporary)
        module = Workspace.copy(root, source, build)
        with StubProviders(schemas, root / "logs", cwd=module) as providers:
            yield Workspace.initialised(root, providers, module)
