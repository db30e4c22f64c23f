"""Pod manifest validation at the gateway's edge: every violation with its field path."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gateway.api.convert_pods import pod_violations_of_schema
from gateway.domain import LogSelection, PodRequest, XcomMode
from gateway.errors import FieldViolation, InvalidArgument
from gateway.pods.validation import MAX_MANIFEST_BYTES, pod_violations, validate_request

VALID: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "train",
        "namespace": "airflow",
        "labels": {"team": "ml"},
        "annotations": {"a.b/c": "free text"},
    },
    "spec": {
        "containers": [
            {"name": "main", "image": "python:3.12", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}
        ],
        "initContainers": [{"name": "fetch", "image": "busybox"}],
    },
}


def edited(path: str, value: Any) -> dict[str, Any]:
    """VALID with one value replaced (or removed when value is ...); path like "spec.containers.0.image"."""
    pod = copy.deepcopy(VALID)
    *parents, last = path.split(".")
    node: Any = pod
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) else last
    if value is ...:
        del node[key]
    else:
        node[key] = value
    return pod


@pytest.mark.parametrize(
    "pod",
    [
        VALID,
        {"spec": {"containers": [{"name": "main", "image": "busybox"}]}},
        edited("metadata", ...),
        edited("spec.restartPolicy", "Never"),
        edited("metadata.name", "Anything_Goes"),
        edited("metadata.labels", {"example.com/team": "ml", "empty": ""}),
    ],
)
def test_valid_manifests(pod: dict[str, Any]) -> None:
    assert pod_violations(pod) == []
    validate_request(PodRequest(request_id="r", pod=pod))


P = "pod.pod_json"


def edge_violations(pod: dict[str, Any], **options: Any) -> list[FieldViolation]:
    """What the API answers: the schema walk's problems (api/convert_pods.py), else the gateway's checks."""
    return pod_violations_of_schema(pod) or pod_violations(pod, **options)


@pytest.mark.parametrize(
    ("pod", "field", "fragment"),
    [
        (edited("kind", "Deployment"), f"{P}.kind", "must be one of 'Pod', got 'Deployment'"),
        (edited("apiVersion", "apps/v1"), f"{P}.apiVersion", "must be one of 'v1'"),
        (edited("spec.containers", []), f"{P}.spec.containers", "at least one container is required"),
        (edited("spec.containers", ...), f"{P}.spec.containers", "required"),
        (edited("spec.containers", {"name": "x"}), f"{P}.spec.containers", "must be a list, got object"),
        (edited("spec", []), f"{P}.spec", "must be an object, got array"),
        (edited("spec.containers.0.image", ""), f"{P}.spec.containers[0].image", "required: a container image"),
        (
            edited("spec.containers.0.image", "  "),
            f"{P}.spec.containers[0].image",
            "must not have leading or trailing whitespace",
        ),
        (edited("spec.containers.0.image", ...), f"{P}.spec.containers[0].image", "required"),
        (edited("spec.initContainers.0.image", ""), f"{P}.spec.initContainers[0].image", "required"),
        (edited("spec.containers.0.name", "Main"), f"{P}.spec.containers[0].name", "'Main' is not a DNS-1123 label"),
        (edited("spec.containers.0.name", ...), f"{P}.spec.containers[0].name", "required"),
        (edited("spec.containers.0.name", "x" * 64), f"{P}.spec.containers[0].name", "at most 63 characters"),
        (edited("spec.containers.0", "main"), f"{P}.spec.containers[0]", "must be an object"),
        (
            edited("spec.initContainers.0.name", "main"),
            f"{P}.spec.initContainers[0].name",
            "duplicate container name 'main'",
        ),
        (
            edited("metadata.namespace", "Team_A"),
            f"{P}.metadata.namespace",
            "namespace 'Team_A' is not a DNS-1123 label",
        ),
        (edited("metadata.namespace", 7), f"{P}.metadata.namespace", "must be a string"),
        (edited("metadata.name", 7), f"{P}.metadata.name", "must be a string"),
        (
            edited("metadata.labels", {"podgate.io/request-id": "x"}),
            f"{P}.metadata.labels[podgate.io/request-id]",
            "set by the gateway",
        ),
        (
            edited("metadata.annotations", {"podgate.io/cluster": "x"}),
            f"{P}.metadata.annotations[podgate.io/cluster]",
            "set by the gateway",
        ),
        (edited("metadata.labels", {"bad key": "x"}), f"{P}.metadata.labels[bad key]", "label key 'bad key'"),
        (edited("metadata.labels", {"k": "bad value"}), f"{P}.metadata.labels[k]", "label value 'bad value'"),
        (edited("metadata.labels", {"k": 1}), f"{P}.metadata.labels[k]", "must be a string, got integer"),
        (edited("metadata.labels", ["a"]), f"{P}.metadata.labels", "must be an object, got array"),
        (
            edited("metadata.annotations", {"big": "x" * (256 * 1024)}),
            f"{P}.metadata.annotations",
            "more than the limit of 262144",
        ),
        (edited("spec.restartPolicy", "Always"), f"{P}.spec.restartPolicy", "must be Never or unset"),
        (
            edited("spec.containers.0.resources", {"requests": {"cpu": "fast"}}),
            f"{P}.spec.containers[0].resources.requests[cpu]",
            "'fast' is not a quantity",
        ),
        (
            edited("spec.containers.0.resources", {"limits": {"memory": "-1Gi"}}),
            f"{P}.spec.containers[0].resources.limits[memory]",
            "must not be negative",
        ),
        (
            edited("spec.containers", [{"name": f"c{i}", "image": "x"} for i in range(65)]),
            f"{P}.spec.containers",
            "at most 64 containers",
        ),
        (edited("metadata.annotations", {"x": "y" * MAX_MANIFEST_BYTES}), P, "more than the limit of 1048576"),
    ],
)
def test_violations_name_the_field(pod: dict[str, Any], field: str, fragment: str) -> None:
    violations = edge_violations(pod)
    assert [v.field for v in violations] == [field]
    assert fragment in violations[0].description


@pytest.mark.parametrize(
    ("pod", "field", "fragment"),
    [
        (
            edited("spec.initContainers.0.name", "airflow-xcom-sidecar"),
            f"{P}.spec.containers",
            "reserved for the XCom sidecar",
        ),
        (
            edited("spec.volumes", [{"name": "xcom", "emptyDir": {}}]),
            f"{P}.spec.volumes",
            "volume name 'xcom' is reserved",
        ),
    ],
)
def test_sidecar_mode_reserves_its_names(pod: dict[str, Any], field: str, fragment: str) -> None:
    assert pod_violations(pod, xcom_mode=XcomMode.AUTO) == []
    violations = pod_violations(pod, xcom_mode=XcomMode.SIDECAR)
    assert [v.field for v in violations] == [field]
    assert fragment in violations[0].description


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        (edited("apiVersion", None), [(f"{P}.apiVersion", "must be 'v1', got None")]),
        (edited("kind", None), [(f"{P}.kind", "must be 'Pod', got None")]),
        (edited("metadata.name", None), [(f"{P}.metadata.name", "must be a string")]),
        (edited("metadata.generateName", None), [(f"{P}.metadata.generateName", "must be a string")]),
        (edited("metadata.labels", {"k": None}), [(f"{P}.metadata.labels[k]", "value must be a string, got NoneType")]),
        (edited("metadata.annotations", {"a": None}), [(f"{P}.metadata.annotations[a]", "value must be a string, got NoneType")]),
        (edited("spec", None), [(f"{P}.spec", "required: an object with at least one container")]),
        (edited("spec.containers.0", None), [(f"{P}.spec.containers[0]", "must be an object")]),
        (edited("spec.containers.0.image", None), [(f"{P}.spec.containers[0].image", "required: a container image, e.g. python:3.12")]),
        (edited("spec.containers.0.image", ...), [(f"{P}.spec.containers[0].image", "required: a container image, e.g. python:3.12")]),
        (edited("metadata.annotations", {"example.com/x": "any text at all"}), []),
        (edited("metadata.labels", {"podgate.io": "x"}), []),  # the prefix is podgate.io/, with its slash
        (
            edited("metadata.labels", {"podgate.io/x": "bad value"}),
            [(f"{P}.metadata.labels[podgate.io/x]", "label value 'bad value'"), (f"{P}.metadata.labels[podgate.io/x]", "keys with prefix podgate.io/")],
        ),  # the value first, then the key
        (edited("metadata.namespace", ""), []),
        (edited("metadata.namespace", None), []),
        (edited("spec.initContainers", None), []),
        (edited("spec.initContainers", [None]), [(f"{P}.spec.initContainers[0]", "must be an object")]),
        (edited("spec.containers.0.resources", {"requests": {"cpu": None}}), []),
        (edited("spec.nodeSelector", {"disk": None}), [(f"{P}.spec.nodeSelector", "values must be strings")]),
    ],
)  # fmt: skip
def test_what_the_walk_leaves(pod: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    """Manifests the schema walk accepts (null stands for "not set" there) and the gateway's answer to each."""
    assert pod_violations_of_schema(pod) == []
    violations = pod_violations(pod)
    assert [v.field for v in violations] == [field for field, _ in expected]
    for violation, (_, description) in zip(violations, expected, strict=True):
        assert violation.description.startswith(description)


def test_every_violation_is_reported_at_once() -> None:
    pod = {
        "kind": None,  # the schema allows null, the gateway only 'Pod' or no kind at all
        "metadata": {"namespace": "Bad"},
        "spec": {"containers": [{"name": "a"}, {"name": "a", "image": "x"}]},
    }
    with pytest.raises(InvalidArgument) as caught:
        validate_request(PodRequest(request_id="r", pod=pod))
    assert [v.field for v in caught.value.violations] == [
        f"{P}.kind",
        f"{P}.metadata.namespace",
        f"{P}.spec.containers[0].image",
        f"{P}.spec.containers[1].name",
    ]
    assert str(caught.value).startswith("invalid pod manifest: pod.pod_json.kind: must be 'Pod'")


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [({"name": "exact"}, ""), ({}, "required with keep_name"), ({"name": "Not_Valid"}, "must be valid")],
)
def test_keep_name_needs_a_valid_name(metadata: dict[str, Any], problem: str) -> None:
    from gateway.domain import PodRequest
    from gateway.pods.validation import kept_name_violations

    request = PodRequest(request_id="r", pod={"metadata": metadata}, keep_name=True)
    found = kept_name_violations(request)
    assert (found[0].description if found else "").find(problem) >= 0 if problem else found == []


# --- manifests the schema walk passes, made to reach every check that follows it -------------------

_NAMES = st.sampled_from(["main", "fetch", "a", "Main", "x" * 64, "airflow-xcom-sidecar", "", "b-1"])
_LABEL_KEYS = st.sampled_from(["team", "example.com/team", "podgate.io/x", "podgate.io", "bad key", "", "a/b/c"])
_LABEL_VALUES = st.one_of(st.none(), st.sampled_from(["ml", "", "bad value", "x" * 64, "-a"]))
_MAYBE = st.sampled_from([None, ..., ..., ...])  # null, or (more often) the key left out


def _container(draw: st.DrawFn) -> dict[str, Any] | None:
    if draw(st.integers(0, 9)) == 0:
        return None
    out: dict[str, Any] = {"name": draw(_NAMES)}
    image = draw(st.one_of(_MAYBE, st.sampled_from(["busybox", "", "  "])))
    if image is not ...:
        out["image"] = image
    if draw(st.booleans()):
        out["resources"] = {"requests": {"cpu": draw(st.sampled_from(["1", "100m", None]))}}
    return out


@st.composite
def passing_manifests(draw: st.DrawFn) -> dict[str, Any]:
    """Pod manifests, many with problems, that all pass the schema walk."""
    pod: dict[str, Any] = {}
    for key, wanted in (("apiVersion", "v1"), ("kind", "Pod")):
        value = draw(st.sampled_from([wanted, wanted, ..., None]))
        if value is not ...:
            pod[key] = value
    metadata: dict[str, Any] = {}
    for key, values in (
        ("name", _NAMES),
        ("generateName", _NAMES),
        ("namespace", st.sampled_from(["ml", "Team_A", ""])),
    ):
        value = draw(st.one_of(_MAYBE, values, values))
        if value is not ...:
            metadata[key] = value
    for key in ("labels", "annotations"):
        if draw(st.booleans()):
            metadata[key] = draw(st.dictionaries(_LABEL_KEYS, _LABEL_VALUES, max_size=3))
    pod["metadata"] = draw(st.sampled_from([metadata, None]))
    if draw(st.integers(0, 9)) == 0:
        pod["spec"] = None
        return pod
    spec: dict[str, Any] = {"containers": [_container(draw) for _ in range(draw(st.integers(0, 3)))]}
    init = draw(st.sampled_from(["none", "null", "empty", "one"]))
    if init != "none":
        spec["initContainers"] = {"null": None, "empty": [], "one": [_container(draw)]}[init]
    if draw(st.booleans()):
        spec["restartPolicy"] = draw(st.sampled_from(["Never", "Always", None]))
    if draw(st.booleans()):
        spec["volumes"] = [draw(st.sampled_from([None, {"name": "xcom", "emptyDir": {}}, {"name": "data"}]))]
    if draw(st.booleans()):
        spec["nodeSelector"] = {"disk": draw(st.sampled_from(["ssd", None]))}
    pod["spec"] = spec
    return pod


@st.composite
def passing_requests(draw: st.DrawFn) -> PodRequest:
    return PodRequest(
        request_id="r",
        pod=draw(passing_manifests()),
        xcom_mode=draw(st.sampled_from(XcomMode)),
        log_selection=draw(st.sampled_from(LogSelection)),
        log_containers=tuple(draw(st.lists(_NAMES, max_size=2))),
        keep_name=draw(st.booleans()),
    )


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(request=passing_requests())
def test_a_manifest_the_walk_passes_gets_violations_never_a_crash(request: PodRequest) -> None:
    """The checks after the walk read its types without guarding them again: any manifest it passes gets
    an answer, InvalidArgument with every violation under a field, or none."""
    assume(pod_violations_of_schema(request.pod) == [])
    try:
        validate_request(request)
    except InvalidArgument as e:
        assert (
            e.violations and str(e) == f"invalid pod manifest: {e.violations[0].field}: {e.violations[0].description}"
        )
