"""Property tests: the gateway's placement/ and the simulator agree on generated inputs.

The table (test_conformance.py) says what Kubernetes answers; these search the space between its rows for
inputs where the two implementations part ways, so a drift shows up before a user finds it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conformance.implementations import REFUSED, Placement, Simulator
from tests.conformance.node_fit import node, running

PLACEMENT, SIM = Placement(), Simulator()
SETTINGS = settings(max_examples=300, deadline=None)

# --- quantities ---------------------------------------------------------------------------

DIGITS = st.text(alphabet="0123456789", max_size=25)
ODD_DIGITS = st.text(alphabet="0123456789\u0661\uff11_", max_size=6)
SUFFIXES = ["", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "K", "ki", "mi", "kk", "e"]
EXPONENTS = st.builds(
    lambda e, sign, digits: f"{e}{sign}{digits}",
    st.sampled_from(["e", "E"]),
    st.sampled_from(["", "+", "-"]),
    st.one_of(DIGITS, st.integers(0, 2**33).map(str), st.just("2147483648"), st.just("2147483647")),
)
QUANTITY_TEXT = st.builds(
    lambda space, sign, whole, point, fraction, suffix: f"{space}{sign}{whole}{point}{fraction}{suffix}{space}",
    st.sampled_from(["", " ", "\t", "\u00a0", "\x1c"]),
    st.sampled_from(["", "+", "-"]),
    st.one_of(DIGITS, ODD_DIGITS),
    st.sampled_from(["", "."]),
    st.one_of(DIGITS, ODD_DIGITS),
    st.one_of(st.sampled_from(SUFFIXES), EXPONENTS),
)


@SETTINGS
@given(QUANTITY_TEXT)
def test_quantity_strings_agree(text: str) -> None:
    assert PLACEMENT.quantity(text) == SIM.quantity(text)


@SETTINGS
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=30))
def test_arbitrary_text_agrees(text: str) -> None:
    assert PLACEMENT.quantity(text) == SIM.quantity(text)


@SETTINGS
@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_json_numbers_read_as_their_text(number: Decimal) -> None:
    """A Decimal from the manifest decoder means the same as the text it was written as."""
    assert PLACEMENT.quantity(number) == SIM.quantity(number) == SIM.quantity(str(number))


EXTREME_DECIMALS = st.builds(
    lambda sign, digits, exponent: Decimal((sign, tuple(int(d) for d in digits), exponent)),
    st.integers(0, 1),
    st.text(alphabet="0123456789", min_size=1, max_size=30),
    st.one_of(st.integers(-40, 40), st.integers(-(2**40), 2**40), st.integers(2**31 - 40, 2**31 + 40)),
)


@SETTINGS
@given(EXTREME_DECIMALS)
def test_decimals_with_extreme_exponents_agree(number: Decimal) -> None:
    assert PLACEMENT.quantity(number) == SIM.quantity(number) == SIM.quantity(str(number))


@SETTINGS
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_read_as_their_shortest_text(number: float) -> None:
    assert PLACEMENT.quantity(number) == SIM.quantity(number) == PLACEMENT.quantity(repr(number))


@SETTINGS
@given(st.integers(min_value=-(2**80), max_value=2**80))
def test_integers_agree_with_their_text(number: int) -> None:
    assert PLACEMENT.quantity(number) == SIM.quantity(number) == SIM.quantity(str(number))


@SETTINGS
@given(QUANTITY_TEXT)
def test_accepted_values_round_up_to_whole_nanos_and_respect_the_cap(text: str) -> None:
    nanos = SIM.quantity(text)
    if nanos != REFUSED:
        assert isinstance(nanos, int) and abs(nanos) <= (2**63 - 1) * 10**9


# --- label selectors ----------------------------------------------------------------------

KEYS = st.sampled_from(["tier", "gpu", "cores", "zone", "in", "example.com/team", "-bad", "a..b/c", "K"])
VALUES = st.sampled_from(["", "prod", "a100", "16", "8", "-1", "+8", "1_0", "99999999999999999999", "in", "x y"])
SPACE = st.sampled_from(["", " ", "\t", "\n", "\u00a0"])


@st.composite
def requirement_text(draw: st.DrawFn) -> str:
    key = draw(KEYS)
    form = draw(st.sampled_from(["exists", "not", "binary", "set"]))
    if form == "exists":
        return key
    if form == "not":
        return f"!{draw(SPACE)}{key}"
    if form == "binary":
        op = draw(st.sampled_from(["=", "==", "!=", ">", "<", "=!", ">="]))
        return f"{key}{draw(SPACE)}{op}{draw(SPACE)}{draw(VALUES)}"
    values = draw(st.lists(VALUES, max_size=4))
    op = draw(st.sampled_from(["in", "notin", "In"]))
    return f"{key} {op} ({draw(st.sampled_from([',', ', ', ',,']))[:1].join(values)})"


SELECTOR_TEXT = st.one_of(
    st.lists(requirement_text(), max_size=4).map(",".join),
    st.lists(requirement_text(), min_size=1, max_size=3).map(lambda rs: ",".join(rs) + ","),
    st.text(alphabet="ab=!(),<> \t1-.", max_size=20),
)
LABEL_SETS = st.dictionaries(
    st.sampled_from(["tier", "gpu", "cores", "zone", "in", "example.com/team"]),
    st.sampled_from(["", "prod", "a100", "16", "8", "1_0", "99999999999999999999", "-3"]),
    max_size=5,
)


@SETTINGS
@given(SELECTOR_TEXT, LABEL_SETS)
def test_selector_strings_agree(text: str, labels: dict[str, str]) -> None:
    assert PLACEMENT.selector(text, labels) == SIM.selector(text, labels)


EXPRESSION = st.fixed_dictionaries(
    {
        "key": st.sampled_from(["tier", "gpu", "cores", "zone"]),
        "operator": st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]),
    }
).flatmap(
    lambda e: st.just({**e, "values": []})
    if e["operator"] in ("Exists", "DoesNotExist")
    else st.builds(
        lambda v: {**e, "values": v},
        st.lists(st.sampled_from(["0", "8", "16", "17", "99999999999999999999"]), min_size=1, max_size=1)
        if e["operator"] in ("Gt", "Lt")
        else st.lists(st.sampled_from(["", "prod", "a100", "16"]), min_size=1, max_size=3),
    )
)


@SETTINGS
@given(st.lists(EXPRESSION, min_size=1, max_size=3), LABEL_SETS)
def test_match_expressions_agree(expressions: list[dict[str, Any]], labels: dict[str, str]) -> None:
    """Where the gateway refuses an expression up front, the scheduler never matches it."""
    verdict = PLACEMENT.expressions(expressions, labels)
    assert verdict == SIM.expressions(expressions, labels) or (verdict == REFUSED and not SIM.expressions(expressions, labels))


# --- tolerations and node fit -------------------------------------------------------------

EFFECTS = ["", "NoSchedule", "NoExecute", "PreferNoSchedule"]
TOLERATION = st.builds(
    lambda key, op, value, effect: {k: v for k, v in (("key", key), ("operator", op), ("value", value), ("effect", effect)) if v is not None},
    st.sampled_from([None, "", "dedicated", "other"]),
    st.sampled_from([None, "", "Equal", "Exists", "Foo"]),
    st.sampled_from([None, "", "gpu", "cpu"]),
    st.sampled_from([None, *EFFECTS]),
)
TAINT = st.fixed_dictionaries(
    {
        "key": st.sampled_from(["dedicated", "other"]),
        "value": st.sampled_from(["", "gpu"]),
        "effect": st.sampled_from(EFFECTS[1:]),
    }
)


@SETTINGS
@given(TOLERATION, TAINT)
def test_tolerations_agree(toleration: dict[str, Any], taint: dict[str, Any]) -> None:
    assert PLACEMENT.tolerates(toleration, taint) is SIM.tolerates(toleration, taint)


CPU = st.one_of(st.sampled_from(["100m", "1", "3900m", "4", "4001m", "0.1n"]), st.decimals(0, 5, places=4))
MEMORY = st.sampled_from(["1Mi", "4Gi", "8Gi", "8589934593", "0.5Gi"])


@st.composite
def containers(draw: st.DrawFn, name: str) -> dict[str, Any]:
    requests = draw(st.fixed_dictionaries({}, optional={"cpu": CPU, "memory": MEMORY}))
    limits = draw(st.fixed_dictionaries({}, optional={"cpu": CPU, "nvidia.com/gpu": st.sampled_from(["1", "2"])}))
    box: dict[str, Any] = {"name": name, "image": "busybox", "resources": {"requests": requests, "limits": limits}}
    if draw(st.booleans()):
        box["restartPolicy"] = "Always"
    return box


@st.composite
def pod_specs(draw: st.DrawFn) -> dict[str, Any]:
    app = [draw(containers(f"c{i}")) for i in range(draw(st.integers(1, 3)))]
    for c in app:
        c.pop("restartPolicy", None)
    spec: dict[str, Any] = {"containers": app}
    init = [draw(containers(f"i{i}")) for i in range(draw(st.integers(0, 2)))]
    if init:
        spec["initContainers"] = init
    if draw(st.booleans()):
        spec["tolerations"] = draw(st.lists(TOLERATION, max_size=2))
    if draw(st.booleans()):
        spec["nodeSelector"] = draw(st.dictionaries(st.sampled_from(["zone", "cores"]), st.sampled_from(["a", "16", "b"]), max_size=2))
    if draw(st.booleans()):
        spec["overhead"] = {"cpu": draw(CPU)}
    return spec


@SETTINGS
@given(
    pod_specs(),
    st.lists(TAINT, max_size=2),
    st.booleans(),
    st.lists(st.sampled_from(["0", "1", "3"]), max_size=2),
)
def test_node_fit_agrees(spec: dict[str, Any], taints: list[dict[str, Any]], cordoned: bool, busy: list[str]) -> None:
    target = node(taints=taints, unschedulable=cordoned)
    bound = [running(cpu=cpu) | {"metadata": {"name": f"r{i}", "uid": f"u{i}"}} for i, cpu in enumerate(busy)]
    assert PLACEMENT.fits(spec, target, bound) is SIM.fits(spec, target, bound)
