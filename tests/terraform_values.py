"""terraform/ evaluated for given variables, offline: locals, for_each and arguments.

No terraform binary or provider runs in the unit tests, so this walks python-hcl2's parse
tree of the expressions terraform/ uses (conditionals, for expressions, the functions
below) with Terraform's meaning. What only Google knows after an apply (an account's
email, a topic's id) stays a `Ref` naming the resource instance; an argument the
configuration sets (a database's name) is evaluated, as a plan would know it.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
from lark import Token, Tree

Node = Tree[Token]


@dataclass(frozen=True)
class Ref:
    """A value only known after an apply: `google_pubsub_topic.pipeline["events"].id`."""

    path: str

    def __str__(self) -> str:
        return f"${{{self.path}}}"


@dataclass(frozen=True)
class Instance:
    """One instance of a resource: its key (None without for_each) and its evaluator."""

    kind: str
    name: str
    key: str | None
    config: Terraform

    @property
    def address(self) -> str:
        return f"{self.kind}.{self.name}" + ("" if self.key is None else f'["{self.key}"]')

    def argument(self, *path: str) -> Any:
        """An argument, or one in a nested block (`condition`, `expression`)."""
        node = self.config.resources[(self.kind, self.name)]
        for block in path[:-1]:
            node = _block(node, block)
        expression = _attributes(node).get(path[-1])
        if expression is None:
            return Ref(f"{self.address}.{'.'.join(path)}")
        return self.config.evaluate(expression, self.scope())

    def has_block(self, name: str) -> bool:
        node = self.config.resources[(self.kind, self.name)]
        return any(kid.data == "block" and _block_type(kid) == name for kid in _trees(_body(node)))

    def scope(self) -> dict[str, Any]:
        if self.key is None:
            return {}
        each = self.config.for_each(self.kind, self.name)
        return {"each": {"key": self.key, "value": each[self.key]}}


class Terraform:
    def __init__(self, directory: Path, variables: Mapping[str, Any]) -> None:
        self.directory = directory
        self.resources: dict[tuple[str, str], Node] = {}
        self.data: set[tuple[str, str]] = set()
        self._locals: dict[str, Node] = {}
        self._values: dict[str, Any] = {}
        defaults: dict[str, Any] = {}
        for path in sorted(directory.glob("*.tf")):
            for block in _blocks(hcl2.parses_to_tree(path.read_text())):
                kind, labels = _block_type(block), _labels(block)
                if kind == "locals":
                    self._locals.update(_attributes(block))
                elif kind == "resource":
                    self.resources[(labels[0], labels[1])] = block
                elif kind == "data":
                    self.data.add((labels[0], labels[1]))
                elif kind == "variable":
                    default = _attributes(block).get("default")
                    defaults[labels[0]] = None if default is None else self.evaluate(default, {})
        self.variables = {**defaults, **variables}

    def local(self, name: str) -> Any:
        if name not in self._values:
            self._values[name] = self.evaluate(self._locals[name], {})
        return self._values[name]

    def for_each(self, kind: str, name: str) -> dict[str, Any]:
        expression = _attributes(self.resources[(kind, name)]).get("for_each")
        if expression is None:
            return {}
        value = self.evaluate(expression, {})
        return dict(value) if isinstance(value, Mapping) else {item: item for item in value}

    def instances(self, kind: str, name: str) -> list[Instance]:
        attributes = _attributes(self.resources[(kind, name)])
        if "for_each" in attributes:
            return [Instance(kind, name, key, self) for key in self.for_each(kind, name)]
        if "count" in attributes:
            count = self.evaluate(attributes["count"], {})
            return [Instance(kind, name, None, self)] if count else []  # count is 0 or 1 here
        return [Instance(kind, name, None, self)]

    def all_instances(self) -> Iterator[Instance]:
        for kind, name in self.resources:
            yield from self.instances(kind, name)

    # --- expressions ------------------------------------------------------------------

    def evaluate(self, node: Node, scope: Mapping[str, Any]) -> Any:
        rule = node.data
        kids = _trees(node)
        if rule in ("expr_term", "object_elem_key") and len(kids) == 1:
            return self.evaluate(kids[0], scope)
        if rule == "int_lit":
            return int(_text(node))
        if rule == "literal_value":
            return {"true": True, "false": False, "null": None}[_text(node)]
        if rule == "string":
            return "".join(self._string_part(part, scope) for part in kids)
        if rule == "heredoc_template":
            return _text(node).split("\n", 1)[1].rsplit("\n", 2)[0] + "\n"
        if rule == "heredoc_template_trim":  # <<-EOT: the lines' common indentation removed
            return textwrap.dedent(_text(node).split("\n", 1)[1].rsplit("\n", 2)[0] + "\n")
        if rule == "tuple":
            return [self.evaluate(kid, scope) for kid in kids]
        if rule == "object":
            return {
                self._object_key(key, scope): self.evaluate(value, scope)
                for key, value in (_trees(element) for element in kids)
            }
        if rule == "identifier":
            return self._name(_text(node), scope)
        if rule == "get_attr_expr_term":
            return self._attribute(self.evaluate(kids[0], scope), _text(_trees(kids[1])[0]))
        if rule == "index_expr_term":
            return self._index(
                self.evaluate(kids[0], scope), self.evaluate(_trees(kids[1])[0], scope)
            )
        if rule == "conditional":
            condition, yes, no = kids
            return self.evaluate(yes if self.evaluate(condition, scope) else no, scope)
        if rule == "binary_op":
            left, term = kids
            operator, right = _trees(term)
            return _BINARY[_text(operator)](
                self.evaluate(left, scope), lambda: self.evaluate(right, scope)
            )
        if rule == "unary_op":
            value = self.evaluate(kids[0], scope)
            return (not value) if str(node.children[0]) == "!" else -value
        if rule == "function_call":
            name = _text(kids[0])
            arguments = _trees(kids[1]) if len(kids) > 1 else []
            values = [self.evaluate(argument, scope) for argument in arguments]
            if len(kids) > 1 and any(str(t) == "..." for t in kids[1].children):
                values = [*values[:-1], *values[-1]]  # f(list...) spreads the last argument
            return self._function(name)(*values)
        if rule in ("for_tuple_expr", "for_object_expr"):
            return self._for(node, scope)
        raise NotImplementedError(f"{rule} is not evaluated here: {node.pretty()[:300]}")

    def _object_key(self, key: Node, scope: Mapping[str, Any]) -> str:
        inner = _unwrap(key)
        if inner.data == "identifier":  # `{ function = name }`: a bare word is the key itself
            return _text(inner)
        return str(self.evaluate(key, scope))

    def _string_part(self, part: Node, scope: Mapping[str, Any]) -> str:
        [child] = part.children
        if isinstance(child, Tree):  # an interpolation
            value = self.evaluate(_trees(child)[0], scope)
            return str(value) if not isinstance(value, bool) else str(value).lower()
        return str(json.loads(f'"{child}"'))  # HCL's escapes are JSON's for what terraform/ uses

    def _name(self, name: str, scope: Mapping[str, Any]) -> Any:
        if name in scope:
            return scope[name]
        if name in ("var", "local", "path", "data") or any(k == name for k, _ in self.resources):
            return _Root(name)
        raise NameError(name)

    def _attribute(self, value: Any, name: str) -> Any:
        if isinstance(value, _Root):
            return self._root_attribute(value.name, name)
        if isinstance(value, _Resource):
            return self._resource_attribute(value, name)
        if isinstance(value, Instance):
            return value.argument(name)
        if isinstance(value, Ref):
            return Ref(f"{value.path}.{name}")
        return value[name]

    def _root_attribute(self, root: str, name: str) -> Any:
        if root == "var":
            return self.variables[name]
        if root == "local":
            return self.local(name)
        if root == "path":
            return {"module": str(self.directory)}[name]
        if root == "data":
            return Ref(f"data.{name}")
        return _Resource(root, name)

    def _resource_attribute(self, resource: _Resource, name: str) -> Any:
        if (resource.kind, resource.name) in self.resources and not self._has_instances(resource):
            return Instance(resource.kind, resource.name, None, self).argument(name)
        return Ref(f"{resource.kind}.{resource.name}.{name}")

    def _has_instances(self, resource: _Resource) -> bool:
        return "for_each" in _attributes(self.resources[(resource.kind, resource.name)])

    def _index(self, value: Any, key: Any) -> Any:
        if isinstance(value, _Resource):
            return Instance(value.kind, value.name, key, self)
        if isinstance(value, Ref):
            return Ref(f"{value.path}[{key}]" if isinstance(key, int) else f'{value.path}["{key}"]')
        return value[key]

    def _for(self, node: Node, scope: Mapping[str, Any]) -> Any:
        intro, *rest = _trees(node)
        names = [_text(kid) for kid in _trees(intro)[:-1]]
        collection = self.evaluate(_trees(intro)[-1], scope)
        condition = rest.pop() if rest and rest[-1].data == "for_cond" else None
        grouped = any(str(t) == "..." for t in node.children)
        results: list[tuple[Any, Any]] = []
        for key, item in self._pairs(collection):
            inner = {**scope, **dict(zip(names, [key, item][-len(names) :], strict=True))}
            if condition is not None and not self.evaluate(_trees(condition)[0], inner):
                continue
            if node.data == "for_tuple_expr":
                results.append((None, self.evaluate(rest[0], inner)))
            else:
                results.append((self.evaluate(rest[0], inner), self.evaluate(rest[1], inner)))
        if node.data == "for_tuple_expr":
            return [value for _, value in results]
        if grouped:
            groups: dict[Any, list[Any]] = {}
            for key, value in results:
                groups.setdefault(key, []).append(value)
            return groups
        return dict(results)

    def _pairs(self, collection: Any) -> Iterator[tuple[Any, Any]]:
        if isinstance(collection, _Resource):  # `for name, account in google_x.y : ...`
            for instance in self.instances(collection.kind, collection.name):
                yield instance.key, instance
        elif isinstance(collection, Mapping):
            yield from sorted(collection.items())
        else:
            yield from enumerate(collection)

    def _function(self, name: str) -> Callable[..., Any]:
        def file(path: str) -> str:
            return Path(path).read_text()

        functions: dict[str, Callable[..., Any]] = {
            "concat": lambda *lists: [item for items in lists for item in items],
            "contains": lambda collection, item: item in collection,
            "distinct": lambda items: list(dict.fromkeys(items)),
            "file": file,
            "flatten": lambda items: [i for item in items for i in _flat(item)],
            "join": lambda separator, items: separator.join(items),
            "jsondecode": json.loads,
            "keys": lambda mapping: sorted(mapping),
            "length": len,
            "lookup": lambda mapping, key, default: mapping.get(key, default),
            "merge": lambda *mappings: {k: v for m in mappings for k, v in m.items()},
            "setintersection": lambda first, *others: sorted(
                set(first).intersection(*map(set, others))
            ),
            "sort": sorted,
            "toset": lambda items: sorted(set(items)),
            "tostring": lambda value: str(value).lower() if isinstance(value, bool) else str(value),
            "upper": str.upper,
            "values": lambda mapping: [mapping[key] for key in sorted(mapping)],
        }
        return functions[name]


@dataclass(frozen=True)
class _Root:
    name: str


@dataclass(frozen=True)
class _Resource:
    kind: str
    name: str


def _flat(item: Any) -> list[Any]:
    return [i for part in item for i in _flat(part)] if isinstance(item, list) else [item]


def _trees(node: Node) -> list[Node]:
    return [
        child
        for child in node.children
        if isinstance(child, Tree) and child.data != "new_line_or_comment"
    ]


def _unwrap(node: Node) -> Node:
    kids = _trees(node)
    return (
        _unwrap(kids[0])
        if node.data in ("expr_term", "object_elem_key") and len(kids) == 1
        else node
    )


def _text(node: Node) -> str:
    tokens = [str(child) for child in node.children if isinstance(child, Token)]
    return tokens[0] if tokens else _text(_trees(node)[0])


def _blocks(tree: Node) -> Iterator[Node]:
    body = _trees(tree)[0]
    yield from (kid for kid in _trees(body) if kid.data == "block")


def _block_type(block: Node) -> str:
    return _text(_trees(block)[0])


def _labels(block: Node) -> list[str]:
    return [
        "".join(str(token) for part in _trees(label) for token in part.children)
        for label in _trees(block)
        if label.data == "string"
    ]


def _body(block: Node) -> Node:
    return next(kid for kid in _trees(block) if kid.data == "body")


def _attributes(block: Node) -> dict[str, Node]:
    return {
        _text(_trees(kid)[0]): _trees(kid)[1]
        for kid in _trees(_body(block))
        if kid.data == "attribute"
    }


def _block(block: Node, name: str) -> Node:
    return next(
        kid for kid in _trees(_body(block)) if kid.data == "block" and _block_type(kid) == name
    )


_BINARY: dict[str, Callable[[Any, Callable[[], Any]], Any]] = {
    "==": lambda a, b: a == b(),
    "!=": lambda a, b: a != b(),
    ">": lambda a, b: a > b(),
    "<": lambda a, b: a < b(),
    ">=": lambda a, b: a >= b(),
    "<=": lambda a, b: a <= b(),
    "&&": lambda a, b: a and b(),
    "||": lambda a, b: a or b(),
    "+": lambda a, b: a + b(),
    "-": lambda a, b: a - b(),
}
