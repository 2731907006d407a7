"""`make build`'s bundles hold what their function imports, and nothing else: each, alone on
sys.path, imports its entry point and every provider part its function loads at run time."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.deploy import bundle as build
from tools.local.stack import local_provider_env
from tools.standins.google_oauth import ServiceAccountTokens
from tools.topology import FUNCTIONS, Function

# How each function loads providers' parts at run time, through the registry's own calls
# (the webhook's receive steps, the recorder's normalisers, the READ sender's normalisers and
# READ parts, the puller's queue parts), for every registered provider.
LOADS = {
    "webhook": "provider.receiver(Env({}))",
    "record-events": "provider.normaliser",
    "agent-read-receipts": "provider.normaliser, provider.read_receipts",
    "pull-queues": "provider.queue",
}

# Runs in a fresh interpreter: isolated (no PYTHONPATH, no working directory on sys.path),
# with the bundle the only place first-party code can come from.
LOAD_EVERYTHING = """
import json, sys
bundle, loads = sys.argv[1], sys.argv[2]
sys.path.insert(0, bundle)
import main
if loads:
    from shared.core.config import Env
    from shared.providers import REGISTRY
    for provider in REGISTRY:
        eval(loads)
shared = {n: m.__file__ for n, m in sys.modules.items() if n.split(".")[0] in ("shared", "main")}
print(json.dumps(shared))
"""


# Every provider on, and clients that would talk to emulators (none is called).
ENVIRONMENT = {
    "GOOGLE_CLOUD_PROJECT": "bundle-test",
    "FIRESTORE_EMULATOR_HOST": "127.0.0.1:9",
    "PUBSUB_EMULATOR_HOST": "127.0.0.1:9",
    **local_provider_env(),
    "CHATAPP_SMQ_QUEUES": "ChatAppStatus=Alicom-Queue-1-ChatAppStatus",
    "ALIBABA_CLOUD_ACCESS_KEY_ID": "bundle-test-key",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "bundle-test-secret",
}


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A service-account key for the READ sender's Google APIs (it fetches no token here)."""
    path = tmp_path_factory.mktemp("key") / "key.json"
    path.write_text(json.dumps(ServiceAccountTokens().key_info("http://127.0.0.1:9/token")))
    return path


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("build")
    for function in FUNCTIONS:
        build.bundle(function, out)
    return out


def loaded_modules(bundle: Path, function: Function, key_file: Path) -> dict[str, str]:
    """The first-party modules a fresh interpreter holds once the function's entry point and
    its every provider part are loaded from the bundle alone, with their files."""
    result = subprocess.run(
        [sys.executable, "-I", "-c", LOAD_EVERYTHING, str(bundle), LOADS.get(function.name, "")],
        cwd=bundle,
        env={"PATH": os.environ["PATH"], "GOOGLE_APPLICATION_CREDENTIALS": str(key_file)}
        | ENVIRONMENT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    modules: dict[str, str] = json.loads(result.stdout)
    return modules


def bundled(bundle: Path) -> set[str]:
    return {
        ".".join(path.relative_to(bundle).with_suffix("").parts).removesuffix(".__init__")
        for path in (bundle / "shared").rglob("*.py")
    }


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda function: function.name)
def test_a_bundle_alone_loads_its_entry_point_and_every_part_its_function_loads(
    bundles: Path, key_file: Path, function: Function
) -> None:
    bundle = bundles / function.name
    modules = loaded_modules(bundle, function, key_file)
    assert modules["main"] == str(bundle / "main.py")
    assert all(Path(file).is_relative_to(bundle) for file in modules.values())
    assert {name for name in modules if name != "main"} <= bundled(bundle)
    # Of the providers, the bundle holds exactly what the function loads.
    providers = {name for name in bundled(bundle) if name.startswith("shared.providers.")}
    assert providers <= set(modules)


def test_a_bundle_holds_only_what_its_function_imports(bundles: Path) -> None:
    holds = {function.name: bundled(bundles / function.name) for function in FUNCTIONS}
    assert not any(name.startswith("shared.ops") for names in holds.values() for name in names)
    webhook = holds["webhook"]
    assert "shared.providers.bm.webhook" in webhook
    assert "shared.adapters.spool" in webhook  # imported only when a publish fails
    assert not {"shared.providers.bm.normalise", "shared.providers.chatapp.queue"} & webhook
    assert "shared.providers.chatapp.normalise" in holds["record-events"]
    assert "shared.providers.chatapp.webhook" not in holds["record-events"]
    assert "shared.providers.rbm.read_receipts" in holds["agent-read-receipts"]
    assert "shared.providers.chatapp.smq" in holds["pull-queues"]
    assert not any(name.startswith("shared.providers") for name in holds["drain-spool"])
