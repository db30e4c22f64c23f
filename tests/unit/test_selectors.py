"""Selector strings, structured selectors, matching and mismatch explanations."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.domain import Operator, Requirement, Selector
from gateway.errors import InvalidArgument
from gateway.placement.selectors import (
    explain_mismatch,
    format_selector,
    from_parts,
    matches,
    parse_selector,
)

F = "pod.placement.cluster_selector.expression"


def req(key: str, op: Operator, *values: str) -> Requirement:
    return Requirement(key=key, operator=op, values=values)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ()),
        ("   ", ()),
        ("tier=prod", (req("tier", Operator.IN, "prod"),)),
        ("tier==prod", (req("tier", Operator.IN, "prod"),)),
        ("region!=us", (req("region", Operator.NOT_IN, "us"),)),
        ("tier=", (req("tier", Operator.IN, ""),)),
        ("tier=,x", (req("tier", Operator.IN, ""), req("x", Operator.EXISTS))),
        ("tier!=", (req("tier", Operator.NOT_IN, ""),)),
        ("x", (req("x", Operator.EXISTS),)),
        ("!legacy", (req("legacy", Operator.DOES_NOT_EXIST),)),
        ("! legacy", (req("legacy", Operator.DOES_NOT_EXIST),)),
        ("gpu in (a100,h100)", (req("gpu", Operator.IN, "a100", "h100"),)),
        ("gpu in ( a100 , h100 )", (req("gpu", Operator.IN, "a100", "h100"),)),
        ("zone notin (a)", (req("zone", Operator.NOT_IN, "a"),)),
        ("example.com/team=ml", (req("example.com/team", Operator.IN, "ml"),)),
        ("in=x", (req("in", Operator.IN, "x"),)),
        # labels.Parse: "()" and empty items are the empty value; '>'/'<' compare integers
        ("gpu in ()", (req("gpu", Operator.IN, ""),)),
        ("gpu in (a100,)", (req("gpu", Operator.IN, "a100", ""),)),
        ("gpu in (,a100,,h100)", (req("gpu", Operator.IN, "", "a100", "h100"),)),
        ("cores>4", (req("cores", Operator.GT, "4"),)),
        ("cores < 4", (req("cores", Operator.LT, "4"),)),
        (
            "tier=prod,gpu in (a100,h100),!legacy,zone notin (a),x,region!=us",
            (
                req("tier", Operator.IN, "prod"),
                req("gpu", Operator.IN, "a100", "h100"),
                req("legacy", Operator.DOES_NOT_EXIST),
                req("zone", Operator.NOT_IN, "a"),
                req("x", Operator.EXISTS),
                req("region", Operator.NOT_IN, "us"),
            ),
        ),
    ],
)
def test_parse_valid(text: str, expected: tuple[Requirement, ...]) -> None:
    assert parse_selector(text, field=F).requirements == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("tier=prod,", "expected a label key, found the end at position 10"),
        (",tier=prod", "expected a label key, found ',' at position 0"),
        ("tier=prod,,x", "expected a label key, found ','"),
        ("gpu in a100", "expected '(' after in/notin, found 'a100'"),
        ("gpu in (a100 h100)", "expected ',' or ')', found 'h100'"),
        ("gpu in (a100", "expected ',' or ')', found the end"),
        ("gpu in (a100,=)", "expected a label value, found '='"),
        ("gpu foo (a)", "expected '=', '!=', 'in' or 'notin' after label key 'gpu'"),
        ("cores>four", "needs exactly one integer value, got ['four']"),
        ("cores<", "needs exactly one integer value, got ['']"),
        ("cores>-4", "label value '-4' must be empty or consist of"),
        ("tier=prod\u00a0", "label value 'prod\\xa0' must be empty or consist of"),
        ("tier=prod=x", "expected ',' or the end, found '='"),
        ("tier=prod x", "expected ',' or the end, found 'x'"),
        ("!", "expected a label key, found the end"),
        ("-bad=x", "label key '-bad': name must consist of"),
        ("Bad_Prefix.com/x=y", "prefix 'Bad_Prefix.com' is not a DNS-1123 subdomain"),
        ("/x=y", "prefix before '/' must not be empty"),
        ("a/=y", "name after the prefix must not be empty"),
        ("tier=-prod", "label value '-prod' must be empty or consist of"),
        ("k=" + "v" * 64, "must be at most 63 characters (got 64)"),
        ("k" * 64 + "=v", "name must be at most 63 characters (got 64)"),
        ("tier in (ok,bad$)", "label value 'bad$'"),
        ("(", "expected a label key, found '('"),
        ("tier!=(a)", "expected a label value, found '('"),
    ],
)
def test_parse_errors_name_position_and_field(text: str, fragment: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_selector(text, field=F)
    assert fragment in str(caught.value)
    assert [v.field for v in caught.value.violations] == [F]
    assert fragment in caught.value.violations[0].description


LABELS = {"tier": "prod", "gpu": "a100", "cores": "16", "zone": "b", "odd": "x1"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        (Selector(), True),
        (Selector(requirements=(req("tier", Operator.IN, "prod"),)), True),
        (Selector(requirements=(req("tier", Operator.IN, "dev", "prod"),)), True),
        (Selector(requirements=(req("tier", Operator.IN, "dev"),)), False),
        (Selector(requirements=(req("missing", Operator.IN, "x"),)), False),
        (Selector(requirements=(req("tier", Operator.NOT_IN, "dev"),)), True),
        (Selector(requirements=(req("tier", Operator.NOT_IN, "prod"),)), False),
        (Selector(requirements=(req("missing", Operator.NOT_IN, "x"),)), True),
        (Selector(requirements=(req("gpu", Operator.EXISTS),)), True),
        (Selector(requirements=(req("missing", Operator.EXISTS),)), False),
        (Selector(requirements=(req("missing", Operator.DOES_NOT_EXIST),)), True),
        (Selector(requirements=(req("gpu", Operator.DOES_NOT_EXIST),)), False),
        (Selector(requirements=(req("cores", Operator.GT, "8"),)), True),
        (Selector(requirements=(req("cores", Operator.GT, "16"),)), False),
        (Selector(requirements=(req("cores", Operator.LT, "17"),)), True),
        (Selector(requirements=(req("cores", Operator.LT, "16"),)), False),
        (Selector(requirements=(req("cores", Operator.GT, "-1"),)), True),
        (Selector(requirements=(req("odd", Operator.GT, "0"),)), False),
        (Selector(requirements=(req("missing", Operator.LT, "100"),)), False),
        (Selector(requirements=(req("tier", Operator.IN, "prod"), req("zone", Operator.NOT_IN, "b"))), False),
    ],
)
def test_matches(selector: Selector, expected: bool) -> None:
    assert matches(selector, LABELS) is expected


@pytest.mark.parametrize(
    ("text", "labels", "explanation"),
    [
        ("tier in (prod)", {"tier": "dev"}, "label tier=dev does not match tier in (prod)"),
        ("tier=prod", {}, "label tier is not set, tier in (prod) requires it"),
        ("tier!=dev", {"tier": "dev"}, "label tier=dev does not match tier notin (dev)"),
        ("gpu", {}, "label gpu is not set but must exist"),
        ("!legacy", {"legacy": "true"}, "label legacy=true is set but must not exist"),
        ("tier=prod,gpu in (a100)", {"tier": "prod", "gpu": "t4"}, "label gpu=t4 does not match gpu in (a100)"),
        ("tier=prod,!legacy", {"tier": "prod"}, ""),
    ],
)
def test_explain_mismatch_names_first_failing_requirement(text: str, labels: dict[str, str], explanation: str) -> None:
    assert explain_mismatch(parse_selector(text, field=F), labels) == explanation


@pytest.mark.parametrize(
    ("expressions", "labels", "explanation"),
    [
        (
            [{"key": "cores", "operator": "Gt", "values": ["32"]}],
            {"cores": "16"},
            "label cores=16 does not match cores Gt 32",
        ),
        ([{"key": "cores", "operator": "Lt", "values": ["8"]}], {}, "label cores is not set, cores Lt 8 requires it"),
        (
            [{"key": "cores", "operator": "Gt", "values": ["8"]}],
            {"cores": "many"},
            "label cores=many is not an integer, cores Gt 8 requires one",
        ),
    ],
)
def test_explain_numeric(expressions: list[dict[str, Any]], labels: dict[str, str], explanation: str) -> None:
    selector = from_parts(match_expressions=expressions, field="s")
    assert explain_mismatch(selector, labels) == explanation


def test_from_parts_ands_all_parts_in_order() -> None:
    selector = from_parts(
        match_labels={"tier": "prod"},
        match_expressions=[{"key": "cores", "operator": "Gt", "values": ["4"]}, ("zone", "NotIn", ["a", "b"])],
        expression="!legacy",
        field="s",
    )
    assert selector.requirements == (
        req("tier", Operator.IN, "prod"),
        req("cores", Operator.GT, "4"),
        req("zone", Operator.NOT_IN, "a", "b"),
        req("legacy", Operator.DOES_NOT_EXIST),
    )
    assert format_selector(selector) == "tier in (prod),cores Gt 4,zone notin (a,b),!legacy"


@pytest.mark.parametrize(
    ("kwargs", "fields", "fragment"),
    [
        ({"match_labels": {"bad key": "x"}}, ["sel.match_labels[bad key]"], "label key 'bad key'"),
        ({"match_labels": {"k": "bad value"}}, ["sel.match_labels[k]"], "label value 'bad value'"),
        (
            {"match_expressions": [{"key": "k", "operator": "in", "values": ["a"]}]},
            ["sel.match_expressions[0].operator"],
            "unknown operator 'in'",
        ),
        (
            {"match_expressions": [{"key": "k", "operator": "In"}]},
            ["sel.match_expressions[0].values"],
            "operator In needs at least one value",
        ),
        (
            {"match_expressions": [{"key": "k", "operator": "NotIn", "values": []}]},
            ["sel.match_expressions[0].values"],
            "NotIn needs at least one value",
        ),
        (
            {"match_expressions": [{"key": "k", "operator": "Exists", "values": ["a"]}]},
            ["sel.match_expressions[0].values"],
            "operator Exists takes no values",
        ),
        (
            {"match_expressions": [{"key": "k", "operator": "DoesNotExist", "values": ["a"]}]},
            ["sel.match_expressions[0].values"],
            "takes no values",
        ),
        (
            {"match_expressions": [{"key": "k", "operator": "Gt", "values": ["1", "2"]}]},
            ["sel.match_expressions[0].values"],
            "exactly one integer value",
        ),
        (
            {"match_expressions": [{"key": "k", "operator": "Lt", "values": ["1.5"]}]},
            ["sel.match_expressions[0].values"],
            "exactly one integer value",
        ),
        (
            {"match_expressions": [{"key": "k", "operator": "Gt"}]},
            ["sel.match_expressions[0].values"],
            "exactly one integer value",
        ),
        (
            {"match_expressions": [{"operator": "Exists"}]},
            ["sel.match_expressions[0].key"],
            "label key must be a string",
        ),
        (
            {"match_expressions": [{"key": "k", "operator": "In", "values": "a"}]},
            ["sel.match_expressions[0].values"],
            "values must be a list",
        ),
        ({"expression": "a in ("}, ["sel.expression"], "expected a label value"),
        (
            {"match_labels": {"-a": "x"}, "match_expressions": [{"key": "k", "operator": "Nope"}], "expression": "!"},
            ["sel.match_labels[-a]", "sel.match_expressions[0].operator", "sel.expression"],
            "label key '-a'",
        ),
    ],
)
def test_from_parts_reports_every_violation(kwargs: dict[str, Any], fields: list[str], fragment: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        from_parts(field="sel", **kwargs)
    assert [v.field for v in caught.value.violations] == fields
    assert fragment in caught.value.violations[0].description


@pytest.mark.parametrize(
    "text",
    ["tier in (prod)", "!legacy", "gpu", "a in (x,y),b notin (z),!c,d", "example.com/team in (ml)"],
)
def test_format_round_trips_through_parse(text: str) -> None:
    selector = parse_selector(text, field=F)
    assert format_selector(selector) == text
    assert parse_selector(format_selector(selector), field=F) == selector
