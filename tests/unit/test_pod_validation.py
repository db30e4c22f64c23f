"""Pod manifest validation at the gateway's edge: every violation with its field path."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gateway.domain import PodRequest, XcomMode
from gateway.errors import InvalidArgument
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


@pytest.mark.parametrize(
    ("pod", "field", "fragment"),
    [
        (edited("kind", "Deployment"), f"{P}.kind", "must be 'Pod', got 'Deployment'"),
        (edited("apiVersion", "apps/v1"), f"{P}.apiVersion", "must be 'v1'"),
        (edited("spec.containers", []), f"{P}.spec.containers", "at least one container is required"),
        (edited("spec.containers", ...), f"{P}.spec.containers", "at least one container is required"),
        (edited("spec.containers", {"name": "x"}), f"{P}.spec.containers", "must be a list, got dict"),
        (edited("spec", []), f"{P}.spec", "required: an object with at least one container"),
        (edited("spec.containers.0.image", ""), f"{P}.spec.containers[0].image", "required: a container image"),
        (edited("spec.containers.0.image", "  "), f"{P}.spec.containers[0].image", "required: a container image"),
        (edited("spec.containers.0.image", ...), f"{P}.spec.containers[0].image", "required"),
        (edited("spec.initContainers.0.image", ""), f"{P}.spec.initContainers[0].image", "required"),
        (edited("spec.containers.0.name", "Main"), f"{P}.spec.containers[0].name", "'Main' is not a DNS-1123 label"),
        (edited("spec.containers.0.name", ...), f"{P}.spec.containers[0].name", "required: a DNS-1123 label"),
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
        (edited("metadata.labels", {"k": 1}), f"{P}.metadata.labels[k]", "value must be a string, got int"),
        (edited("metadata.labels", ["a"]), f"{P}.metadata.labels", "must be an object, got list"),
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
    violations = pod_violations(pod)
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


def test_every_violation_is_reported_at_once() -> None:
    pod = {
        "kind": "Job",
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
