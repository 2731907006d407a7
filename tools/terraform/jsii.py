"""A provider schema from its CDK binding: the jsii assembly, and the compiled JavaScript beside it.

Pure: it takes the parsed assembly and the JavaScript text, and returns a `ProviderSchema`.

What the binding generator (cdktf / cdktn) writes, and so what this reads:
- each resource, data source and the provider is a class whose docs say `Represents a
  {@link URL google_pubsub_topic}`; its initializer's `config` struct lists the arguments;
- an argument is required unless the struct marks it optional; a struct-typed argument is a
  nested block (an array of structs: a list or set block; one struct: at most one block, or a
  `single` block when its `...Input` getter also accepts an IResolvable, as `timeouts` does);
- what the class offers as a getter but the config struct lacks is a computed attribute;
- each argument's documentation links the Registry page `...#attribute_name`, which gives
  Terraform's own name. Getters carry no such link, and camelCase does not round-trip
  (`md5hash` becomes `md5Hash`, `build` becomes `buildAttribute`), so their names, and which
  collections are sets, come from the compiled getters: `this.getStringAttribute('md5hash')`,
  `Fn.tolist(...)`, `new XList(this, "name", wrapsSet)`.

The assembly does not say which optional arguments the provider also computes, nor which are
sensitive: every optional argument is Optional here, and the SDK's `id` is Optional+Computed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tools.terraform.schema import (
    BOOL,
    DYNAMIC,
    NUMBER,
    STRING,
    Attribute,
    Block,
    NestedBlock,
    Nesting,
    ProviderSchema,
    TypeJson,
    list_of,
    map_of,
    object_of,
    set_of,
)


@dataclass(frozen=True)
class JsMember:
    """What a class's compiled getter says about one attribute: its name and whether a set."""

    name: str
    is_set: bool = False


JsMembers = Mapping[str, Mapping[str, JsMember]]  # class name -> camelCase member -> facts

_CLASS = re.compile(r"^class (\w+) extends ", re.MULTILINE)
_GETTER = re.compile(
    r"get (\w+)\(\) \{\s*return ([\w.]+\.tolist\()?"
    r"this\.(?:get\w+Attribute|interpolationForAttribute)\('([^']+)'\)"
)
_FIELD = re.compile(r"this\._(\w+) = new [\w.]+\(this, \"([^\"]+)\"(?:, (true|false))?\)")


def js_members(sources: Iterable[str]) -> dict[str, dict[str, JsMember]]:
    """Per class, each getter's Terraform attribute name, from the binding's compiled code."""
    found: dict[str, dict[str, JsMember]] = {}
    for source in sources:
        starts = list(_CLASS.finditer(source))
        for index, start in enumerate(starts):
            end = starts[index + 1].start() if index + 1 < len(starts) else len(source)
            body = source[start.end() : end]
            members = found.setdefault(start.group(1), {})
            for getter in _GETTER.finditer(body):
                members[getter.group(1)] = JsMember(getter.group(3), bool(getter.group(2)))
            for created in _FIELD.finditer(body):
                members[created.group(1)] = JsMember(created.group(2), created.group(3) == "true")
    return found


_REPRESENTS = re.compile(r"\{@link (\S+) ([\w-]+)\}")
_REGISTRY_LINK = re.compile(r"\s*Docs at Terraform Registry: \{@link [^}]*\}\.?")
_ANCHOR = re.compile(r"\{@link https://registry\.terraform\.io/\S*#([\w-]+) ")
_PROVIDER_PAGE = re.compile(r"registry\.terraform\.io/providers/[\w-]+/([\w-]+)/([\w.-]+)/docs")
_CDK_ID_NOTE = "Please be aware that the id field is automatically added"
_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])([A-Z])")
_KINDS = {
    "TerraformResource": "resource",
    "TerraformDataSource": "data",
    "TerraformProvider": "provider",
}
_MAPS: dict[str, TypeJson] = {
    "StringMap": map_of(STRING),
    "NumberMap": map_of(NUMBER),
    "BooleanMap": map_of(BOOL),
    "AnyMap": map_of(DYNAMIC),
    "StringMapList": list_of(map_of(STRING)),
    "NumberMapList": list_of(map_of(NUMBER)),
    "BooleanMapList": list_of(map_of(BOOL)),
    "AnyMapList": list_of(map_of(DYNAMIC)),
}


def _snake(camel: str) -> str:
    return _CAMEL_HUMP.sub(lambda hump: "_" + hump.group(1).lower(), camel)


def _description(docs: Mapping[str, Any]) -> str:
    parts = (_REGISTRY_LINK.sub("", docs.get(key, "")).strip() for key in ("summary", "remarks"))
    text = " ".join(part for part in parts if part)
    return "" if text.startswith(_CDK_ID_NOTE) else text  # the binding's note, not the provider's


def _anchor(docs: Mapping[str, Any]) -> str | None:
    for key in ("remarks", "summary"):
        found = _ANCHOR.search(docs.get(key, ""))
        if found:
            return found.group(1)
    return None


def _short(fqn: str) -> str:
    return fqn.rsplit(".", 1)[-1]


class _Converter:
    def __init__(self, assembly: Mapping[str, Any], js: JsMembers) -> None:
        self._types: Mapping[str, Any] = assembly["types"]
        self._js = js

    def schema(self) -> ProviderSchema:
        provider: Block | None = None
        name = version = ""
        resources: dict[str, Block] = {}
        data_sources: dict[str, Block] = {}
        for fqn, jsii_type in self._types.items():
            kind = _KINDS.get(_short(jsii_type.get("base", "")))
            if jsii_type.get("kind") != "class" or kind is None:
                continue
            summary = jsii_type.get("docs", {}).get("summary", "")
            represents = _REPRESENTS.search(summary)
            if represents is None:
                raise ValueError(f"{fqn}: no Terraform type name in its docs: {summary!r}")
            block = self._block(self._config_struct(jsii_type), fqn, top_level=True)
            if kind == "resource":
                resources[represents.group(2)] = block
            elif kind == "data":
                data_sources[represents.group(2)] = block
            else:
                page = _PROVIDER_PAGE.search(represents.group(1))
                if page is None:
                    raise ValueError(f"{fqn}: no provider name and version in {summary!r}")
                name, version = page.group(1), page.group(2)
                # `alias` is Terraform's meta-argument, which the binding adds to the config.
                provider = Block(
                    {k: v for k, v in block.attributes.items() if k != "alias"}, block.blocks
                )
        if provider is None:
            raise ValueError("the assembly holds no provider class")
        return ProviderSchema(name, version, provider, resources, data_sources)

    def _config_struct(self, jsii_type: Mapping[str, Any]) -> str:
        for parameter in jsii_type["initializer"]["parameters"]:
            if parameter["name"] == "config":
                fqn: str = parameter["type"]["fqn"]
                return fqn
        raise ValueError(f"{jsii_type['fqn']}: initializer takes no config")

    def _properties(self, fqn: str) -> list[Mapping[str, Any]]:
        """A struct's properties with those of the structs it extends (within the assembly)."""
        jsii_type = self._types[fqn]
        found = list(jsii_type.get("properties", []))
        for parent in jsii_type.get("interfaces", []):
            if parent in self._types:
                found.extend(self._properties(parent))
        return found

    def _block(self, struct: str, owner: str, top_level: bool = False) -> Block:
        """The block a config struct describes; `owner` is the class with its getters."""
        owner_type = self._types.get(owner, {})
        getters = {p["name"]: p for p in owner_type.get("properties", []) if not p.get("static")}
        members = self._js.get(_short(owner), {})
        attributes: dict[str, Attribute] = {}
        blocks: dict[str, NestedBlock] = {}
        arguments = set()
        for prop in self._properties(struct):
            camel = prop["name"]
            arguments.add(camel)
            member = members.get(camel)
            name = _anchor(prop["docs"]) or (member.name if member else _snake(camel))
            is_set = bool(member and member.is_set)
            required = not prop.get("optional", False)
            element = self._struct_element(prop["type"])
            if element is not None:
                element_fqn, many = element
                nested = self._block(element_fqn, element_fqn + "OutputReference")
                if many:
                    nesting, max_items = (Nesting.SET if is_set else Nesting.LIST), 0
                elif self._accepts_resolvable(getters.get(camel + "Input")):
                    nesting, max_items = Nesting.SINGLE, 0
                else:
                    nesting, max_items = Nesting.LIST, 1
                blocks[name] = NestedBlock(nesting, nested, int(required), max_items)
                continue
            attributes[name] = Attribute(
                type=self._argument_type(prop["type"], is_set),
                required=required,
                optional=not required,
                # SDKv2 adds `id` to every resource: settable, and computed when unset.
                computed=top_level and name == "id" and not required,
                description=_description(prop["docs"]),
            )
        for camel, getter in getters.items():
            if camel in arguments or camel.endswith("Input") or camel == "internalValue":
                continue
            member = members.get(camel)
            name = member.name if member else _snake(camel)
            if name in attributes or name in blocks:
                continue
            attributes[name] = Attribute(
                type=self._computed_type(getter["type"], bool(member and member.is_set)),
                computed=True,
                description=_description(getter.get("docs", {})),
            )
        return Block(attributes, blocks)

    def _struct_element(self, jsii: Mapping[str, Any]) -> tuple[str, bool] | None:
        """(struct fqn, many) when a config property holds one struct or an array of them."""
        if "union" in jsii:
            for member in jsii["union"]["types"]:
                found = self._struct_element(member)
                if found is not None:
                    return found
            return None
        if "collection" in jsii and jsii["collection"]["kind"] == "array":
            inner = self._struct_element(jsii["collection"]["elementtype"])
            return (inner[0], True) if inner else None
        fqn = jsii.get("fqn")
        if isinstance(fqn, str) and self._types.get(fqn, {}).get("datatype"):
            return fqn, False
        return None

    @staticmethod
    def _accepts_resolvable(getter: Mapping[str, Any] | None) -> bool:
        if getter is None or "union" not in getter["type"]:
            return False
        return any(_is_resolvable(member) for member in getter["type"]["union"]["types"])

    def _argument_type(self, jsii: Mapping[str, Any], is_set: bool) -> TypeJson:
        primitive = jsii.get("primitive")
        if primitive is not None:
            return {"string": STRING, "number": NUMBER, "boolean": BOOL}.get(primitive, DYNAMIC)
        if "union" in jsii:
            # `boolean | IResolvable`, `IResolvable | string[]`: the IResolvable is the CDK's
            # escape hatch for expressions, not part of the Terraform type.
            concrete = [t for t in jsii["union"]["types"] if not _is_resolvable(t)]
            return self._argument_type(concrete[0], is_set) if len(concrete) == 1 else DYNAMIC
        if "collection" in jsii:
            element = self._argument_type(jsii["collection"]["elementtype"], False)
            if jsii["collection"]["kind"] == "map":
                return map_of(element)
            return set_of(element) if is_set else list_of(element)
        return DYNAMIC

    def _computed_type(self, jsii: Mapping[str, Any], is_set: bool) -> TypeJson:
        fqn = jsii.get("fqn")
        if fqn is None:
            return self._argument_type(jsii, is_set)
        if _is_resolvable(jsii):
            return BOOL  # the binding's getBooleanAttribute() returns an IResolvable
        if _short(fqn) in _MAPS and fqn not in self._types:
            return _MAPS[_short(fqn)]
        jsii_type = self._types.get(fqn)
        if jsii_type is None:
            return DYNAMIC
        base = _short(jsii_type.get("base", ""))
        if base == "ComplexObject":
            return self._computed_object(fqn)
        if base in ("ComplexList", "ComplexMap"):
            element = self._computed_object(self._element_class(jsii_type))
            if base == "ComplexMap":
                return map_of(element)
            return set_of(element) if is_set else list_of(element)
        return DYNAMIC

    def _element_class(self, collection: Mapping[str, Any]) -> str:
        for method in collection.get("methods", []):
            if method["name"] == "get":
                fqn: str = method["returns"]["type"]["fqn"]
                return fqn
        raise ValueError(f"{collection['fqn']}: no get() to tell its elements")

    def _computed_object(self, fqn: str) -> TypeJson:
        """A computed nested object: every getter of its output reference class."""
        members = self._js.get(_short(fqn), {})
        fields: dict[str, TypeJson] = {}
        for getter in self._types[fqn].get("properties", []):
            camel = getter["name"]
            if getter.get("static") or camel.endswith("Input") or camel == "internalValue":
                continue
            member = members.get(camel)
            name = member.name if member else _snake(camel)
            fields[name] = self._computed_type(getter["type"], bool(member and member.is_set))
        return object_of(fields)


def _is_resolvable(jsii: Mapping[str, Any]) -> bool:
    return jsii.get("fqn") in ("cdktn.IResolvable", "cdktf.IResolvable")


def provider_schema(assembly: Mapping[str, Any], js: JsMembers) -> ProviderSchema:
    """Every resource, data source and the provider's own block, from one binding."""
    return _Converter(assembly, js).schema()
