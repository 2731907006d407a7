"""What the stub provider answers, as pure functions of the schema and the values (no I/O).

Terraform itself checks names, types, required arguments and nesting against the schema; the
provider's part emulated here is what a plan needs from it:
- validation of the enum values the provider documents (`Possible values: [...]`), with the
  message the real provider gives;
- a plan: every computed attribute left unset becomes unknown, or derived (`derived_values.py`);
- a data source read: computed attributes derived, or null.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from tools.terraform.derived_values import Defaults, derived_value
from tools.terraform.schema import Block, Nesting
from tools.terraform.values import UNKNOWN, Value

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Diagnostic:
    summary: str
    detail: str = ""
    path: Path = ()


def defaults(provider_config: Value) -> Defaults:
    """The provider block's project and region, where known."""
    if not isinstance(provider_config, dict):
        return Defaults()
    project, region = provider_config.get("project"), provider_config.get("region")
    return Defaults(
        project if isinstance(project, str) else None, region if isinstance(region, str) else None
    )


def validate(block: Block, config: Value) -> list[Diagnostic]:
    """Documented enum values, checked as the provider's generated validators do."""
    problems = []
    for path, attribute_name, value, allowed in _enum_values(block, config, ()):
        if isinstance(value, str) and value not in allowed:
            # The SDK names the attribute by its flatmap key and quotes the list like Go's %q.
            key = ".".join(str(step) for step in (*path, attribute_name))
            quoted = "[" + " ".join(json.dumps(item) for item in allowed) + "]"
            problems.append(
                Diagnostic(
                    f"expected {key} to be one of {quoted}, got {value}",
                    path=(*path, attribute_name),
                )
            )
    return problems


def _enum_values(
    block: Block, value: Value, path: Path
) -> Iterator[tuple[Path, str, Value, tuple[str, ...]]]:
    if not isinstance(value, dict):
        return
    for name, attribute in block.attributes.items():
        if attribute.enum:
            # Optional enums also accept "", the API's "unset".
            allowed = attribute.enum + (("",) if attribute.optional else ())
            yield path, name, value.get(name), allowed
    for name, nested in block.blocks.items():
        inner = value.get(name)
        if nested.nesting is Nesting.SINGLE:
            yield from _enum_values(nested.block, inner, (*path, name))
        elif isinstance(inner, list):
            for index, element in enumerate(inner):
                yield from _enum_values(nested.block, element, (*path, name, index))


def plan(kind: str, block: Block, proposed: Value, provider: Defaults) -> Value:
    """The planned new state: the proposal with every unset computed attribute filled."""
    if not isinstance(proposed, dict):
        return proposed  # destroy (null), or wholly unknown

    def derived(path: tuple[str, ...]) -> Value:
        found = derived_value(kind, path, proposed, provider)
        return UNKNOWN if found is None else found

    return _fill(block, proposed, (), derived)


def read(kind: str, block: Block, config: Value, provider: Defaults) -> Value:
    """A data source's state: its config, with computed attributes derived or null."""
    if not isinstance(config, dict):
        return config
    return _fill(
        block, config, (), lambda path: derived_value("data." + kind, path, config, provider)
    )


def _fill(
    block: Block,
    value: Value,
    path: tuple[str, ...],
    derived: Callable[[tuple[str, ...]], Value],
) -> Value:
    if not isinstance(value, dict):
        return value
    filled: dict[str, Value] = dict(value)
    for name, attribute in block.attributes.items():
        if attribute.computed and filled.get(name) is None:
            filled[name] = derived((*path, name))
    for name, nested in block.blocks.items():
        inner = filled.get(name)
        if nested.nesting is Nesting.SINGLE:
            filled[name] = _fill(nested.block, inner, (*path, name), derived)
        elif isinstance(inner, list):
            filled[name] = [_fill(nested.block, item, (*path, name), derived) for item in inner]
    return filled
