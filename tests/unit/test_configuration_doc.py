"""docs/configuration.md's table names exactly the environment variables the code reads.

Read statically from shared/ and functions/: every call of an `Env` reading method on `env`
(shared/core/config.py), with its name spelt out, a module constant, a provider's attribute
(derived for every provider in the registry, like `{NAME}_MAX_BODY_BYTES`) or an f-string
whose field is a keyword argument given literally elsewhere (`prefix="RBM"`).
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from shared.core.config import DEFAULT_TOPICS, Env
from shared.providers import REGISTRY
from tools.topology import ROOT

SOURCES = [ROOT / "shared", ROOT / "functions"]
CONFIG = ROOT / "shared" / "core" / "config.py"  # Env itself: how, not what, it reads
DOC = ROOT / "docs" / "configuration.md"
READS = {"present", "required", "optional", "secrets", "names", "flag", "number"}
# Env's own shorthands, and the variables they read.
SHORTHANDS = {"project": {"GOOGLE_CLOUD_PROJECT"}, "topics": set(DEFAULT_TOPICS)}
# Read by Google's client libraries, not by our code; documented all the same.
READ_BY_LIBRARIES = {
    "GOOGLE_APPLICATION_CREDENTIALS",
    "PUBSUB_EMULATOR_HOST",
    "FIRESTORE_EMULATOR_HOST",
}


def _modules() -> Iterator[tuple[Path, ast.Module]]:
    for source in SOURCES:
        for path in sorted(source.rglob("*.py")):
            if path != CONFIG:
                yield path, ast.parse(path.read_text(), str(path))


def _string_constants(modules: list[tuple[Path, ast.Module]]) -> dict[str, set[str]]:
    """Module-level `NAME = "literal"`, and literal keyword arguments (`prefix="RBM"`)."""
    found: dict[str, set[str]] = defaultdict(set)
    for _, tree in modules:
        for node in tree.body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                for target in node.targets:
                    if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                        found[target.id].add(node.value.value)
        for call in ast.walk(tree):
            if isinstance(call, ast.Call):
                for keyword in call.keywords:
                    value = keyword.value
                    if (
                        keyword.arg
                        and isinstance(value, ast.Constant)
                        and isinstance(value.value, str)
                    ):
                        found[keyword.arg].add(value.value)
    return found


def _provider_attribute(name: str) -> set[str]:
    values: set[str] = set()
    for provider in REGISTRY:
        value = getattr(provider, name)
        values.update([value] if isinstance(value, str) else value)
    return values


def _names(argument: ast.expr, constants: dict[str, set[str]], where: str) -> set[str]:
    """The variable names one argument of a reading call stands for."""
    if isinstance(argument, ast.Starred):
        argument = argument.value
    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
        return {argument.value}
    if isinstance(argument, ast.Name) and len(constants.get(argument.id, ())) == 1:
        return constants[argument.id]
    if isinstance(argument, ast.Attribute) and hasattr(REGISTRY[0], argument.attr):
        return _provider_attribute(argument.attr)  # e.g. `*p.switch`, max_body_bytes_variable
    if isinstance(argument, ast.JoinedStr):
        spelt = {""}
        for part in argument.values:
            if isinstance(part, ast.Constant):
                spelt = {text + str(part.value) for text in spelt}
            elif isinstance(part, ast.FormattedValue) and isinstance(part.value, ast.Name):
                fills = constants.get(part.value.id, set())
                assert fills, f"{where}: nothing fills {{{part.value.id}}}"
                spelt = {text + fill for text in spelt for fill in fills}
            else:
                raise AssertionError(f"{where}: cannot read {ast.unparse(argument)}")
        return spelt
    raise AssertionError(
        f"{where}: the variable {ast.unparse(argument)} is not spelt out; teach this test"
    )


def read_by_code() -> set[str]:
    modules = list(_modules())
    constants = _string_constants(modules)
    found: set[str] = set()
    for path, tree in modules:
        for call in ast.walk(tree):
            if not (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and isinstance(call.func.value, ast.Name)
                and call.func.value.id == "env"
            ):
                continue
            where = f"{path.relative_to(ROOT)}:{call.lineno}"
            method = call.func.attr
            if method in SHORTHANDS:
                found |= SHORTHANDS[method]
            elif method in READS:
                # present(*names) reads all its arguments; the others read their first.
                arguments = call.args if method == "present" else call.args[:1]
                for argument in arguments:
                    found |= _names(argument, constants, where)
    return found


def documented() -> set[str]:
    found: set[str] = set()
    for line in DOC.read_text().splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            found.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", first_cell))
    return found


def test_the_configuration_table_names_exactly_what_the_code_reads() -> None:
    code = read_by_code() | READ_BY_LIBRARIES
    doc = documented()
    assert code == doc, (
        f"read but not documented: {sorted(code - doc)}; "
        f"documented but not read: {sorted(doc - code)}"
    )


def test_every_reading_method_of_env_is_known_to_this_test() -> None:
    methods = {name for name in vars(Env) if not name.startswith("_")}
    assert methods == READS | set(SHORTHANDS) | {"problem", "check"}


def test_the_code_reads_the_environment_only_through_env() -> None:
    for path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv"}:
                raise AssertionError(f"{path.relative_to(ROOT)}:{node.lineno} reads os.{node.attr}")
