"""Label selectors: selector string or matchExpressions, labels -> matches, or REFUSED.

Kubernetes' rules (k8s.io/apimachinery/pkg/labels/selector.go):
- Lexer: only ' ', '\\t', '\\r', '\\n' separate tokens (isWhitespace); the special symbols are = == != ! ( ) , > <;
  `in` and `notin` are keywords after a key and plain identifiers where values are expected.
- Parse: requirements joined by ','; a trailing or doubled ',' is an error. `key` alone is Exists, `!key`
  DoesNotExist; `=`/`==`/`!=`/`>`/`<` take one value (absent: the empty value); `in`/`notin` take a
  parenthesised list in which an empty item, and `()` itself, is the empty value (parseIdentifiersList).
- NewRequirement: the key is a qualified name (IsQualifiedName: [DNS-1123 subdomain <= 253 '/'] name <= 63);
  every value is a label value (IsValidLabelValue, so `>-1` is refused); Gt/Lt take exactly one value that
  strconv.ParseInt(v, 10, 64) accepts.
- Requirement.Matches: In/Equals need the key present with a listed value; NotIn/NotEquals hold when the key
  is absent; Gt/Lt need the label value to parse with strconv.ParseInt(v, 10, 64) (ASCII digits, optional
  sign, int64: "1_0" and 20-digit numbers never match).
matchExpressions (node affinity's NodeSelectorRequirement) follow NewRequirement and Matches alike; an
empty nodeSelectorTerm matches nothing (see node_fit.py).
"""

from __future__ import annotations

from typing import Any, Final

REFUSED: Final = "refused"

LABELS: Final = {
    "tier": "prod",
    "gpu": "a100",
    "cores": "16",
    "zone": "",
    "big": "99999999999999999999",
    "under": "1_0",
    "example.com/team": "ml",
}

SELECTOR_STRINGS: list[tuple[str, bool | str]] = [
    ("", True),
    (" \t", True),
    ("tier=prod", True),
    ("tier==prod", True),
    ("tier=dev", False),
    ("tier!=prod", False),
    ("tier!=dev", True),
    ("missing!=x", True),  # NotEquals holds when the key is absent
    ("missing=x", False),
    ("tier in (prod,dev)", True),
    ("tier in ( prod , dev )", True),
    ("tier notin (prod)", False),
    ("missing notin (a)", True),
    ("missing in (a)", False),
    ("gpu", True),
    ("!gpu", False),
    ("! missing", True),
    ("example.com/team=ml", True),
    ("zone=", True),  # `key=` is the empty value
    ("zone in ()", True),  # "()" is the set {""}
    ("zone in (a,)", True),  # an empty item is the empty value
    ("tier in (,prod)", True),
    ("tier in (a,,b)", False),
    ("missing in ()", False),
    ("tier in (in,notin,prod)", True),  # keywords are identifiers where values are expected
    ("cores>8", True),
    ("cores > 15", True),
    ("cores<8", False),
    ("cores>16", False),
    ("cores<17", True),
    ("big>1", False),  # not an int64
    ("under>1", False),  # ParseInt refuses '_'
    ("tier>1", False),
    ("missing>1", False),
    ("tier=prod,gpu=a100", True),
    ("tier=prod,gpu=h100", False),
    ("tier=prod\t,\ngpu", True),
    # refused by Parse / NewRequirement
    ("tier=prod,", REFUSED),
    (",tier=prod", REFUSED),
    ("tier=prod,,gpu", REFUSED),
    ("tier in (a", REFUSED),
    ("tier in a", REFUSED),
    ("tier in (a b)", REFUSED),
    ("tier=prod=x", REFUSED),
    ("tier=prod x", REFUSED),
    ("tier foo (a)", REFUSED),
    ("tier=(a)", REFUSED),
    ("!", REFUSED),
    ("!tier=prod", REFUSED),
    ("(", REFUSED),
    ("cores>x", REFUSED),
    ("cores>", REFUSED),
    ("cores>-1", REFUSED),  # '-1' is not a label value
    ("cores>+8", REFUSED),  # nor is '+8', though ParseInt would take it
    ("cores>99999999999999999999", REFUSED),
    ("tier=prod\u00a0", REFUSED),  # no-break space is not whitespace to the lexer
    ("tier=\u0661", REFUSED),
    ("-bad=x", REFUSED),
    ("a..b/c=d", REFUSED),  # the prefix must be a DNS-1123 subdomain
    ("/c=d", REFUSED),
    ("Bad.com/c=d", REFUSED),
    ("k" * 64 + "=v", REFUSED),
    ("k=" + "v" * 64, REFUSED),
    ("p" * 254 + "/k=v", REFUSED),
]

EXPRESSIONS: list[tuple[list[dict[str, Any]], bool]] = [
    ([{"key": "tier", "operator": "In", "values": ["prod", "dev"]}], True),
    ([{"key": "tier", "operator": "NotIn", "values": ["prod"]}], False),
    ([{"key": "missing", "operator": "NotIn", "values": ["a"]}], True),
    ([{"key": "missing", "operator": "In", "values": ["a"]}], False),
    ([{"key": "gpu", "operator": "Exists"}], True),
    ([{"key": "gpu", "operator": "DoesNotExist"}], False),
    ([{"key": "missing", "operator": "DoesNotExist"}], True),
    ([{"key": "zone", "operator": "In", "values": [""]}], True),
    ([{"key": "cores", "operator": "Gt", "values": ["8"]}], True),
    ([{"key": "cores", "operator": "Lt", "values": ["8"]}], False),
    ([{"key": "cores", "operator": "Gt", "values": ["16"]}], False),
    ([{"key": "cores", "operator": "Lt", "values": ["17"]}], True),
    ([{"key": "big", "operator": "Gt", "values": ["1"]}], False),
    ([{"key": "under", "operator": "Gt", "values": ["1"]}], False),
    ([{"key": "tier", "operator": "Gt", "values": ["1"]}], False),
    ([{"key": "missing", "operator": "Lt", "values": ["1"]}], False),
    (
        [
            {"key": "tier", "operator": "In", "values": ["prod"]},
            {"key": "cores", "operator": "Gt", "values": ["4"]},
        ],
        True,
    ),
    (
        [
            {"key": "tier", "operator": "In", "values": ["prod"]},
            {"key": "gpu", "operator": "In", "values": ["h100"]},
        ],
        False,
    ),
]
