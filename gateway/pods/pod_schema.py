"""The Kubernetes Pod schema, compiled once, and a linear walk that checks a manifest against it (pure).

The schema is the one `kubernetes-validate` ships for the Kubernetes version we target (its "strict"
variant: unknown fields are refused, as `kubectl` and `fieldValidation=Strict` do). It uses a handful of
JSON-schema keywords (type, properties, additionalProperties, items, required, enum, $ref, format and
the two `oneOf`s of Quantity and IntOrString); we compile those into `Node`s and walk a manifest with
an explicit stack, instead of running `jsonschema` on it: jsonschema took 1.3 s for a legal 520 KB
manifest and 7 s to list 100,000 errors (docs/decisions/0008-pod-schema-walk.md). The walk also
applies what the schema leaves to Go's decoder: integers within int32/int64, no float where an
integer goes, valid Unicode. `Rule`s keyed by definition name add the API server's own checks.

Descriptions never quote more than a few dozen characters of the caller's input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

from gateway.errors import FieldViolation
from gateway.placement.quantity import parse_quantity

KUBERNETES_VERSION = "1.37.0"  # the schema set of kubernetes-validate; also the simulator's (gateway/sim/validation.py)
SCHEMA_SET = f"v{KUBERNETES_VERSION}-local-strict"
POD_DEFINITION = "io.k8s.api.core.v1.Pod"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
MAX_PROBLEMS = 1000  # a walk stops here; the status shows the first few and counts the rest
INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_SHOWN = 40
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII)

class Key(str):
    """A map key in a path (nodeSelector, resources.requests, labels): shown as [key], as Kubernetes does."""

    __slots__ = ()


Path = tuple[str | int, ...]
Add = Callable[[Path, str], None]
Rule = Callable[[Mapping[str, Any], Path, Add], None]
Item = tuple[Any, "Node", Path]  # a value, the schema it must meet, and where it is


class Node:
    """One compiled schema: what a value at this place may be. Mutable only while compiling (recursion)."""

    __slots__ = ("additional", "definition", "enum", "format", "items", "kind", "properties", "required", "types")

    def __init__(self, definition: str = "") -> None:
        self.definition = definition  # the $defs name this node was compiled from, "" for inline schemas
        self.types: frozenset[str] = frozenset()  # JSON types: object array string integer number boolean null
        self.properties: dict[str, Node] = {}
        self.additional: Node | bool = True  # False: unknown keys refused; True: anything; a Node: each value
        self.items: Node | None = None
        self.required: tuple[str, ...] = ()
        self.enum: tuple[Any, ...] = ()
        self.format = ""
        self.kind = ""  # "quantity" or "int-or-string" for the two oneOf definitions

    def __repr__(self) -> str:
        return f"Node({self.definition or sorted(self.types)})"


_INT32 = Node()
_INT32.format = "int32"  # IntOrString holds an int32


# --- compiling --------------------------------------------------------------------------------------


def _schema_file(name: str) -> Any:
    base = resources.files("kubernetes_validate").joinpath(f"kubernetes-json-schema/{SCHEMA_SET}")
    return json.loads(base.joinpath(name).read_text())


class _Compiler:
    def __init__(self, definitions: Mapping[str, Any]) -> None:
        self._definitions = definitions
        self._compiled: dict[str, Node] = {}

    def definition(self, name: str) -> Node:
        if name not in self._compiled:
            node = self._compiled[name] = Node(name)
            self._fill(node, self._definitions[name])
        return self._compiled[name]

    def schema(self, schema: Mapping[str, Any]) -> Node:
        if "$ref" in schema:
            return self.definition(str(schema["$ref"]).rsplit("/", 1)[-1])
        node = Node()
        self._fill(node, schema)
        return node

    def _fill(self, node: Node, schema: Mapping[str, Any]) -> None:
        if node.definition == QUANTITY:
            node.kind, node.types = "quantity", frozenset({"string", "integer", "number"})
            return
        if node.definition == INT_OR_STRING:
            node.kind, node.types = "int-or-string", frozenset({"string", "integer"})
            return
        if "oneOf" in schema or "anyOf" in schema or "allOf" in schema:
            raise ValueError(f"schema keyword not supported in {node.definition or schema}")
        types = schema.get("type", ())
        node.types = frozenset([types] if isinstance(types, str) else types)
        node.properties = {k: self.schema(v) for k, v in (schema.get("properties") or {}).items()}
        additional = schema.get("additionalProperties", True)
        node.additional = additional if isinstance(additional, bool) else self.schema(additional)
        node.items = self.schema(schema["items"]) if "items" in schema else None
        node.required = tuple(schema.get("required") or ())
        node.enum = tuple(schema.get("enum") or ())
        node.format = str(schema.get("format") or "")


@cache
def pod_root() -> Node:
    """The compiled Pod schema (loaded once per process, ~20 ms)."""
    definitions = _schema_file("_definitions.json")["$defs"]
    compiler = _Compiler(definitions)
    root = compiler.schema(_schema_file("pod-v1.json"))
    root.definition = POD_DEFINITION
    return root


# --- walking ----------------------------------------------------------------------------------------


def field_path(root: str, path: Path) -> str:
    out = root
    for part in path:
        out += f"[{part}]" if isinstance(part, int | Key) else f".{part}"
    return out


def shown(value: Any) -> str:
    """A caller's value in a description: its repr, clipped (a list or object by its size only)."""
    if isinstance(value, dict | list):
        return f"{json_type(value)} of {len(value)}"
    if isinstance(value, str) and len(value) > _SHOWN:
        return repr(value[:_SHOWN]) + f"... ({len(value)} characters)"
    text = str(value) if isinstance(value, Decimal) else repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


# The JSON type of a decoded value by its exact Python type, looked up (a chain of isinstance calls was
# the walk's largest cost); subclasses and other types go through `json_type`'s checks.
_KINDS: dict[type, str] = {
    type(None): "null", bool: "boolean", int: "integer", float: "number", Decimal: "number",
    str: "string", list: "array", dict: "object",
}  # fmt: skip


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _wanted(types: frozenset[str]) -> str:
    names = {"object": "an object", "array": "a list", "string": "a string", "integer": "an integer",
             "number": "a number", "boolean": "true or false"}  # fmt: skip
    return " or ".join(names[t] for t in sorted(types) if t in names) or "nothing"


def _bad_unicode(text: str) -> bool:
    """Lone surrogates ("\\ud800" in JSON) decode in Python but are not Unicode text."""
    if text.isascii():
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def _quantity_problem(value: Any) -> str:
    try:
        parse_quantity(value)
    except ValueError as e:
        return str(e)[:300]
    return ""


def _scalar_problem(value: Any, kind: str, node: Node) -> str:
    if node.kind == "quantity":
        return _quantity_problem(value)
    if node.kind == "int-or-string" and kind == "integer":
        node = _INT32
    if kind == "string":
        if _bad_unicode(value):
            return "is not valid Unicode (a lone surrogate)"
        if node.format == "date-time" and not _RFC3339.fullmatch(value):
            return f"must be an RFC 3339 time, e.g. 2026-01-02T15:04:05Z, got {shown(value)}"
    if kind == "integer":
        low, high = INT_RANGES.get(node.format, INT_RANGES["int64"])
        if not low <= value <= high:
            return f"must be within {node.format or 'int64'} ({low}..{high}), got {shown(value)}"
    if node.enum and value not in node.enum:
        return f"must be one of {', '.join(map(repr, node.enum))}, got {shown(value)}"
    return ""


def _check_object(value: dict[str, Any], node: Node, path: Path, add: Add, push: Callable[[Item], None]) -> None:
    for name in reversed(node.required):
        if name not in value:
            add((*path, name), "required")
    properties, additional = node.properties, node.additional
    for key, child in reversed(value.items()):  # reversed onto the stack: problems come in document order
        if not key.isascii() and _bad_unicode(key):
            add(path, "a key is not valid Unicode (a lone surrogate)")
            continue
        sub = properties.get(key)
        if sub is not None:
            push((child, sub, (*path, key)))
        elif additional is False:
            add((*path, key), "unknown field")
        elif additional is not True:
            push((child, additional, (*path, Key(key))))


def walk(value: Any, root: Node, rules: Mapping[str, Rule] | None = None) -> list[tuple[Path, str]]:
    """Every problem of `value` against `root` as (path, description), at most MAX_PROBLEMS; linear in size.

    A `rule` runs on each object that the schema accepted at a node compiled from its definition name.
    """
    problems: list[tuple[Path, str]] = []

    def add(path: Path, description: str) -> None:
        if len(problems) < MAX_PROBLEMS:
            problems.append((path, description))

    stack: list[Item] = [(value, root, ())]
    push, pop, kinds = stack.append, stack.pop, _KINDS
    while stack and len(problems) < MAX_PROBLEMS:
        item, node, path = pop()
        kind = kinds.get(type(item)) or json_type(item)
        types = node.types
        if kind not in types and not (kind == "integer" and "number" in types):
            if kind != "null" or not node.kind:
                add(path, _type_problem(node, kind, item))
            continue  # Kubernetes reads null as "not set" (a null Quantity as zero)
        if kind == "object":
            _check_object(item, node, path, add, push)
            rule = rules.get(node.definition) if rules and node.definition else None
            if rule is not None:
                rule(item, path, add)
        elif kind == "array":
            if node.items is not None:
                stack.extend((item[i], node.items, (*path, i)) for i in range(len(item) - 1, -1, -1))
        elif kind == "string" and not (node.kind or node.format or node.enum) and item.isascii():
            continue  # a plain string: nothing else to check (the common case, made cheap)
        elif kind != "null" and (problem := _scalar_problem(item, kind, node)):
            add(path, problem)
    if stack:
        problems.append(((), f"more than {MAX_PROBLEMS} problems; fix these first"))
    return problems


def _type_problem(node: Node, kind: str, value: Any) -> str:
    if node.kind == "quantity":
        return f"is not a quantity: a string like 500m or 1Gi, or a number, got {kind}"
    if node.kind == "int-or-string":
        return f"must be an integer or a string, got {kind}"
    if kind == "number" and "integer" in node.types:
        return f"must be an integer, got {shown(value)}"
    return f"must be {_wanted(node.types)}, got {kind}"


def schema_violations(pod: Any, root_field: str, rules: Mapping[str, Rule] | None = None) -> list[FieldViolation]:
    """Every problem of a decoded manifest against the Pod schema (and `rules`), with field paths."""
    found = (FieldViolation(field_path(root_field, path), d) for path, d in walk(pod, pod_root(), rules))
    return list(dict.fromkeys(found))


# --- strict JSON ------------------------------------------------------------------------------------


class NotStrictJSON(ValueError):
    """JSON that Python's decoder accepts but JSON (RFC 8259) or Kubernetes' decoder does not."""


_MAX_INT_CHARS = 20  # "-9223372036854775808": longer is beyond int64 and never a Pod field's value


def _constant(name: str) -> Any:
    raise NotStrictJSON(f"{name} is not a JSON number")


def _integer(text: str) -> int:
    if len(text) > _MAX_INT_CHARS:
        raise NotStrictJSON(f"an integer of {len(text.lstrip('-'))} digits is beyond int64")
    return int(text)


def _float(text: str) -> Decimal:
    """A non-integer number as its exact decimal text: a quantity reads 0.1 as 100m, never 100.000...0055m."""
    return Decimal(text)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise NotStrictJSON(f"duplicate key {shown(duplicate)} in one object")
    return out


def load_strict(raw: str) -> Any:
    """json.loads, refusing NaN, Infinity, duplicate keys and integers beyond int64; other numbers as Decimal.

    Raises json.JSONDecodeError for what is not JSON at all, NotStrictJSON for the rest, RecursionError
    for nesting deeper than the stack.
    """
    return json.loads(
        raw, parse_constant=_constant, parse_int=_integer, parse_float=_float, object_pairs_hook=_object
    )
