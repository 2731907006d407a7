"""`make build`: each function's deployable source in build/<function>/.

A bundle is the function's own directory, the modules of shared/ it imports, and its
requirements with every transitive dependency pinned (constraints.txt): what Cloud Functions
builds.

Which modules of shared/: those the function's main.py imports, directly or through one
another, wherever the import stands (one made only on a failed publish counts too), with the
packages that hold them. The registry (`shared.providers`) loads a provider's parts by name
when first used, which no import statement shows: a function that reaches the registry gets,
of every registered provider, the parts its kind loads (`PROVIDER_PARTS`: a part is the module
of the provider's package named for it; a provider without that part has nothing to add),
with what they import. An import of a part inside a function body is the registry loading
it, so it is not followed: the parts a function loads are `PROVIDER_PARTS`' say, and the
webhook never carries a normaliser. Nothing else is bundled: no function carries the
operators' tools (`shared/ops`) or another function's adapters.
"""

from __future__ import annotations

import ast
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from tools.topology import (
    AGENT_READ_RECEIPTS,
    FUNCTIONS,
    PULL_QUEUES,
    RECORD_EVENTS,
    ROOT,
    WEBHOOK,
    Function,
)

BUILD_DIR = ROOT / "build"
SHARED = "shared"
REGISTRY = "shared.providers"

# The provider parts each function that reaches the registry loads at run time: the webhook
# the receive steps, the recorder the normalisers, the READ sender the normalisers (it reads
# the events it marks READ) and the READ parts, the puller the queue parts.
PROVIDER_PARTS: dict[str, tuple[str, ...]] = {
    WEBHOOK.name: ("webhook",),
    RECORD_EVENTS.name: ("normalise",),
    AGENT_READ_RECEIPTS.name: ("normalise", "read_receipts"),
    PULL_QUEUES.name: ("queue",),
}
_PART_NAMES = frozenset(part for parts in PROVIDER_PARTS.values() for part in parts)


def bundle(function: Function, out_dir: Path = BUILD_DIR) -> Path:
    target = out_dir / function.name
    shutil.rmtree(target, ignore_errors=True)
    source = ROOT / "functions" / function.target
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for module in shared_modules(function):
        path = module_path(module)
        assert path is not None, module
        copied = target / path.relative_to(ROOT)
        copied.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, copied)
    shutil.copy2(ROOT / "constraints.txt", target / "constraints.txt")
    requirements = target / "requirements.txt"
    pinned = (
        "\n# Every transitive dependency at the version the tests ran with.\n-c constraints.txt\n"
    )
    requirements.write_text(requirements.read_text() + pinned)
    return target


def shared_modules(function: Function) -> list[str]:
    """The dotted names of the modules of shared/ the function's bundle holds."""
    found: set[str] = set()
    pending = list(_imports(ROOT / function.source, package=""))
    while pending:
        module = pending.pop()
        if module in found or module_path(module) is None:
            continue
        found.add(module)
        pending += _imports(_path(module), _package_of(module))
        if module == REGISTRY:
            pending += _provider_parts(PROVIDER_PARTS[function.name])
    return sorted(found)


def module_path(module: str) -> Path | None:
    """The file of a module of shared/ (a package's __init__.py), or None for any other."""
    if module.split(".")[0] != SHARED:
        return None
    base = ROOT.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _path(module: str) -> Path:
    path = module_path(module)
    assert path is not None, module
    return path


def _package_of(module: str) -> str:
    """The package a module's relative imports start from."""
    return module if _path(module).name == "__init__.py" else module.rpartition(".")[0]


def _provider_parts(parts: tuple[str, ...]) -> Iterator[str]:
    for provider in sorted((ROOT / SHARED / "providers").glob("*/__init__.py")):
        for part in parts:
            yield f"{REGISTRY}.{provider.parent.name}.{part}"


def _imports(path: Path, package: str) -> Iterator[str]:
    """Every module an import statement of this file names, with the packages above it."""
    for node, lazy in _import_statements(ast.parse(path.read_text(), str(path))):
        for name in _named(node, package):
            if lazy and _is_part(name):
                continue  # the registry loading a provider's part: PROVIDER_PARTS decides
            parts = name.split(".")
            yield from (".".join(parts[:end]) for end in range(1, len(parts) + 1))


def _is_part(module: str) -> bool:
    """Whether a module is a provider's part: shared.providers.<provider>.<part>."""
    names = module.split(".")
    return len(names) == 4 and ".".join(names[:2]) == REGISTRY and names[3] in _PART_NAMES


def _import_statements(tree: ast.AST) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Each import statement, and whether it stands inside a function body."""

    def walk(node: ast.AST, lazy: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child, lazy
            inside = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            yield from walk(child, inside)

    return walk(tree, lazy=False)


def _named(node: ast.Import | ast.ImportFrom, package: str) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:
        anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join([*anchor, *([base] if base else [])])
    yield base
    # `from package import module` imports that module too.
    yield from (f"{base}.{alias.name}" for alias in node.names if alias.name != "*")


def main() -> None:
    out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else BUILD_DIR
    for function in FUNCTIONS:
        print(f"built {bundle(function, out_dir)}")


if __name__ == "__main__":
    main()
