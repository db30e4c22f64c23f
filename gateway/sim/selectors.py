"""Label and field selectors as kube-apiserver parses them (pure; no I/O).

Label selectors follow apimachinery's labels.Parse: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x,y)`,
`a`, `!a`, `a>1`, `a<1`, comma-separated (all must hold); only space, tab, CR and LF separate tokens;
`()` and empty list items are the empty value; every value must be a label value and Gt/Lt bounds integers
as strconv.ParseInt reads them. Written apart from the gateway's placement/selectors.py; the conformance
table in tests/conformance/ holds both to Kubernetes. Field selectors: `f=v`, `f==v`, `f!=v` over the
fields each resource supports; an unsupported field is a 400 like Kubernetes' "field label not supported".
Parsed selectors are cached: the same selector strings come back on every list and watch.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from gateway.sim.errors import BadRequest

_SPACE = " \t\r\n"
_TOKEN = re.compile(r"[ \t\r\n]*(\(|\)|,|!=|==|=|!|<|>|[^ \t\r\n(),=!<>]+)")
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_PREFIX = re.compile(rf"{_DNS_LABEL}(\.{_DNS_LABEL})*")
_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_INT64 = re.compile(r"[+-]?[0-9]{1,19}")


def label_key_ok(key: str) -> bool:
    """IsQualifiedName: an optional DNS-1123 subdomain prefix (<= 253) and '/', then a name (<= 63)."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _PREFIX.fullmatch(prefix)):
        return False
    return len(name) <= 63 and _NAME.fullmatch(name) is not None


def label_value_ok(value: str) -> bool:
    """IsValidLabelValue: empty, or up to 63 of [A-Za-z0-9._-] starting and ending alphanumeric."""
    return value == "" or (len(value) <= 63 and _NAME.fullmatch(value) is not None)


def parse_int64(text: str) -> int | None:
    """Go's strconv.ParseInt(text, 10, 64): ASCII digits with an optional sign, within int64; else None."""
    if not _INT64.fullmatch(text):
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


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
        return present and compare(value or "", self.op, self.values[0])


def compare(value: str, op: str, bound: str) -> bool:
    """Gt/Lt as Requirement.Matches: both sides must parse as int64, else no match."""
    number, limit = parse_int64(value), parse_int64(bound)
    if number is None or limit is None:
        return False
    return number > limit if op == "gt" else number < limit


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
    text = text.strip(_SPACE)
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise BadRequest(f"unable to parse requirement: invalid label selector {text[:200]!r}")
        out.append(m.group(1))
        pos = m.end()
    return out


def _check_key(key: str, text: str) -> str:
    if not label_key_ok(key):
        raise BadRequest(f"unable to parse requirement: invalid label key {key[:80]!r} in selector {text[:200]!r}")
    return key


def _check_value(value: str, text: str) -> str:
    if not label_value_ok(value):
        raise BadRequest(f"unable to parse requirement: invalid label value {value[:80]!r} in selector {text[:200]!r}")
    return value


_OPERATORS = frozenset({"=", "==", "!=", "in", "notin", "<", ">"})


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
            raise BadRequest(f"unable to parse requirement: unexpected end of label selector {self.text[:200]!r}")
        self.pos += 1
        return tok

    def identifier(self) -> str:
        tok = self.take()
        if tok in ("(", ")", ",", "!=", "==", "=", "!", "<", ">"):
            raise BadRequest(f"unable to parse requirement: found {tok!r}, expected: identifier")
        return tok

    def requirement(self) -> Requirement:
        if self.peek() == "!":
            self.take()
            key = _check_key(self.identifier(), self.text)
            return Requirement(key, "!")
        key = _check_key(self.identifier(), self.text)
        op = self.peek()
        if op is None or op == ",":
            return Requirement(key, "exists")
        if op not in _OPERATORS:
            raise BadRequest(f"unable to parse requirement: unknown operator {op!r} in {self.text[:200]!r}")
        self.take()
        if op in ("in", "notin"):
            return Requirement(key, op, self.value_set())
        value = _check_value(self.value_token(), self.text)
        if op in ("<", ">"):
            if parse_int64(value) is None:
                raise BadRequest(f"unable to parse requirement: {value!r} is not an integer in {self.text[:200]!r}")
            return Requirement(key, "gt" if op == ">" else "lt", (value,))
        return Requirement(key, "!=" if op == "!=" else "=", (value,))

    def value_token(self) -> str:
        tok = self.peek()
        if tok is None or tok == ",":
            return ""
        return self.identifier()

    def value_set(self) -> tuple[str, ...]:
        """`(a,b)`: an empty item (`(a,,b)`, `(a,)`, `()`) is the empty value, as parseIdentifiersList."""
        if self.take() != "(":
            raise BadRequest(f"unable to parse requirement: expected '(' in label selector {self.text[:200]!r}")
        values = [self.list_item()]
        while (sep := self.take()) == ",":
            values.append(self.list_item())
        if sep != ")":
            raise BadRequest(f"unable to parse requirement: found {sep!r}, expected: ',' or ')'")
        return tuple(_check_value(v, self.text) for v in dict.fromkeys(values))

    def list_item(self) -> str:
        return "" if self.peek() in (",", ")") else self.identifier()

    def parse(self) -> LabelSelector:
        requirements = [self.requirement()]
        while (sep := self.peek()) is not None:
            if self.take() != ",":
                raise BadRequest(f"unable to parse requirement: found {sep!r}, expected: ',' or 'end of string'")
            requirements.append(self.requirement())
        return LabelSelector(tuple(requirements))


@lru_cache(maxsize=512)
def parse_label_selector(text: str) -> LabelSelector:
    if not text.strip(_SPACE):
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


_FIELD_TERM = re.compile(r"([^=!]*+)(!=|==|=)")  # possessive: linear however long the term


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
        m = _FIELD_TERM.match(part)  # the first '!=', '==' or '=' splits, as fields.splitTerm
        if m is None or not m.group(1).strip():
            raise BadRequest(f"invalid field selector: {part[:200]!r}: expected field=value or field!=value")
        field, op, value = m.group(1).strip(), m.group(2), part[m.end() :].strip()
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
