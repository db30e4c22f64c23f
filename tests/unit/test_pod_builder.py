"""Building the Pod to create: name, labels, restartPolicy and the XCom modes."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest

from gateway.domain import AirflowContext, PodRequest, XcomMode
from gateway.placement.labels import dns1123_label_error, label_value_error
from gateway.pods.builder import (
    REQUEST_ID_LABEL,
    XCOM_SIDECAR_COMMAND,
    build_pod,
    pod_name,
    request_id_label,
    safe_label_value,
)


def manifest(**metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "containers": [
                {
                    "name": "base",
                    "image": "python:3.12",
                    "command": ["python", "-c", "print(42)"],
                    "env": [{"name": "A", "value": "1"}],
                },
                {"name": "helper", "image": "busybox"},
            ],
            "nodeSelector": {"disk": "ssd"},
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    }


def request(pod: dict[str, Any] | None = None, **kw: Any) -> PodRequest:
    return PodRequest(
        request_id=kw.pop("request_id", "req-1"), pod=pod if pod is not None else manifest(name="train"), **kw
    )


def build(req: PodRequest, suffix: str = "abc12345") -> dict[str, Any]:
    return build_pod(req, cluster="local-eu-gpu", gateway_id="gw-1", name_suffix=suffix)


@pytest.mark.parametrize(
    ("metadata", "suffix", "name"),
    [
        ({"name": "train"}, "abc12345", "train-abc12345"),
        ({"generateName": "train-"}, "abc12345", "train-abc12345"),
        ({}, "abc12345", "podgate-abc12345"),
        ({"name": "My_Task.v2"}, "x1", "my-task-v2-x1"),
        ({"name": "---"}, "x1", "podgate-x1"),
        ({"name": "a" * 100}, "abc12345", "a" * 54 + "-abc12345"),
        ({"name": "a" * 53 + "-b"}, "abc12345", "a" * 53 + "-abc12345"),
        ({"name": "UPPER"}, "z", "upper-z"),
    ],
)
def test_pod_name(metadata: dict[str, Any], suffix: str, name: str) -> None:
    built = pod_name(metadata, suffix)
    assert built == name
    assert dns1123_label_error(built) == ""
    assert len(built) <= 63


@pytest.mark.parametrize("suffix", ["", "UPPER", "a_b", "x" * 63])
def test_pod_name_refuses_a_bad_suffix(suffix: str) -> None:
    with pytest.raises(ValueError, match="suffix"):
        pod_name({"name": "x"}, suffix)


def md5_9(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()[:9]


@pytest.mark.parametrize(
    ("value", "safe"),
    [
        ("my_dag", "my_dag"),
        ("my.dag-1", "my.dag-1"),
        ("", ""),
        (
            "manual__2024-01-01T00:00:00+00:00",
            "manual__2024-01-01T0000000000-" + md5_9("manual__2024-01-01T00:00:00+00:00"),
        ),
        ("_leading", "leading-" + md5_9("_leading")),
        ("trailing.", "trailing-" + md5_9("trailing.")),
        ("x" * 63, "x" * 63),
        ("x" * 64, "x" * 53 + "-" + md5_9("x" * 64)),
        ("grüße", "gre-" + md5_9("grüße")),
    ],
)
def test_safe_label_value_matches_kubernetes_pod_operator(value: str, safe: str) -> None:
    assert safe_label_value(value) == safe
    assert label_value_error(safe) == ""


def test_labels_annotations_and_restart_policy() -> None:
    rid = "airflow:dag/task/run:1" + "x" * 200
    req = request(
        manifest(name="train", namespace="airflow", labels={"team": "ml"}, annotations={"note": "keep"}),
        request_id=rid,
        airflow=AirflowContext(
            dag_id="etl", task_id="load", run_id="scheduled__2024-01-01T00:00:00+00:00", map_index=3, try_number=2
        ),
    )
    pod = build(req)
    meta = pod["metadata"]
    assert meta["name"] == "train-abc12345"
    assert meta["namespace"] == "airflow"
    assert meta["labels"] == {
        "team": "ml",
        "dag_id": "etl",
        "task_id": "load",
        "run_id": safe_label_value("scheduled__2024-01-01T00:00:00+00:00"),
        "try_number": "2",
        "map_index": "3",
        "podgate.io/managed-by": "gw-1",
        "podgate.io/request-id": request_id_label(rid),
    }
    assert meta["annotations"] == {"note": "keep", "podgate.io/request-id": rid, "podgate.io/cluster": "local-eu-gpu"}
    assert all(label_value_error(v) == "" for v in meta["labels"].values())
    assert pod["spec"]["restartPolicy"] == "Never"


def test_unmapped_task_has_no_map_index_label() -> None:
    pod = build(request(airflow=AirflowContext(dag_id="d", task_id="t", run_id="r")))
    assert "map_index" not in pod["metadata"]["labels"]
    assert pod["metadata"]["labels"]["try_number"] == "1"


@pytest.mark.parametrize("rid", ["a", "req-1", "x" * 253, "with/slashes:and.dots"])
def test_request_id_label_is_a_stable_valid_label(rid: str) -> None:
    value = request_id_label(rid)
    assert label_value_error(value) == ""
    assert value == request_id_label(rid)
    assert value != request_id_label(rid + "!")


def test_defaults_for_a_minimal_manifest() -> None:
    pod = build(request({"spec": {"containers": [{"name": "main", "image": "busybox"}]}}))
    assert (pod["apiVersion"], pod["kind"]) == ("v1", "Pod")
    assert pod["metadata"]["name"] == "podgate-abc12345"
    assert pod["metadata"]["namespace"] == "default"
    assert "generateName" not in pod["metadata"]
    assert REQUEST_ID_LABEL in pod["metadata"]["labels"]


def test_xcom_disabled_leaves_containers_alone() -> None:
    original = manifest(name="train")
    pod = build(request(original))
    assert pod["spec"]["containers"] == original["spec"]["containers"]
    assert pod["spec"]["volumes"] == original["spec"]["volumes"]


def test_xcom_auto_uses_the_termination_message_of_the_main_container() -> None:
    pod = build(request(xcom_mode=XcomMode.AUTO))
    main, helper = pod["spec"]["containers"]
    assert main["terminationMessagePath"] == "/airflow/xcom/return.json"
    assert main["terminationMessagePolicy"] == "File"
    assert "terminationMessagePath" not in helper
    assert len(pod["spec"]["containers"]) == 2
    assert pod["spec"]["volumes"] == [{"name": "data", "emptyDir": {}}]


@pytest.mark.parametrize(
    ("image", "expected"), [("", "alpine"), ("registry.local/alpine:3.20", "registry.local/alpine:3.20")]
)
def test_xcom_sidecar_follows_kubernetes_pod_operator(image: str, expected: str) -> None:
    pod = build(request(xcom_mode=XcomMode.SIDECAR, xcom_sidecar_image=image))
    spec = pod["spec"]
    assert spec["volumes"] == [{"name": "data", "emptyDir": {}}, {"name": "xcom", "emptyDir": {}}]
    main, helper, sidecar = spec["containers"]
    assert main["volumeMounts"] == [{"name": "xcom", "mountPath": "/airflow/xcom"}]
    assert "volumeMounts" not in helper
    assert sidecar == {
        "name": "airflow-xcom-sidecar",
        "image": expected,
        "command": ["sh", "-c", XCOM_SIDECAR_COMMAND],
        "volumeMounts": [{"name": "xcom", "mountPath": "/airflow/xcom"}],
        "resources": {"requests": {"cpu": "1m", "memory": "10Mi"}},
    }
    assert XCOM_SIDECAR_COMMAND == 'trap "exit 0" INT; while true; do sleep 1; done;'
    assert "terminationMessagePath" not in main


def test_sidecar_keeps_existing_volume_mounts() -> None:
    pod_in = manifest(name="x")
    pod_in["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    main = build(request(pod_in, xcom_mode=XcomMode.SIDECAR))["spec"]["containers"][0]
    assert main["volumeMounts"] == [
        {"name": "data", "mountPath": "/data"},
        {"name": "xcom", "mountPath": "/airflow/xcom"},
    ]


@pytest.mark.parametrize("mode", list(XcomMode))
def test_the_callers_manifest_is_not_modified_and_building_is_deterministic(mode: XcomMode) -> None:
    original = manifest(name="train", labels={"a": "b"})
    before = copy.deepcopy(original)
    req = request(original, xcom_mode=mode)
    first = build(req)
    assert original == before
    assert build(req) == first
    assert build(req, suffix="other") != first
    assert first["spec"]["nodeSelector"] == {"disk": "ssd"}
    assert first["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}]
