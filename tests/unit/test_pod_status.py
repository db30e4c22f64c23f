"""How the gateway reads Kubernetes pod objects: phase, failure reasons, results. Table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.domain import PodPhase
from gateway.pods.status import exit_code, interpret


def pod(
    phase: str = "Pending",
    *,
    containers: list[dict[str, Any]] | None = None,
    init: list[dict[str, Any]] | None = None,
    reason: str = "",
    message: str = "",
    conditions: list[dict[str, Any]] | None = None,
    node: str = "",
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": phase,
        "containerStatuses": containers or [],
        "initContainerStatuses": init or [],
    }
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    if conditions:
        status["conditions"] = conditions
    spec: dict[str, Any] = {"containers": [{"name": "base"}, {"name": "airflow-xcom-sidecar"}]}
    if node:
        spec["nodeName"] = node
    return {"spec": spec, "status": status}


def terminated(name: str, code: int, reason: str = "", message: str = "") -> dict[str, Any]:
    term: dict[str, Any] = {"exitCode": code, "reason": reason}
    if message:
        term["message"] = message
    return {"name": name, "state": {"terminated": term}}


def waiting(name: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"name": name, "state": {"waiting": {"reason": reason, "message": message}}}


UNSCHED = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available"}]

CASES = [
    ("fresh pending", pod(), PodPhase.PENDING, "", False),
    ("unschedulable", pod(conditions=UNSCHED), PodPhase.PENDING, "Unschedulable", False),
    ("container creating", pod(containers=[waiting("base", "ContainerCreating")]), PodPhase.PENDING, "", False),
    (
        "image pull backoff",
        pod(containers=[waiting("base", "ImagePullBackOff", "no such image")]),
        PodPhase.FAILED,
        "ImagePullBackOff",
        True,
    ),
    ("err image pull in init", pod(init=[waiting("setup", "ErrImagePull")]), PodPhase.FAILED, "ErrImagePull", True),
    ("running", pod("Running", node="n1"), PodPhase.RUNNING, "", False),
    (
        "crash loop is not fatal by itself",
        pod("Running", containers=[waiting("base", "CrashLoopBackOff")]),
        PodPhase.RUNNING,
        "",
        False,
    ),
    (
        "succeeded",
        pod("Succeeded", containers=[terminated("base", 0, "Completed")]),
        PodPhase.SUCCEEDED,
        "Completed",
        True,
    ),
    ("failed error", pod("Failed", containers=[terminated("base", 3, "Error")]), PodPhase.FAILED, "Error", True),
    ("oom", pod("Failed", containers=[terminated("base", 137, "OOMKilled")]), PodPhase.FAILED, "OOMKilled", True),
    (
        "deadline",
        pod("Failed", reason="DeadlineExceeded", message="Pod was active too long"),
        PodPhase.FAILED,
        "DeadlineExceeded",
        True,
    ),
    (
        "evicted",
        pod("Failed", reason="Evicted", message="The node was low on memory"),
        PodPhase.FAILED,
        "Evicted",
        True,
    ),
    (
        "node lost",
        pod("Failed", reason="NodeLost", containers=[terminated("base", 137, "Error")]),
        PodPhase.FAILED,
        "NodeLost",
        True,
    ),
    ("init failed", pod("Failed", init=[terminated("setup", 2, "Error")]), PodPhase.FAILED, "Error", True),
]


@pytest.mark.parametrize(("name", "obj", "phase", "reason", "finished"), CASES, ids=[c[0] for c in CASES])
def test_interpret(name: str, obj: dict[str, Any], phase: PodPhase, reason: str, finished: bool) -> None:
    view = interpret(obj)
    assert (view.phase, view.reason, view.finished) == (phase, reason, finished)


def test_main_container_results_and_termination_message() -> None:
    view = interpret(
        pod(
            "Running",
            containers=[
                terminated("base", 0, "Completed", '{"v": 42}'),
                {"name": "airflow-xcom-sidecar", "state": {"running": {}}},
            ],
        )
    )
    assert view.main_terminated
    assert view.termination_message == '{"v": 42}'
    assert exit_code(view, "base") == 0


def test_exit_code_when_never_ran() -> None:
    assert exit_code(interpret(pod()), "base") == -1


def test_unschedulable_message_is_carried() -> None:
    assert interpret(pod(conditions=UNSCHED)).unschedulable == "0/3 nodes are available"
