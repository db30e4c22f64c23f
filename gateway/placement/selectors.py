"""Label selectors: kubectl-style strings and matchLabels/matchExpressions into `domain.Selector`, and matching.

The string syntax is Kubernetes' `labels.Parse` (apimachinery pkg/labels/selector.go): `tier=prod`,
`tier==prod`, `region!=us`, `gpu in (a100,h100)`, `zone notin (a)`, `x` (exists), `!legacy` (does not
exist), `cores>4`, `cores<4`, comma-separated and ANDed. As there, only space, tab, CR and LF separate
tokens, `in ()` and empty items (`(a,,b)`, `(a,)`) stand for the empty value, and Gt/Lt compare values
read as Go's strconv.ParseInt reads them (ASCII digits, optional sign, int64).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.domain import Operator, Requirement, Selector
from gateway.errors import FieldViolation, InvalidArgument
from gateway.placement.labels import label_key_error, label_value_error

_SET_OPERATORS = frozenset({Operator.IN, Operator.NOT_IN})
_NUMERIC_OPERATORS = frozenset({Operator.GT, Operator.LT})
_OPERATOR_NAMES = ", ".join(op.value for op in Operator)


# --- the string syntax --------------------------------------------------------------------


class _Kind(enum.Enum):
    WORD = "a word"
    COMMA = "','"
    OPEN = "'('"
    CLOSE = "')'"
    EQUALS = "'='"
    NOT_EQUALS = "'!='"
    BANG = "'!'"
    GREATER = "'>'"
    LESS = "'<'"
    END = "the end"


@dataclass(frozen=True, slots=True)
class _Token:
    kind: _Kind
    text: str
    pos: int


_PUNCTUATION = {",": _Kind.COMMA, "(": _Kind.OPEN, ")": _Kind.CLOSE, ">": _Kind.GREATER, "<": _Kind.LESS}
_SPACE = frozenset(" \t\n\r")  # the lexer's isWhitespace: no other character separates tokens
_WORD_STOP = _SPACE | frozenset(",()=!<>")
_COMPARISONS = {_Kind.GREATER: Operator.GT, _Kind.LESS: Operator.LT}


class _SyntaxError(Exception):
    def __init__(self, pos: int, message: str) -> None:
        super().__init__(f"{message} at position {pos}")


def _lex(text: str) -> Iterator[_Token]:
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in _SPACE:
            i += 1
        elif c in _PUNCTUATION:
            yield _Token(_PUNCTUATION[c], c, i)
            i += 1
        elif c == "=":
            width = 2 if text.startswith("==", i) else 1
            yield _Token(_Kind.EQUALS, text[i : i + width], i)
            i += width
        elif c == "!":
            kind, width = (_Kind.NOT_EQUALS, 2) if text.startswith("!=", i) else (_Kind.BANG, 1)
            yield _Token(kind, text[i : i + width], i)
            i += width
        else:
            start = i
            while i < n and text[i] not in _WORD_STOP:
                i += 1
            yield _Token(_Kind.WORD, text[start:i], start)
    yield _Token(_Kind.END, "", n)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = list(_lex(text))
        self.i = 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self, *kinds: _Kind, what: str) -> _Token:
        token = self.tokens[self.i]
        if token.kind not in kinds:
            found = f"{token.text!r}" if token.text else "the end"
            raise _SyntaxError(token.pos, f"expected {what}, found {found}")
        self.i += 1
        return token

    def selector(self) -> Selector:
        if self.peek().kind is _Kind.END:
            return Selector()
        requirements = [self.requirement()]
        while self.take(_Kind.COMMA, _Kind.END, what="',' or the end").kind is _Kind.COMMA:
            requirements.append(self.requirement())
        return Selector(requirements=tuple(requirements))

    def requirement(self) -> Requirement:
        if self.peek().kind is _Kind.BANG:
            self.i += 1
            return _requirement_at(self.key(), Operator.DOES_NOT_EXIST, (), self.tokens[self.i - 1].pos)
        key_token = self.take(_Kind.WORD, what="a label key")
        key = key_token.text
        op = self.peek()
        if op.kind in (_Kind.COMMA, _Kind.END):
            return _requirement_at(key, Operator.EXISTS, (), key_token.pos)
        if op.kind in (_Kind.EQUALS, _Kind.NOT_EQUALS):
            self.i += 1
            operator = Operator.IN if op.kind is _Kind.EQUALS else Operator.NOT_IN
            return _requirement_at(key, operator, (self.exact_value(),), op.pos)
        if op.kind in _COMPARISONS:
            self.i += 1
            value = self.exact_value()
            return _requirement_at(key, _COMPARISONS[op.kind], (value,), op.pos, strict_values=True)
        if op.kind is _Kind.WORD and op.text in ("in", "notin"):
            self.i += 1
            operator = Operator.IN if op.text == "in" else Operator.NOT_IN
            return _requirement_at(key, operator, self.value_set(), op.pos)
        raise _SyntaxError(
            op.pos,
            f"expected '=', '!=', 'in' or 'notin' after label key {key!r} (or '>'/'<' and an integer), "
            f"found {op.text!r}",
        )

    def exact_value(self) -> str:
        """The value after `=`/`!=`; `key=` means the empty value, as in kubectl."""
        token = self.peek()
        if token.kind in (_Kind.COMMA, _Kind.END):
            return ""
        return self.take(_Kind.WORD, what="a label value").text

    def key(self) -> str:
        return self.take(_Kind.WORD, what="a label key").text

    def value_set(self) -> tuple[str, ...]:
        """`(a,b)`; an empty item or `()` is the empty value, as labels.Parse reads them."""
        self.take(_Kind.OPEN, what="'(' after in/notin")
        values = [self.list_item()]
        while self.take(_Kind.COMMA, _Kind.CLOSE, what="',' or ')'").kind is _Kind.COMMA:
            values.append(self.list_item())
        return tuple(dict.fromkeys(values))

    def list_item(self) -> str:
        if self.peek().kind in (_Kind.COMMA, _Kind.CLOSE):
            return ""
        return self.take(_Kind.WORD, what="a label value").text


def _requirement_at(
    key: str, operator: Operator, values: tuple[str, ...], pos: int, *, strict_values: bool = False
) -> Requirement:
    """`strict_values`: Gt/Lt bounds in strings must also be label values (NewRequirement checks every value)."""
    errors = _requirement_errors(key, operator, values)
    if strict_values:
        errors += [("values", e) for v in values if (e := label_value_error(v))]
    if errors:
        raise _SyntaxError(pos, errors[0][1])
    return Requirement(key=key, operator=operator, values=values)


def _clipped(text: str) -> str:
    """The selector as echoed in an error: never more than 200 characters of what the caller sent."""
    return repr(text if len(text) <= 200 else text[:200] + "...")


def parse_selector(text: str, *, field: str) -> Selector:
    """Parse a kubectl-style selector string; `field` is the request path reported on error."""
    try:
        return _Parser(text).selector()
    except _SyntaxError as e:
        raise InvalidArgument(
            f"invalid selector {_clipped(text)}: {e}", [FieldViolation(field=field, description=f"{_clipped(text)}: {e}")]
        ) from None


# --- structured selectors -----------------------------------------------------------------


def _requirement_errors(key: str, operator: Operator, values: Sequence[str]) -> list[tuple[str, str]]:
    """(sub-field, description) pairs; empty when the requirement is valid."""
    errors: list[tuple[str, str]] = []
    if error := label_key_error(key):
        errors.append(("key", error))
    if operator in _SET_OPERATORS and not values:
        errors.append(("values", f"operator {operator} needs at least one value"))
    elif operator in _NUMERIC_OPERATORS:
        if len(values) != 1 or not _is_integer(values[0]):
            errors.append(("values", f"operator {operator} needs exactly one integer value, got {list(values)}"))
    elif operator not in _SET_OPERATORS and values:
        errors.append(("values", f"operator {operator} takes no values, got {list(values)}"))
    if operator in _SET_OPERATORS:
        errors.extend(("values", e) for v in values if (e := label_value_error(v)))
    return errors


_INT64 = re.compile(r"[+-]?[0-9]+")
_INT64_MAX = 2**63 - 1


def go_int64(text: str) -> int | None:
    """`text` as Go's strconv.ParseInt(text, 10, 64) reads it, None where that fails (Python's int() would
    also take " 12", "1_0" and "١٢"): Kubernetes compares Gt/Lt values this way."""
    if len(text) > 20 or not _INT64.fullmatch(text):
        return None
    value = int(text)
    return value if -_INT64_MAX - 1 <= value <= _INT64_MAX else None


def _is_integer(text: str) -> bool:
    return go_int64(text) is not None


def requirement_from_mapping(raw: Mapping[str, Any], *, field: str) -> Requirement:
    """One `{key, operator, values}` mapping (matchExpressions item) into a Requirement."""
    violations = _mapping_violations(raw, field)
    if violations:
        raise InvalidArgument(f"invalid selector requirement: {violations[0].description}", violations)
    return Requirement(key=raw["key"], operator=Operator(raw["operator"]), values=tuple(raw.get("values") or ()))


def _mapping_violations(raw: Mapping[str, Any], field: str) -> list[FieldViolation]:
    key, op_name, values = raw.get("key"), raw.get("operator"), raw.get("values") or ()
    if not isinstance(key, str):
        return [FieldViolation(f"{field}.key", f"label key must be a string, got {key!r}")]
    try:
        operator = Operator(str(op_name))
    except ValueError:
        return [FieldViolation(f"{field}.operator", f"unknown operator {op_name!r}; use one of {_OPERATOR_NAMES}")]
    if not isinstance(values, list | tuple) or not all(isinstance(v, str) for v in values):
        return [FieldViolation(f"{field}.values", f"values must be a list of strings, got {values!r}")]
    return [FieldViolation(f"{field}.{sub}", desc) for sub, desc in _requirement_errors(key, operator, values)]


RawRequirement = Mapping[str, Any] | tuple[str, str, Sequence[str]]


def _as_mapping(raw: RawRequirement) -> Mapping[str, Any]:
    if isinstance(raw, tuple):
        key, operator, values = raw
        return {"key": key, "operator": operator, "values": list(values)}
    return raw


def from_parts(
    *,
    match_labels: Mapping[str, str] | None = None,
    match_expressions: Sequence[RawRequirement] = (),
    expression: str = "",
    field: str,
) -> Selector:
    """AND of matchLabels, matchExpressions and a selector string; all violations reported at once.

    match_expressions items are `{key, operator, values}` mappings (Kubernetes YAML/JSON shape) or
    `(key, operator, values)` tuples.
    """
    violations: list[FieldViolation] = []
    requirements: list[Requirement] = []
    for key, value in (match_labels or {}).items():
        sub = f"{field}.match_labels[{key}]"
        errors = [e for e in (label_key_error(key), label_value_error(value)) if e]
        violations.extend(FieldViolation(sub, e) for e in errors)
        requirements.append(Requirement(key=key, operator=Operator.IN, values=(value,)))
    for i, item in enumerate(match_expressions):
        sub = f"{field}.match_expressions[{i}]"
        raw = _as_mapping(item)
        errors_i = _mapping_violations(raw, sub)
        violations.extend(errors_i)
        if not errors_i:
            requirements.append(requirement_from_mapping(raw, field=sub))
    if expression:
        try:
            requirements.extend(parse_selector(expression, field=f"{field}.expression").requirements)
        except InvalidArgument as e:
            violations.extend(e.violations)
    if violations:
        raise InvalidArgument(f"invalid selector: {violations[0].description}", violations)
    return Selector(requirements=tuple(requirements))


# --- matching -----------------------------------------------------------------------------


def requirement_matches(req: Requirement, labels: Mapping[str, str]) -> bool:
    value = labels.get(req.key)
    op = req.operator
    if op is Operator.IN:
        return value is not None and value in req.values
    if op is Operator.NOT_IN:
        return value is None or value not in req.values
    if op is Operator.EXISTS:
        return value is not None
    if op is Operator.DOES_NOT_EXIST:
        return value is None
    number = None if value is None else go_int64(value)
    bound = go_int64(req.values[0]) if len(req.values) == 1 else None
    if number is None or bound is None:
        return False
    return number > bound if op is Operator.GT else number < bound


def matches(selector: Selector, labels: Mapping[str, str]) -> bool:
    """Every requirement holds; the empty selector matches everything."""
    return all(requirement_matches(r, labels) for r in selector.requirements)


def first_mismatch(selector: Selector, labels: Mapping[str, str]) -> Requirement | None:
    for r in selector.requirements:
        if not requirement_matches(r, labels):
            return r
    return None


def format_requirement(req: Requirement) -> str:
    op = req.operator
    if op is Operator.EXISTS:
        return req.key
    if op is Operator.DOES_NOT_EXIST:
        return f"!{req.key}"
    if op in _SET_OPERATORS:
        return f"{req.key} {'in' if op is Operator.IN else 'notin'} ({','.join(req.values)})"
    return f"{req.key} {op} {req.values[0]}"


def format_selector(selector: Selector) -> str:
    """Human form; equals the kubectl syntax when there is no Gt/Lt."""
    return ",".join(format_requirement(r) for r in selector.requirements)


def describe_mismatch(req: Requirement, labels: Mapping[str, str]) -> str:
    """Why one requirement fails on these labels, in words."""
    value = labels.get(req.key)
    op = req.operator
    if op is Operator.EXISTS:
        return f"label {req.key} is not set but must exist"
    if op is Operator.DOES_NOT_EXIST:
        return f"label {req.key}={value} is set but must not exist"
    if value is None:
        return f"label {req.key} is not set, {format_requirement(req)} requires it"
    if op in _NUMERIC_OPERATORS and not _is_integer(value):
        return f"label {req.key}={value} is not an integer, {format_requirement(req)} requires one"
    return f"label {req.key}={value} does not match {format_requirement(req)}"


def explain_mismatch(selector: Selector, labels: Mapping[str, str]) -> str:
    """The first failing requirement in words, or "" when the selector matches."""
    req = first_mismatch(selector, labels)
    return "" if req is None else describe_mismatch(req, labels)
