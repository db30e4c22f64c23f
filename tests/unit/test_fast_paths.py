"""The per-pod shortcuts of issue 16 (CPU per dispatched pod) give what the general code they replace gives.

Each shortcut is compared, on generated input, with the code it replaced (kept here as the reference) or
with a fresh computation that bypasses the shortcut's memory.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.api import convert_pods
from gateway.clusters.tracking import PodTrack
from gateway.domain import GPU_RESOURCE, PodPhase, PodRequest
from gateway.errors import InvalidArgument
from gateway.placement import quantity
from gateway.placement.node_fit import RESOURCES, effective_requests
from gateway.pods import builder, pod_rules, pod_schema, status
from gateway.pods.builder import build_pod, pod_name_of
from gateway.pods.creation import new_suffix
from gateway.pods.logs import parse_timestamp
from tests.unit import test_policy_fuzz as fuzz

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True, database=None)

# --- quantities: read once by their text ---------------------------------------------------------

QUANTITY_TEXTS = st.one_of(
    st.sampled_from(["10m", "16Mi", "1", "0", "1.5Gi", "2e3", "1E-3", "+2", "-1", ".5", " 3 ", "1e10000000", "x", ""]),
    st.from_regex(r"[+-]?[0-9]{0,4}(\.[0-9]{0,3})?([numkMGTPE]|[KMGTPE]i|[eE][+-]?[0-9]{1,3})?", fullmatch=True),
    st.text(max_size=8),
)


def _outcome(read: Any, raw: Any) -> Fraction | str:
    try:
        return read(raw)
    except ValueError as e:
        return f"refused: {e}"


@SETTINGS
@given(texts=st.lists(QUANTITY_TEXTS, max_size=6))
def test_a_quantity_read_again_is_what_a_first_reading_gives(texts: list[str]) -> None:
    for text in texts + texts:  # each twice: the second from memory when the first was a value
        assert _outcome(quantity.parse_quantity, text) == _outcome(lambda t: quantity._parse_text(t, t), text)


def test_a_refused_quantity_names_each_callers_own_value() -> None:
    quantity.parse_quantity("1")
    for raw in ("1x", Decimal("1e3000000000000")):
        assert _outcome(quantity.parse_quantity, raw) == _outcome(quantity.parse_quantity, raw)
    assert "'1x'" in str(_outcome(quantity.parse_quantity, "1x"))


def test_long_texts_are_not_kept() -> None:
    digits = "1" * 10_000 + "m"
    assert quantity.parse_quantity(digits) == quantity.QUANTITY_MAX
    assert digits not in quantity._READ


# --- effective requests without Fraction zeros ---------------------------------------------------


def _reference_effective_requests(spec: Mapping[str, Any]) -> dict[str, Fraction]:
    """effective_requests as it was before the shortcut (every resource added, zeros included)."""

    def requests(c: Mapping[str, Any]) -> dict[str, Fraction]:
        resources = c.get("resources") or {}
        req, lim = resources.get("requests") or {}, resources.get("limits") or {}
        out = {}
        for name in RESOURCES:
            raw = req[name] if name in req else lim.get(name)
            if raw is not None:
                out[name] = quantity.parse_quantity(raw)
        return out

    def add(a: Mapping[str, Fraction], b: Mapping[str, Fraction]) -> dict[str, Fraction]:
        return {k: a.get(k, Fraction(0)) + b.get(k, Fraction(0)) for k in RESOURCES}

    def most(a: Mapping[str, Fraction], b: Mapping[str, Fraction]) -> dict[str, Fraction]:
        return {k: max(a.get(k, Fraction(0)), b.get(k, Fraction(0))) for k in RESOURCES}

    app: dict[str, Fraction] = {}
    for c in spec.get("containers") or ():
        app = add(app, requests(c))
    sidecars: dict[str, Fraction] = {}
    peak: dict[str, Fraction] = {}
    for c in spec.get("initContainers") or ():
        if c.get("restartPolicy") == "Always":
            sidecars = add(sidecars, requests(c))
            peak = most(peak, sidecars)
        else:
            peak = most(peak, add(sidecars, requests(c)))
    overhead = spec.get("overhead") or {}
    return add(most(add(app, sidecars), peak), {k: quantity.parse_quantity(overhead[k]) for k in RESOURCES if k in overhead})


AMOUNTS = st.sampled_from(["0", "10m", "250m", "1", "2", "16Mi", "1Gi", "1.5", 0, 3, Decimal("0.1")])
GPUS = st.sampled_from(["0", "1", "2", 1, 4])


@st.composite
def _container(draw: st.DrawFn, *, init: bool = False) -> dict[str, Any]:
    requests = draw(st.dictionaries(st.sampled_from(["cpu", "memory", "ephemeral-storage"]), AMOUNTS, max_size=3))
    limits = draw(st.dictionaries(st.sampled_from(["cpu", "memory"]), AMOUNTS, max_size=2))
    gpus = draw(st.none() | GPUS)
    if gpus is not None:  # GPUs: an integer limit, and a request only equal to it
        limits[GPU_RESOURCE] = gpus
        if draw(st.booleans()):
            requests[GPU_RESOURCE] = gpus
    c: dict[str, Any] = {"name": "c", "image": "i"}
    if requests or limits or draw(st.booleans()):
        c["resources"] = {"requests": requests or None, "limits": limits or None}
    if init and draw(st.booleans()):
        c["restartPolicy"] = "Always"
    return c


@st.composite
def _spec(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": draw(st.lists(_container(), min_size=1, max_size=4))}
    if draw(st.booleans()):
        spec["initContainers"] = draw(st.lists(_container(init=True), max_size=4))
    if draw(st.booleans()):
        spec["overhead"] = draw(st.dictionaries(st.sampled_from(["cpu", "memory", GPU_RESOURCE]), AMOUNTS, max_size=3))
    return spec


@SETTINGS
@given(spec=_spec())
def test_effective_requests_equal_the_reference_sums(spec: dict[str, Any]) -> None:
    try:
        got: dict[str, Fraction] | str = effective_requests(spec)
    except InvalidArgument as e:  # a fractional GPU overhead, say: the reference has no such checks
        got = f"refused: {e}"
    if isinstance(got, str):
        assert "nvidia.com/gpu" in got
        return
    assert got == _reference_effective_requests(spec)
    assert list(got) == list(RESOURCES)
    assert all(isinstance(v, Fraction) for v in got.values())


# --- the schema walk: types by lookup, plain strings short-cut -------------------------------------


def _reference_walk(value: Any, root: pod_schema.Node, rules: Any) -> list[tuple[Any, str]]:
    """pod_schema.walk as it was before the shortcuts."""
    problems: list[tuple[Any, str]] = []

    def add(path: Any, description: str) -> None:
        if len(problems) < pod_schema.MAX_PROBLEMS:
            problems.append((path, description))

    stack: list[Any] = [(value, root, ())]
    while stack and len(problems) < pod_schema.MAX_PROBLEMS:
        item, node, path = stack.pop()
        kind = pod_schema.json_type(item)  # unchanged: the walk now looks most types up
        if kind == "null" and (node.kind or "null" in node.types):
            continue
        if not (kind in node.types or (kind == "integer" and "number" in node.types)):
            add(path, pod_schema._type_problem(node, kind, item))
            continue
        if kind == "object":
            for name in reversed(node.required):
                if name not in item:
                    add((*path, name), "required")
            for key, child in reversed(item.items()):
                if pod_schema._bad_unicode(key):
                    add(path, "a key is not valid Unicode (a lone surrogate)")
                    continue
                sub = node.properties.get(key)
                if sub is not None:
                    stack.append((child, sub, (*path, key)))
                elif node.additional is False:
                    add((*path, key), "unknown field")
                elif isinstance(node.additional, pod_schema.Node):
                    stack.append((child, node.additional, (*path, pod_schema.Key(key))))
            rule = rules.get(node.definition) if rules and node.definition else None
            if rule is not None:
                rule(item, path, add)
        elif kind == "array":
            if node.items is not None:
                stack.extend((item[i], node.items, (*path, i)) for i in range(len(item) - 1, -1, -1))
        elif problem := pod_schema._scalar_problem(item, kind, node):
            add(path, problem)
    if stack:
        problems.append(((), f"more than {pod_schema.MAX_PROBLEMS} problems; fix these first"))
    return problems


ODD_VALUES: list[Any] = [
    "\ud800", "é", "x" * 50, Decimal("1.5"), 2**40, -(2**70), "500m", "1Gi", "2026-01-02T15:04:05Z", "yesterday",
    "Always", "Sometimes", "TCP", 1.5, float("nan"), (), {"\ud800": 1}, {"é": "ü"},
]  # fmt: skip


def _mutated(rng: random.Random) -> dict[str, Any]:
    """The policy fuzz test's seed manifest with 1-4 values replaced by junk or by values the walk reads."""
    pod = copy.deepcopy(fuzz.SEED_POD)
    for _ in range(rng.randint(1, 4)):
        path = rng.choice(fuzz.PATHS)
        node: Any = pod
        try:
            for part in path[:-1]:
                node = node[part]
            node[path[-1]] = copy.deepcopy(rng.choice(fuzz.JUNK + ODD_VALUES))
        except (KeyError, IndexError, TypeError):
            continue
    return pod


@pytest.mark.parametrize("seed", range(3))
def test_the_walk_finds_what_the_reference_walk_finds(seed: int) -> None:
    rng = random.Random(seed)
    for pod in [fuzz.SEED_POD, *(_mutated(rng) for _ in range(400))]:
        assert pod_schema.walk(pod, pod_schema.pod_root(), pod_rules.RULES) == _reference_walk(
            pod, pod_schema.pod_root(), pod_rules.RULES
        )


def test_the_walk_stops_where_the_reference_walk_stops() -> None:
    pod = {"spec": {"containers": [{"name": 1, "bogus": None}] * 600}}
    assert pod_schema.walk(pod, pod_schema.pod_root()) == _reference_walk(pod, pod_schema.pod_root(), None)


# --- the manifest's depth, looked at only when its text may nest too deep -------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet="ab{}[]", max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(alphabet="k{[", max_size=3), inner, max_size=3),
    max_leaves=80,
)


@SETTINGS
@given(value=JSON_VALUES, nest=st.integers(min_value=0, max_value=70))
def test_a_text_that_cannot_nest_too_deep_is_not_too_deep(value: Any, nest: int) -> None:
    for _ in range(nest):
        value = [value]
    raw = json.dumps(value)
    if not convert_pods._may_nest_too_deep(raw):
        assert convert_pods._depth(json.loads(raw)) <= convert_pods.MAX_POD_JSON_DEPTH


# --- the pod name at acceptance without building the body -----------------------------------------


@pytest.mark.parametrize("keep_name", [False, True])
@pytest.mark.parametrize(
    "metadata",
    [{"name": "etl"}, {"generateName": "Job_7-"}, {}, None, {"name": "x" * 70, "namespace": "ml"}, {"name": "a.b"}],
)
def test_the_name_at_acceptance_is_the_name_of_the_built_pod(metadata: dict[str, Any] | None, keep_name: bool) -> None:
    pod: dict[str, Any] = {"spec": {"containers": [{"name": "main", "image": "busybox"}]}}
    if metadata is not None or not keep_name:
        pod["metadata"] = metadata or {}
    if keep_name and not (metadata or {}).get("name"):
        return  # refused by validation (kept_name_violations): there is no name to keep
    request = PodRequest(request_id="r", pod=pod, keep_name=keep_name)
    body = build_pod(request, cluster="c", gateway_id="gw", name_suffix="abc12345")
    assert pod_name_of(request, "abc12345") == body["metadata"]["name"]


def test_a_change_already_there_is_taken_at_once_and_only_once() -> None:
    async def main() -> None:
        track = PodTrack(asyncio.Event())
        track.update({"metadata": {"name": "p"}})
        await asyncio.wait_for(track.wait(60), 5)  # taken without waiting out the 60 s
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(track.wait(60), 0.05)  # taken: the next wait waits for a new change

    asyncio.run(main())


# --- log line timestamps read by slicing ------------------------------------------------------------


def _reference_timestamp(text: str) -> datetime | str:
    try:
        head, _, frac = text.rstrip("Z").partition(".")
        base = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
        return base.replace(microsecond=int((frac + "000000")[:6]) if frac else 0)
    except ValueError:
        return "refused"


def _timestamp(text: str) -> datetime | str:
    try:
        return parse_timestamp(text)
    except ValueError:
        return "refused"


STAMPS = st.one_of(
    st.datetimes().map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S") + ".123456789Z"),
    st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{0,9})?Z?", fullmatch=True),
    st.from_regex(r"[0-9]{1,4}-[0-9]{1,2}-[0-9]{1,2}T[0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}Z", fullmatch=True),
    st.sampled_from(["2026-02-30T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T00:00:60Z", "2026-01-01T00:00:00.x"]),
    st.text(max_size=25),
)


@SETTINGS
@given(text=STAMPS)
def test_a_timestamp_is_read_as_strptime_reads_it(text: str) -> None:
    assert _timestamp(text) == _reference_timestamp(text)


# --- a pod's view built in one construction -----------------------------------------------------------


def _reference_interpret(pod: Mapping[str, Any]) -> status.PodView:
    """status.interpret as it was: a base view copied by `replace` for each outcome."""
    st_ = pod.get("status", {})
    k8s_phase = st_.get("phase", "Pending")
    main_name = status._main_name(pod)
    results = [
        r
        for cs in status._statuses(pod, "initContainerStatuses") + status._statuses(pod, "containerStatuses")
        if (r := status._container_result(cs)) is not None
    ]
    main = next((r for r in results if r.name == main_name), None)
    main_status = next((cs for cs in status._statuses(pod, "containerStatuses") if cs.get("name") == main_name), {})
    base = status.PodView(
        phase=PodPhase.PENDING,
        node=str(pod.get("spec", {}).get("nodeName", "")),
        containers=tuple(results),
        main_terminated=main is not None,
        termination_message=((main_status.get("state") or {}).get("terminated") or {}).get("message"),
    )
    if k8s_phase == "Succeeded":
        return replace(base, phase=PodPhase.SUCCEEDED, reason="Completed", finished=True)
    if k8s_phase == "Failed":
        reason = status._failure_reason(pod, main, results)
        message = str(st_.get("message", "")) or (main.message if main else status._first_failure(pod, results))
        return replace(base, phase=PodPhase.FAILED, reason=reason, message=message, finished=True)
    fatal = status._fatal_wait(pod)
    if fatal is not None:
        return replace(base, phase=PodPhase.FAILED, reason=fatal[0], message=fatal[1], finished=True)
    if k8s_phase == "Running":
        return replace(base, phase=PodPhase.RUNNING)
    unschedulable = status._unschedulable(pod)
    if unschedulable:
        return replace(base, reason="Unschedulable", message=unschedulable, unschedulable=unschedulable)
    return base


_STATES = st.sampled_from([
    {}, {"running": {}}, {"waiting": {"reason": "ContainerCreating"}}, {"waiting": {"reason": "ErrImagePull", "message": "no"}},
    {"waiting": {"reason": "CrashLoopBackOff"}}, {"terminated": {"exitCode": 0, "reason": "Completed", "message": "{}"}},
    {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}, {"terminated": {"exitCode": 1, "reason": ""}},
])  # fmt: skip


@st.composite
def _observed_pods(draw: st.DrawFn) -> dict[str, Any]:
    names = ["main", "side", "init"]
    statuses = {
        key: [{"name": draw(st.sampled_from(names)), "state": draw(_STATES), "lastState": draw(_STATES)}
              for _ in range(draw(st.integers(0, 2)))]
        for key in ("initContainerStatuses", "containerStatuses")
    }  # fmt: skip
    pod_status: dict[str, Any] = {k: v for k, v in statuses.items() if v or draw(st.booleans())}
    phase = draw(st.sampled_from([None, "Pending", "Running", "Succeeded", "Failed", "Unknown"]))
    if phase is not None:
        pod_status["phase"] = phase
    for key, values in (("reason", ["", "Evicted"]), ("message", ["", "node lost"])):
        if draw(st.booleans()):
            pod_status[key] = draw(st.sampled_from(values))
    if draw(st.booleans()):
        pod_status["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                     "message": draw(st.sampled_from(["", "0/3 nodes are available"]))}]  # fmt: skip
    spec: dict[str, Any] = {"containers": [{"name": draw(st.sampled_from(names))}]}
    if draw(st.booleans()):
        spec["nodeName"] = "n1"
    return {"spec": spec, "status": pod_status}


@SETTINGS
@given(pod=_observed_pods())
def test_a_pods_view_is_what_the_reference_gives(pod: dict[str, Any]) -> None:
    assert status.interpret(pod) == _reference_interpret(pod)


def test_a_name_suffix_leaves_the_shared_random_state_alone() -> None:
    """Drawn from its own generator: the module's shared state, which hypothesis watches during a test's
    data generation (a gateway served in the test's process draws names meanwhile), is not moved."""
    before = random.getstate()
    assert len({new_suffix() for _ in range(100)}) == 100
    assert random.getstate() == before


# --- the pod body copied as JSON, not by deepcopy -----------------------------------------------------

DECODED = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
    | st.decimals(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=30,
)  # fmt: skip


def _containers(value: Any) -> list[Any]:
    found = [value] if isinstance(value, dict | list) else []
    for child in value.values() if isinstance(value, dict) else value if isinstance(value, list) else ():
        found += _containers(child)
    return found


@SETTINGS
@given(value=st.dictionaries(st.text(max_size=3), DECODED, max_size=4))
def test_a_manifest_copy_equals_deepcopy_and_shares_no_container(value: dict[str, Any]) -> None:
    copied = builder._copied(value)
    assert copied == copy.deepcopy(value)
    assert not {id(c) for c in _containers(copied)} & {id(c) for c in _containers(value)}


def test_values_other_than_decoded_json_are_deep_copied() -> None:
    inner = {"a": [1]}
    value = {"t": (inner,), "s": {1, 2}}
    copied = builder._copied(value)
    assert copied == value and copied["t"][0] is not inner and copied["s"] is not value["s"]
