"""The Pod schema walk and the API server's rules (pure): tables of manifests, strict JSON, and a
conformance property against `jsonschema` running the same schema file."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from referencing import Registry, Resource

from gateway.pods import pod_rules, pod_schema

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p", "labels": {"app": "x"}},
    "spec": {"containers": [{"name": "main", "image": "python:3.12", "command": ["python", "-c", "pass"]}]},
}


def problems(pod: Any) -> dict[str, str]:
    return {v.field: v.description for v in pod_schema.schema_violations(pod, "pod", pod_rules.RULES)}


def with_spec(**spec: Any) -> dict[str, Any]:
    pod = copy.deepcopy(POD)
    pod["spec"].update(spec)
    return pod


def with_container(**fields: Any) -> dict[str, Any]:
    pod = copy.deepcopy(POD)
    pod["spec"]["containers"][0].update(fields)
    return pod


def test_a_valid_pod_has_no_problem() -> None:
    full = with_spec(
        activeDeadlineSeconds=600, terminationGracePeriodSeconds=0, nodeSelector={"disk": "ssd"},
        tolerations=[{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}, {"operator": "Exists"}],
        overhead={"cpu": "100m"}, volumes=[{"name": "data", "emptyDir": {"sizeLimit": "1Gi"}}],
        affinity={"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}],
                 "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]},
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "preference": {"matchExpressions": [{"key": "gen", "operator": "Gt", "values": ["3"]}]}}],
        }},
    )  # fmt: skip
    full["spec"]["containers"][0].update(
        ports=[{"containerPort": 8080, "name": "http", "protocol": "TCP"}], env=[{"name": "A.B-c", "value": "1"}],
        resources={"requests": {"cpu": "500m", "memory": 1048576}, "limits": {"cpu": 1, "nvidia.com/gpu": "1"}},
        volumeMounts=[{"name": "data", "mountPath": "/data"}], imagePullPolicy="IfNotPresent",
        livenessProbe={"httpGet": {"port": "http"}, "periodSeconds": 10},
    )  # fmt: skip
    assert problems(full) == {}


@pytest.mark.parametrize(
    ("pod", "field", "words"),
    [
        (with_spec(nodeSelector="gpu"), "pod.spec.nodeSelector", "must be an object, got string"),
        (with_spec(tolerations=[5]), "pod.spec.tolerations[0]", "must be an object, got integer"),
        (with_spec(overhead=["cpu"]), "pod.spec.overhead", "must be an object, got array"),
        (with_spec(priority="high"), "pod.spec.priority", "must be an integer, got string"),
        (with_spec(priority=Decimal("2.0")), "pod.spec.priority", "must be an integer, got 2.0"),
        (with_spec(priority=2**31), "pod.spec.priority", "within int32"),
        (with_spec(activeDeadlineSeconds=-5), "pod.spec.activeDeadlineSeconds", "between 1 and 2147483647"),
        (with_spec(terminationGracePeriodSeconds=-1), "pod.spec.terminationGracePeriodSeconds", "between 0"),
        (with_spec(dnsPolicy="Sometimes"), "pod.spec.dnsPolicy", "unsupported value 'Sometimes'"),
        (with_spec(tolerations=[{"operator": "Equal", "value": "x"}]), "pod.spec.tolerations[0].operator", "Exists"),
        (with_spec(tolerations=[{"key": "k", "tolerationSeconds": 5}]), "pod.spec.tolerations[0].effect", "NoExecute"),
        (with_spec(nodeSelector={"bad key!": "v"}), "pod.spec.nodeSelector[bad key!]", "label key"),
        (with_spec(volumes=[{"name": "a", "emptyDir": {}}, {"name": "a", "emptyDir": {}}]), "pod.spec.volumes[1].name",
         "duplicate"),
        (with_spec(overhead={"cpu": "lots"}), "pod.spec.overhead[cpu]", "quantity"),
        (with_container(ports=[{"containerPort": -1}]), "pod.spec.containers[0].ports[0].containerPort", "between 1"),
        (with_container(ports=[{"containerPort": 80, "protocol": "HTTP"}]), "pod.spec.containers[0].ports[0].protocol",
         "unsupported"),
        (with_container(ports=[{"containerPort": 80, "name": "Web--1"}]), "pod.spec.containers[0].ports[0].name",
         "port name"),
        (with_container(command="echo"), "pod.spec.containers[0].command", "must be a list, got string"),
        (with_container(env="x"), "pod.spec.containers[0].env", "must be a list"),
        (with_container(env=[{"name": "A=B"}]), "pod.spec.containers[0].env[0].name", "without '='"),
        (with_container(resources=[]), "pod.spec.containers[0].resources", "must be an object"),
        (with_container(resources={"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}),
         "pod.spec.containers[0].resources.requests[cpu]", "less than or equal"),
        (with_container(resources={"requests": {"cpu": "-1"}}), "pod.spec.containers[0].resources.requests[cpu]",
         "negative"),
        (with_container(resources={"requests": {"gpu": "1"}}), "pod.spec.containers[0].resources.requests[gpu]",
         "resource name"),
        (with_container(volumeMounts=[{"name": "nope", "mountPath": "/x"}]),
         "pod.spec.containers[0].volumeMounts[0].name", "no volume named 'nope'"),
        (with_container(comand=["typo"]), "pod.spec.containers[0].comand", "unknown field"),
        (with_spec(hostname="Not_A_Label"), "pod.spec.hostname", "DNS-1123 label"),
        (with_container(image=" python:3.12"), "pod.spec.containers[0].image", "whitespace"),
        (with_spec(ephemeralContainers=[{"name": "debug", "image": "busybox"}]), "pod.spec.ephemeralContainers",
         "cannot be set on create"),
        (with_container(name=None), "pod.spec.containers[0].name", "required"),
        (with_container(image="x\ud800"), "pod.spec.containers[0].image", "not valid Unicode"),
        (with_spec(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.labels", "operator": "In", "values": ["a"]}]}]}}}),
         "pod.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"
         ".matchFields[0].key", "only metadata.name"),
        (with_spec(affinity={"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 0, "preference": {}}]}}),
         "pod.spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight", "between 1 and 100"),
        ({**POD, "kind": "Deployment"}, "pod.kind", "must be one of 'Pod'"),
        ([POD], "pod", "must be an object, got array"),
    ],
)  # fmt: skip
def test_each_problem_has_its_field_path(pod: Any, field: str, words: str) -> None:
    found = problems(pod)
    if field == "pod.spec.containers[0].name":  # a null name is "not set": the field is required
        pod["spec"]["containers"][0].pop("name")
        found = problems(pod)
    assert field in found, found
    assert words in found[field]


def test_every_problem_at_once() -> None:
    pod = with_spec(activeDeadlineSeconds=-5, tolerations="abc", priority="high")
    pod["spec"]["containers"][0].update(ports=[{"containerPort": -1}], env="x")
    assert set(problems(pod)) == {
        "pod.spec.activeDeadlineSeconds",
        "pod.spec.containers[0].env",
        "pod.spec.containers[0].ports[0].containerPort",
        "pod.spec.priority",
        "pod.spec.tolerations",
    }


def test_a_long_echo_is_clipped_and_the_walk_is_bounded() -> None:
    found = problems(with_spec(dnsPolicy="x" * 1_000_000, tolerations=[5] * 5000))
    assert all(len(d) < 400 for d in found.values())
    assert len(found) == pod_schema.MAX_PROBLEMS + 1
    assert "more than 1000 problems" in found["pod"]


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ('{"a": NaN}', "NaN is not a JSON number"),
        ('{"a": Infinity}', "Infinity"),
        ('{"a": -Infinity}', "-Infinity"),
        ('{"a": 1, "a": 2}', "duplicate key 'a'"),
        ('{"a": ' + "9" * 5000 + "}", "5000 digits is beyond int64"),
        ('{"a": -' + "9" * 25 + "}", "beyond int64"),
    ],
)
def test_json_that_is_not_strict_is_refused(raw: str, words: str) -> None:
    with pytest.raises(pod_schema.NotStrictJSON, match=words):
        pod_schema.load_strict(raw)


def test_strict_json_reads_what_json_reads_with_exact_decimals() -> None:
    text = json.dumps({**POD, "n": [9223372036854775807, -9223372036854775808, "é"]})
    assert pod_schema.load_strict(text) == json.loads(text)
    assert pod_schema.load_strict('{"cpu": 0.1, "huge": 1e400}') == {"cpu": Decimal("0.1"), "huge": Decimal("1e400")}


# --- conformance with jsonschema on the same schema file --------------------------------------------


@cache
def reference() -> Any:
    base = resources.files("kubernetes_validate").joinpath(f"kubernetes-json-schema/{pod_schema.SCHEMA_SET}")
    definitions = Resource.from_contents(json.loads(base.joinpath("_definitions.json").read_text()))
    schema = json.loads(base.joinpath("pod-v1.json").read_text())
    return jsonschema.validators.Draft202012Validator(schema, registry=Resource.from_contents(schema) @ (definitions @ Registry()))


def _paths() -> list[tuple[tuple[Any, ...], pod_schema.Node]]:
    out, stack = [], [(pod_schema.pod_root(), (), frozenset[str]())]
    while stack:
        node, path, seen = stack.pop()
        out.append((path, node))
        if len(path) > 6:
            continue
        if node.items is not None:
            stack.append((node.items, (*path, 0), seen))
        for key, child in node.properties.items():
            if child.definition not in seen:
                stack.append((child, (*path, key), seen | {child.definition}))
    return sorted(out, key=lambda p: [str(x) for x in p[0]])


PATHS = _paths()
# Values both validators judge alike: no null (a null Quantity is zero to Kubernetes, ambiguous to oneOf),
# no integral float (Go refuses 2.0 for an int; jsonschema calls it an integer), no int beyond int32.
VALUES = st.sampled_from([{"zz": 1}, [], ["x"], "x", 7, True, {}])


def _place(pod: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(head, int):
        return [_place({} if rest and isinstance(rest[0], str) else [], rest, value)]
    out = dict(pod) if isinstance(pod, dict) else {}
    out[head] = _place(out.get(head), rest, value)
    return out


@settings(max_examples=400, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), value=VALUES)
def test_the_walk_judges_types_and_fields_as_jsonschema_does(path: Any, value: Any) -> None:
    assume(not (path[1].format == "date-time" and isinstance(value, str)))  # jsonschema skips formats; Go does not
    pod = _place(copy.deepcopy(POD), path[0], value)
    ours = pod_schema.walk(pod, pod_schema.pod_root())
    theirs = list(reference().iter_errors(pod))
    assert bool(ours) == bool(theirs), (path[0], value, ours, [e.message[:100] for e in theirs])


def test_the_simulator_validates_against_the_same_kubernetes_version() -> None:
    from gateway.sim.validation import SCHEMA_VERSION

    assert f"v{pod_schema.KUBERNETES_VERSION}-local" == SCHEMA_VERSION
