"""Label and field selectors as kube-apiserver parses them (pure; no I/O).

Label selectors: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x,y)`, `a`, `!a`, `a>1`, `a<1`,
comma-separated (all must hold). Field selectors: `f=v`, `f==v`, `f!=v` over the fields each
resource supports; an unsupported field is a 400 like Kubernetes' "field label not supported".
Parsed selectors are cached: the same selector strings come back on every list and watch.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from gateway.sim.errors import BadRequest

_TOKEN = re.compile(r"\s*(\(|\)|,|!=|==|=|!|<|>|[^\s(),=!<>]+)")
LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        return present and _compare(value or "", self.op, self.values[0])


def _compare(value: str, op: str, bound: str) -> bool:
    try:
        number = int(value)
    except ValueError:
        return False
    return number > int(bound) if op == "gt" else number < int(bound)


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        return all(r.matches(labels or {}) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise BadRequest(f"unable to parse requirement: invalid label selector {text!r}")
        out.append(m.group(1))
        pos = m.end()
    return out


def _check_key(key: str, text: str) -> str:
    if not LABEL_KEY.match(key) or len(key.rsplit("/", 1)[-1]) > 63:
        raise BadRequest(f"unable to parse requirement: invalid label key {key!r} in selector {text!r}")
    return key


def _check_value(value: str, text: str) -> str:
    if not LABEL_VALUE.match(value) or len(value) > 63:
        raise BadRequest(f"unable to parse requirement: invalid label value {value!r} in selector {text!r}")
    return value


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise BadRequest(f"unable to parse requirement: unexpected end of label selector {self.text!r}")
        self.pos += 1
        return tok

    def requirement(self) -> Requirement:
        tok = self.take()
        if tok == "!":
            return Requirement(_check_key(self.take(), self.text), "!")
        key = _check_key(tok, self.text)
        op = self.peek()
        if op is None or op == ",":
            return Requirement(key, "exists")
        self.take()
        if op in ("=", "==", "!="):
            return Requirement(key, "!=" if op == "!=" else "=", (_check_value(self.value_token(), self.text),))
        if op in ("in", "notin"):
            return Requirement(key, op, self.value_set())
        if op in ("<", ">"):
            bound = self.take()
            if not bound.lstrip("-").isdigit():
                raise BadRequest(f"unable to parse requirement: {bound!r} is not an integer in {self.text!r}")
            return Requirement(key, "gt" if op == ">" else "lt", (bound,))
        raise BadRequest(f"unable to parse requirement: unknown operator {op!r} in label selector {self.text!r}")

    def value_token(self) -> str:
        tok = self.peek()
        if tok is None or tok in (",", ")"):
            return ""
        return self.take()

    def value_set(self) -> tuple[str, ...]:
        if self.take() != "(":
            raise BadRequest(f"unable to parse requirement: expected '(' in label selector {self.text!r}")
        values: list[str] = []
        while True:
            tok = self.take()
            if tok == ")":
                break
            if tok == ",":
                continue
            values.append(_check_value(tok, self.text))
        return tuple(values)

    def parse(self) -> LabelSelector:
        requirements: list[Requirement] = []
        while self.peek() is not None:
            requirements.append(self.requirement())
            sep = self.peek()
            if sep is not None and self.take() != ",":
                raise BadRequest(f"unable to parse requirement: expected ',' in label selector {self.text!r}")
        return LabelSelector(tuple(requirements))


@lru_cache(maxsize=512)
def parse_label_selector(text: str) -> LabelSelector:
    if not text.strip():
        return LabelSelector()
    return _Parser(text).parse()


# Field selectors: which dotted paths each resource supports, as kube-apiserver's field label conversions.
_COMMON_FIELDS = ("metadata.name", "metadata.namespace")
SUPPORTED_FIELDS: dict[str, tuple[str, ...]] = {
    "pods": (
        *_COMMON_FIELDS,
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    "events": (
        *_COMMON_FIELDS,
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
    "nodes": (*_COMMON_FIELDS, "spec.unschedulable"),
    "namespaces": (*_COMMON_FIELDS, "status.phase"),
    "secrets": (*_COMMON_FIELDS, "type"),
}


@dataclass(frozen=True)
class FieldRequirement:
    path: tuple[str, ...]
    equal: bool
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return (field_value(obj, self.path) == self.value) == self.equal


def field_value(obj: Mapping[str, Any], path: tuple[str, ...]) -> str:
    node: Any = obj
    for part in path:
        if not isinstance(node, Mapping):
            return ""
        node = node.get(part)
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    if isinstance(node, Mapping):
        return str(node.get("component", ""))
    return str(node)


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(r.matches(obj) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


@lru_cache(maxsize=512)
def parse_field_selector(text: str, resource: str) -> FieldSelector:
    requirements: list[FieldRequirement] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        m = re.fullmatch(r"([^=!]+?)\s*(==|!=|=)\s*(.*)", part)
        if m is None:
            raise BadRequest(f"invalid field selector: {part!r}: expected field=value or field!=value")
        field, op, value = m.group(1), m.group(2), m.group(3).strip()
        supported = SUPPORTED_FIELDS.get(resource, _COMMON_FIELDS)
        if field not in supported:
            raise BadRequest(f"field label not supported: {field} (for {resource}: {', '.join(supported)})")
        requirements.append(FieldRequirement(tuple(field.split(".")), op != "!=", value))
    return FieldSelector(tuple(requirements))


def matcher(resource: str, label_selector: str, field_selector: str) -> Callable[[Mapping[str, Any]], bool] | None:
    """One predicate over an object for both selectors; None when nothing is selected out."""
    labels = parse_label_selector(label_selector)
    fields = parse_field_selector(field_selector, resource)
    if labels.empty and fields.empty:
        return None

    def match(obj: Mapping[str, Any]) -> bool:
        return labels.matches(obj.get("metadata", {}).get("labels")) and fields.matches(obj)

    return match
