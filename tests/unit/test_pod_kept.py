"""What the gateway keeps of each of its pods between watch events (clusters.tracking.kept) reads the same as
the whole pod to everything that reads it: the pod's status and results, and the garbage collector."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway import domain
from gateway.clusters import tracking
from gateway.clusters.tracking import PodTrack, kept
from gateway.pods import builder
from gateway.pods.status import exit_code, interpret
from tests.unit.test_pod_status import CASES


def whole(obj: dict[str, Any]) -> dict[str, Any]:
    """A case's pod as the API server sends it: the built spec, metadata with the caller's annotations and
    managed fields, and the case's status and node."""
    request = domain.PodRequest(
        request_id="req-1",
        pod={
            "metadata": {
                "name": "etl",
                "annotations": {"team.example.com/notes": "x" * 2000},
                "labels": {"app": "etl"},
            },
            "spec": {
                "containers": [
                    {
                        "name": "base",
                        "image": "python:3.12",
                        "command": ["python", "-c", "print(1)"],
                        "env": [{"name": f"V{i}", "value": "v" * 40} for i in range(20)],
                        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
                    }
                ],
                "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
            },
        },
    )
    pod = builder.build_pod(request, cluster="c1", gateway_id="gw-1", name_suffix="abcde")
    pod["spec"]["containers"] = [*pod["spec"]["containers"], *obj["spec"]["containers"][1:]]
    pod["spec"] |= {k: v for k, v in obj["spec"].items() if k == "nodeName"}
    pod["metadata"] |= {
        "namespace": "default",
        "uid": "u-1",
        "creationTimestamp": "2026-12-04T12:00:00Z",
        "managedFields": [{"manager": "podgate", "fieldsV1": {"f:spec": {"f:containers": {}}}}],
    }
    pod["status"] = obj["status"]
    return pod


@pytest.mark.parametrize(("name", "obj"), [(c[0], c[1]) for c in CASES], ids=[c[0] for c in CASES])
def test_the_kept_pod_reads_as_the_whole_pod(name: str, obj: dict[str, Any]) -> None:
    pod = whole(obj)
    small = kept(pod)
    assert interpret(small) == interpret(pod)
    assert exit_code(interpret(small), "base") == exit_code(interpret(pod), "base")
    tracks = PodTrack(synced=None), PodTrack(synced=None)  # type: ignore[arg-type]
    tracks[0].update(pod)
    tracks[1].update(small)
    for container in ("base", "airflow-xcom-sidecar"):
        assert tracks[0].container_started(container) == tracks[1].container_started(container)
        assert tracks[0].container_done(container) == tracks[1].container_done(container)


def test_the_garbage_collector_finds_what_it_reads_and_the_rest_is_dropped() -> None:
    pod = whole(CASES[0][1])
    small = kept(pod)
    meta = small["metadata"]
    assert (meta["namespace"], meta["name"], meta["creationTimestamp"]) == (
        "default",
        pod["metadata"]["name"],
        "2026-12-04T12:00:00Z",
    )
    assert meta["annotations"][builder.REQUEST_ID_ANNOTATION] == "req-1"
    assert meta["labels"][domain.MANAGED_BY_LABEL] == "gw-1"
    assert "team.example.com/notes" not in meta["annotations"] and "managedFields" not in meta
    assert len(json.dumps(small)) * 4 < len(json.dumps(pod))


def running_status(container: dict[str, Any]) -> dict[str, Any]:
    """A running pod's status as an API server writes it: times, addresses and ids that nothing here reads."""
    stamp = "2026-12-04T12:00:01Z"
    return {
        "phase": "Running",
        "conditions": [
            {"type": kind, "status": "True", "lastProbeTime": None, "lastTransitionTime": stamp}
            for kind in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
        ],
        "hostIP": "10.0.0.7",
        "hostIPs": [{"ip": "10.0.0.7"}],
        "podIP": "10.244.1.9",
        "podIPs": [{"ip": "10.244.1.9"}],
        "startTime": stamp,
        "qosClass": "Burstable",
        "containerStatuses": [
            {
                "image": "docker.io/library/python:3.12",
                "imageID": "docker.io/library/python@sha256:" + "0" * 64,
                "containerID": "containerd://" + "1" * 64,
                "ready": True,
                "restartCount": 0,
                "started": True,
                "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
                "volumeMounts": [{"name": "kube-api-access", "mountPath": "/var/run/secrets", "readOnly": True}],
                **container,
            }
        ],
    }


@pytest.mark.parametrize(
    "container",
    [
        {"name": "base", "state": {"running": {"startedAt": "2026-12-04T12:00:02Z"}}},
        {"name": "base", "state": {"terminated": {"exitCode": 3, "reason": "Error", "message": "boom"}}},
        {
            "name": "base",
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
        },
    ],
    ids=["running", "terminated", "restarting"],
)
def test_the_kept_status_reads_the_same_without_what_nobody_reads(container: dict[str, Any]) -> None:
    pod = whole(CASES[0][1])
    pod["status"] = running_status(container)
    status = kept(pod)["status"]
    assert interpret(kept(pod)) == interpret(pod)
    tracks = PodTrack(synced=None), PodTrack(synced=None)  # type: ignore[arg-type]
    tracks[0].update(pod)
    tracks[1].update(kept(pod))
    assert tracks[0].container_started("base") == tracks[1].container_started("base")
    assert tracks[0].container_done("base") == tracks[1].container_done("base")
    assert status["containerStatuses"] == [container]
    assert set(status) == {"phase", "conditions", "containerStatuses"}
    assert all(set(c) == {"type", "status"} for c in status["conditions"])
    assert len(json.dumps(status)) * 3 < len(json.dumps(pod["status"]))


def test_kept_pods_share_what_repeats_and_keep_what_is_their_own() -> None:
    """Thousands of followed pods: a running pod's conditions and an empty lastState are one object for all, its
    words (phase, namespace, container name) one string; what differs (a message, a start time) stays each pod's."""
    container = {"name": "base", "state": {"running": {"startedAt": "2026-12-04T12:00:02Z"}}, "lastState": {}}
    pods = [json.loads(json.dumps(whole(CASES[0][1]) | {"status": running_status(container)})) for _ in range(2)]
    pods[1]["status"]["containerStatuses"][0]["state"]["running"]["startedAt"] = "2026-12-04T12:00:09Z"
    pods[1]["status"]["conditions"][2] |= {"status": "False", "reason": "ContainersNotReady", "message": "m-1"}
    one, two = (kept(p)["status"] for p in pods)
    assert one["conditions"][0] is two["conditions"][0]
    assert one["conditions"][2] == {"type": "Ready", "status": "True"}
    assert two["conditions"][2] == {"type": "Ready", "status": "False", "reason": "ContainersNotReady", "message": "m-1"}
    first, second = one["containerStatuses"][0], two["containerStatuses"][0]
    assert first["lastState"] is second["lastState"] == {}
    assert first["name"] is second["name"] and one["phase"] is two["phase"]
    assert first["state"] == {"running": {"startedAt": "2026-12-04T12:00:02Z"}}
    assert second["state"] == {"running": {"startedAt": "2026-12-04T12:00:09Z"}}
    many = [{"type": "Ready", "status": "False", "message": f"m-{i}"} for i in range(tracking.SHARED_PARTS + 10)]
    pod = whole(CASES[0][1]) | {"status": {"phase": "Pending", "conditions": many}}
    assert kept(pod)["status"]["conditions"] == many  # past the bound each is kept as its own, unchanged
