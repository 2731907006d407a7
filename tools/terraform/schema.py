"""A provider's schema, as Terraform sees it (pure: no I/O).

The model is Terraform's own: blocks of attributes and nested blocks. It is stored in the JSON
form `terraform providers schema -json` prints, so a cached schema reads like the real one.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# A cty type in Terraform's JSON notation: "string", ["list", "string"], ["object", {...}].
TypeJson = str | list["TypeJson"] | dict[str, "TypeJson"]

STRING: TypeJson = "string"
NUMBER: TypeJson = "number"
BOOL: TypeJson = "bool"
DYNAMIC: TypeJson = "dynamic"


def list_of(element: TypeJson) -> TypeJson:
    return ["list", element]


def set_of(element: TypeJson) -> TypeJson:
    return ["set", element]


def map_of(element: TypeJson) -> TypeJson:
    return ["map", element]


def object_of(attributes: Mapping[str, TypeJson]) -> TypeJson:
    return ["object", dict(attributes)]


class Nesting(enum.Enum):
    SINGLE = "single"
    LIST = "list"
    SET = "set"


# Google's generated resources document their enums as `Possible values: ["A", "B"]`.
_POSSIBLE_VALUES = re.compile(r"Possible values: \[([^\]]*)\]")
_QUOTED = re.compile(r'"([^"]*)"')


def documented_enum(description: str) -> tuple[str, ...]:
    """The values an attribute's documentation allows, or () when it lists none."""
    found = _POSSIBLE_VALUES.search(description)
    return tuple(_QUOTED.findall(found.group(1))) if found else ()


@dataclass(frozen=True)
class Attribute:
    type: TypeJson
    required: bool = False
    optional: bool = False
    computed: bool = False
    description: str = ""

    @property
    def enum(self) -> tuple[str, ...]:
        return documented_enum(self.description) if self.type == STRING else ()

    @property
    def computed_only(self) -> bool:
        return self.computed and not self.optional and not self.required


@dataclass(frozen=True)
class NestedBlock:
    nesting: Nesting
    block: Block
    min_items: int = 0
    max_items: int = 0


@dataclass(frozen=True)
class Block:
    attributes: Mapping[str, Attribute] = field(default_factory=dict)
    blocks: Mapping[str, NestedBlock] = field(default_factory=dict)
    description: str = ""

    def implied_type(self) -> TypeJson:
        """The object type Terraform gives a block's values (config, plan and state)."""
        types = {name: attribute.type for name, attribute in self.attributes.items()}
        for name, nested in self.blocks.items():
            element = nested.block.implied_type()
            if nested.nesting is Nesting.SINGLE:
                types[name] = element
            elif nested.nesting is Nesting.SET:
                types[name] = set_of(element)
            else:
                types[name] = list_of(element)
        return object_of(types)


@dataclass(frozen=True)
class ProviderSchema:
    name: str  # the local name: "google"
    version: str  # the provider release the schema belongs to: "7.31.0"
    provider: Block
    resources: Mapping[str, Block]
    data_sources: Mapping[str, Block]


# The JSON form of `terraform providers schema -json`, one provider's part of it.


def block_to_json(block: Block) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for name, attribute in sorted(block.attributes.items()):
        entry: dict[str, Any] = {"type": attribute.type}
        if attribute.description:
            entry["description"] = attribute.description
        for flag in ("required", "optional", "computed"):
            if getattr(attribute, flag):
                entry[flag] = True
        attributes[name] = entry
    blocks: dict[str, Any] = {}
    for name, nested in sorted(block.blocks.items()):
        entry = {"nesting_mode": nested.nesting.value, "block": block_to_json(nested.block)}
        if nested.min_items:
            entry["min_items"] = nested.min_items
        if nested.max_items:
            entry["max_items"] = nested.max_items
        blocks[name] = entry
    found: dict[str, Any] = {}
    if attributes:
        found["attributes"] = attributes
    if blocks:
        found["block_types"] = blocks
    if block.description:
        found["description"] = block.description
    return found


def block_from_json(data: Mapping[str, Any]) -> Block:
    attributes = {
        name: Attribute(
            type=entry["type"],
            required=entry.get("required", False),
            optional=entry.get("optional", False),
            computed=entry.get("computed", False),
            description=entry.get("description", ""),
        )
        for name, entry in data.get("attributes", {}).items()
    }
    blocks = {
        name: NestedBlock(
            nesting=Nesting(entry["nesting_mode"]),
            block=block_from_json(entry["block"]),
            min_items=entry.get("min_items", 0),
            max_items=entry.get("max_items", 0),
        )
        for name, entry in data.get("block_types", {}).items()
    }
    return Block(attributes, blocks, data.get("description", ""))


def to_json(schema: ProviderSchema) -> dict[str, Any]:
    return {
        "name": schema.name,
        "version": schema.version,
        "provider": {"version": 0, "block": block_to_json(schema.provider)},
        "resource_schemas": {
            name: {"version": 0, "block": block_to_json(block)}
            for name, block in sorted(schema.resources.items())
        },
        "data_source_schemas": {
            name: {"version": 0, "block": block_to_json(block)}
            for name, block in sorted(schema.data_sources.items())
        },
    }


def from_json(data: Mapping[str, Any]) -> ProviderSchema:
    return ProviderSchema(
        name=data["name"],
        version=data["version"],
        provider=block_from_json(data["provider"]["block"]),
        resources={
            name: block_from_json(entry["block"])
            for name, entry in data["resource_schemas"].items()
        },
        data_sources={
            name: block_from_json(entry["block"])
            for name, entry in data["data_source_schemas"].items()
        },
    )
