"""Terraform's values on the wire: cty's MessagePack encoding (pure).

Config, plan and state travel as MessagePack. Two things need the schema's type to read and
write: an unknown value is an extension (kept as received, with any refinements Terraform
added), and a value of an attribute typed `dynamic` travels as [type JSON, value].
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import msgpack

from tools.terraform.schema import DYNAMIC, TypeJson

_UNKNOWN_CODES = (0, 12)  # cty: a plain unknown, and one with refinements


@dataclass(frozen=True)
class Unknown:
    """A value Terraform will know only after apply."""

    code: int = 0
    data: bytes = b"\x00"


@dataclass(frozen=True)
class Dynamic:
    """A value of a `dynamic` attribute, with the concrete type it travels with."""

    type: TypeJson
    value: Value


Value = None | bool | int | float | str | list["Value"] | dict[str, "Value"] | Unknown | Dynamic
UNKNOWN = Unknown()


def _ext_hook(code: int, data: bytes) -> object:
    if code in _UNKNOWN_CODES:
        return Unknown(code, data)
    raise ValueError(f"unexpected MessagePack extension {code}")


def decode(data: bytes, type_: TypeJson) -> Value:
    return _typed(msgpack.unpackb(data, raw=False, ext_hook=_ext_hook), type_)


def _typed(raw: object, type_: TypeJson) -> Value:
    if raw is None or isinstance(raw, Unknown):
        return raw
    if type_ == DYNAMIC:
        if not (isinstance(raw, list) and len(raw) == 2):
            raise ValueError(f"a dynamic value travels as [type, value], got {raw!r}")
        actual: TypeJson = json.loads(raw[0])
        return Dynamic(actual, _typed(raw[1], actual))
    if isinstance(type_, list):
        kind, inner = type_[0], type_[1]
        if kind in ("list", "set") and isinstance(raw, list):
            return [_typed(item, inner) for item in raw]
        if kind == "map" and isinstance(raw, dict):
            return {key: _typed(item, inner) for key, item in raw.items()}
        if kind == "object" and isinstance(raw, dict) and isinstance(inner, dict):
            return {key: _typed(item, inner[key]) for key, item in raw.items()}
        if kind == "tuple" and isinstance(raw, list) and isinstance(inner, list):
            return [_typed(item, element) for item, element in zip(raw, inner, strict=True)]
        raise ValueError(f"a {kind} value expected, got {raw!r}")
    if isinstance(raw, bool | int | float | str):
        return raw
    raise ValueError(f"unexpected value {raw!r} for type {type_!r}")


def encode(value: Value) -> bytes:
    packed: bytes = msgpack.packb(_wire(value), use_bin_type=True)
    return packed


def _wire(value: Value) -> object:
    if isinstance(value, Unknown):
        return msgpack.ExtType(value.code, value.data)
    if isinstance(value, Dynamic):
        return [json.dumps(value.type, separators=(",", ":")).encode(), _wire(value.value)]
    if isinstance(value, list):
        return [_wire(item) for item in value]
    if isinstance(value, dict):
        return {key: _wire(item) for key, item in value.items()}
    return value


def is_known(value: Value) -> bool:
    """True when nothing in the value is unknown."""
    if isinstance(value, Unknown):
        return False
    if isinstance(value, Dynamic):
        return is_known(value.value)
    if isinstance(value, list):
        return all(is_known(item) for item in value)
    if isinstance(value, dict):
        return all(is_known(item) for item in value.values())
    return True


def from_json(data: object, type_: TypeJson) -> Value:
    """A value from Terraform's JSON state form (no unknowns there; dynamic values untyped)."""
    if data is None:
        return None
    if type_ == DYNAMIC:
        return Dynamic(_json_type(data), from_json(data, _json_type(data)))
    if isinstance(type_, list):
        kind, inner = type_[0], type_[1]
        if kind in ("list", "set") and isinstance(data, list):
            return [from_json(item, inner) for item in data]
        if kind == "map" and isinstance(data, dict):
            return {key: from_json(item, inner) for key, item in data.items()}
        if kind == "object" and isinstance(data, dict) and isinstance(inner, dict):
            return {key: from_json(data.get(key), element) for key, element in inner.items()}
        if kind == "tuple" and isinstance(data, list) and isinstance(inner, list):
            return [from_json(item, element) for item, element in zip(data, inner, strict=True)]
        raise ValueError(f"a {kind} value expected, got {data!r}")
    if isinstance(data, bool | int | float | str):
        return data
    raise ValueError(f"unexpected value {data!r} for type {type_!r}")


def _json_type(data: object) -> TypeJson:
    if isinstance(data, bool):
        return "bool"
    if isinstance(data, int | float):
        return "number"
    if isinstance(data, list):
        return ["tuple", [_json_type(item) for item in data]]
    if isinstance(data, dict):
        return ["object", {key: _json_type(item) for key, item in data.items()}]
    return "string"
