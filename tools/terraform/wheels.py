"""The CDK binding wheels that carry the provider schemas: downloaded, read, converted, cached.

The wheels are only read, never installed: installing the google binding costs ~450 MB and
~25 s with its CDK dependencies (~435 MB and ~20 s without them: pip compiles 200 MB of
bindings nobody imports), while `pip download` of the two wheels is ~55 MB and a few seconds.
Converting an assembly takes ~10 s, so its schema is cached under the wheel's content hash.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tools.terraform import jsii
from tools.terraform import schema as schema_module
from tools.terraform.schema import ProviderSchema, from_json, to_json

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements-terraform-schemas.txt"
CACHE = ROOT / ".local" / "terraform"

_PINNED = re.compile(r"^([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+-]+)", re.MULTILINE)


def pinned_wheels(requirements: Path = REQUIREMENTS) -> list[str]:
    """File-name prefixes of the wheels the requirements pin: `cdktn_provider_google-19.0.0-`."""
    return [
        f"{re.sub(r'[-.]+', '_', name).lower()}-{version}-"
        for name, version in _PINNED.findall(requirements.read_text())
    ]


def ensure_wheels(cache: Path = CACHE, requirements: Path = REQUIREMENTS) -> list[Path]:
    """The pinned wheels, downloaded (hash-checked by pip) when missing."""
    directory = cache / "wheels"
    found = _find(directory, pinned_wheels(requirements))
    if None in found:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--only-binary=:all:",
                "--require-hashes",
                "--dest",
                str(directory),
                "--requirement",
                str(requirements),
            ],
            check=True,
            timeout=600,
        )
        found = _find(directory, pinned_wheels(requirements))
    missing = [
        prefix for prefix, path in zip(pinned_wheels(requirements), found, strict=True) if not path
    ]
    if missing:
        raise FileNotFoundError(f"pip download did not bring {missing} into {directory}")
    return [path for path in found if path is not None]


def _find(directory: Path, prefixes: list[str]) -> list[Path | None]:
    wheels = sorted(directory.glob("*.whl")) if directory.is_dir() else []
    return [
        next((wheel for wheel in wheels if wheel.name.lower().startswith(prefix)), None)
        for prefix in prefixes
    ]


def cached_schema(wheel: Path, cache: Path = CACHE) -> Path:
    """The schema JSON of one binding wheel, converted on first use: `google-7.31.0-<hash>.json`.

    The hash covers the wheel and the converter's own code, so a fix to the conversion is
    never hidden by a schema cached before it.
    """
    hashed = hashlib.sha256(wheel.read_bytes())
    for module in (jsii, schema_module):
        hashed.update(Path(str(module.__file__)).read_bytes())
    digest = hashed.hexdigest()[:16]
    directory = cache / "schemas"
    found = sorted(directory.glob(f"*-{digest}.json"))
    if found:
        return found[0]
    schema = schema_from_wheel(wheel)
    target = directory / f"{schema.name}-{schema.version}-{digest}.json"
    directory.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(to_json(schema), separators=(",", ":")))
    partial.replace(target)  # atomic: a concurrent run reads a whole file or none
    for stale in directory.glob(f"{schema.name}-{schema.version}-*.json"):
        if stale != target:
            stale.unlink(missing_ok=True)  # converted by an older converter
    return target


def provider_name(schema_path: Path) -> str:
    """The provider a cached schema belongs to, from its file name."""
    return schema_path.name.split("-")[0]


def provider_version(schema_path: Path) -> str:
    """The provider release a cached schema belongs to, from its file name."""
    return schema_path.name.split("-")[1]


def load_schema(path: Path) -> ProviderSchema:
    return from_json(json.loads(path.read_text()))


def schema_from_wheel(wheel: Path) -> ProviderSchema:
    with zipfile.ZipFile(wheel) as archive:
        bundles = [name for name in archive.namelist() if name.endswith(".jsii.tgz")]
        if len(bundles) != 1:
            raise ValueError(f"{wheel.name}: expected one _jsii/*.jsii.tgz, found {bundles}")
        bundle = archive.read(bundles[0])
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:

        def read(name: str) -> bytes:
            member = tar.extractfile(f"package/{name}")
            if member is None:
                raise FileNotFoundError(name)
            return member.read()

        assembly = read_assembly(read)
        sources = list(_javascript(tar))
    return jsii.provider_schema(assembly, jsii.js_members(sources))


def read_assembly(read: Callable[[str], bytes]) -> dict[str, Any]:
    """`.jsii`, following jsii's redirect to a compressed assembly when it holds one."""
    assembly: dict[str, Any] = json.loads(read(".jsii"))
    if assembly.get("schema") == "jsii/file-redirect":
        data = read(assembly["filename"])
        if assembly.get("compression") == "gzip":
            data = gzip.decompress(data)
        assembly = json.loads(data)
    return assembly


def _javascript(tar: tarfile.TarFile) -> Iterator[str]:
    for member in tar:
        if (
            member.isfile()
            and member.name.startswith("package/lib/")
            and member.name.endswith(".js")
        ):
            extracted = tar.extractfile(member)
            if extracted is not None:
                yield extracted.read().decode()
