"""Reads a Kubernetes Pod object and says what it means for the gateway. Pure: no I/O, no clock.

The tracker feeds every watch event of a gateway pod through `interpret`; what comes out decides
phase changes, early failure (image pull, unschedulable past its deadline) and the final result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway import domain

# Waiting reasons that will not resolve by themselves: the pod is failed at once.
FATAL_WAITING_REASONS = frozenset(
    {"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError"}
)
CRASH_LOOP = "CrashLoopBackOff"

Pod = Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class PodView:
    """What the gateway needs to know of one observation of a pod."""

    phase: domain.PodPhase
    reason: str = ""
    message: str = ""
    node: str = ""
    finished: bool = False  # the pod will not run any further (Succeeded, Failed, or a fatal wait)
    main_terminated: bool = False  # the main container has ended (sidecar XCom is read then)
    unschedulable: str = ""  # the scheduler's message while the pod cannot be placed on a node
    containers: tuple[domain.ContainerResult, ...] = ()
    termination_message: str | None = None  # the main container's, for XCom mode auto


def _statuses(pod: Pod, key: str) -> list[Mapping[str, Any]]:
    return list(pod.get("status", {}).get(key) or [])


def _main_name(pod: Pod) -> str:
    containers = pod.get("spec", {}).get("containers") or [{}]
    return str(containers[0].get("name", ""))


def _container_result(cs: Mapping[str, Any]) -> domain.ContainerResult | None:
    terminated = (cs.get("state") or {}).get("terminated") or (cs.get("lastState") or {}).get("terminated")
    if not terminated:
        return None
    return domain.ContainerResult(
        name=str(cs.get("name", "")),
        exit_code=int(terminated.get("exitCode", -1)),
        reason=str(terminated.get("reason", "")),
        message=str(terminated.get("message", ""))[:4096],
    )


def _fatal_wait(pod: Pod) -> tuple[str, str] | None:
    for key in ("initContainerStatuses", "containerStatuses"):
        for cs in _statuses(pod, key):
            waiting = (cs.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason", "")
            if reason in FATAL_WAITING_REASONS:
                return reason, f"container {cs.get('name')}: {waiting.get('message') or reason}"
    return None


def _unschedulable(pod: Pod) -> str:
    for cond in pod.get("status", {}).get("conditions") or []:
        if (
            cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and cond.get("reason") == "Unschedulable"
        ):
            return str(cond.get("message") or "Unschedulable")
    return ""


def _failure_reason(pod: Pod, main: domain.ContainerResult | None, results: list[domain.ContainerResult]) -> str:
    status_reason = str(pod.get("status", {}).get("reason", ""))
    if status_reason:  # Evicted, NodeLost, DeadlineExceeded, ...
        return status_reason
    for r in results:
        if r.reason in ("OOMKilled", "DeadlineExceeded"):
            return r.reason
    if main is not None and main.reason:
        return main.reason
    return next((r.reason for r in results if r.exit_code != 0 and r.reason), "Error")


def _first_failure(pod: Pod, results: list[domain.ContainerResult]) -> str:
    """Names the container that failed when the main one never ran (an init container, most often)."""
    failed = next((r for r in results if r.exit_code != 0), None)
    if failed is None:
        return ""
    init = {cs.get("name") for cs in _statuses(pod, "initContainerStatuses")}
    kind = "init container" if failed.name in init else "container"
    why = f" ({failed.reason})" if failed.reason else ""
    return f"{kind} {failed.name} exited with code {failed.exit_code}{why}; the main container never ran"


def interpret(pod: Pod) -> PodView:
    """One pass over the container statuses (every look of every followed pod comes here): the results of the
    containers that ended, init containers first, and the main container's result and status, each the first of
    its name, as `_statuses` lists them."""
    status = pod.get("status", {})
    k8s_phase = status.get("phase", "Pending")
    node = str(pod.get("spec", {}).get("nodeName", ""))
    main_name = _main_name(pod)
    results: list[domain.ContainerResult] = []
    main: domain.ContainerResult | None = None
    main_status: Mapping[str, Any] = {}
    for key in ("initContainerStatuses", "containerStatuses"):
        for cs in status.get(key) or ():
            result = _container_result(cs)
            if result is not None:
                results.append(result)
                if main is None and result.name == main_name:
                    main = result
            if not main_status and key == "containerStatuses" and cs.get("name") == main_name:
                main_status = cs
    termination_message = ((main_status.get("state") or {}).get("terminated") or {}).get("message")
    phase, reason, message, finished, unschedulable = domain.PodPhase.PENDING, "", "", False, ""
    if k8s_phase == "Succeeded":
        phase, reason, finished = domain.PodPhase.SUCCEEDED, "Completed", True
    elif k8s_phase == "Failed":
        phase, reason, finished = domain.PodPhase.FAILED, _failure_reason(pod, main, results), True
        message = str(status.get("message", "")) or (main.message if main else _first_failure(pod, results))
    elif (fatal := _fatal_wait(pod)) is not None:
        phase, (reason, message), finished = domain.PodPhase.FAILED, fatal, True
    elif k8s_phase == "Running":
        phase = domain.PodPhase.RUNNING
    elif unschedulable := _unschedulable(pod):
        reason, message = "Unschedulable", unschedulable
    return PodView(  # one construction (not a base copied by `replace`: a watch event of every pod comes here)
        phase=phase,
        reason=reason,
        message=message,
        node=node,
        finished=finished,
        main_terminated=main is not None,
        unschedulable=unschedulable,
        containers=tuple(results),
        termination_message=termination_message,
    )


def progress(pod: Pod) -> tuple[object, bool, tuple[object, ...], tuple[object, ...]]:
    """What of a pod its follower's look acts on: the phase `interpret` reads (the pod's phase and whether a
    container waits for good), the containers started (their logs) and those ended (the result, the sidecar's
    XCom). Two observations with the same progress have the same phase, `finished` and `main_terminated`, and
    the same containers started: a look at the second would act on nothing the first did not (a bind, a
    condition, a message, a time or a container waiting to be created changed), so the follower is not woken
    for it (tracking.PodTrack.attach; tests/unit/test_pod_follow_looks.py)."""
    status = pod.get("status", {})
    fatal, started, ended, named = False, [], [], set()
    for key in ("initContainerStatuses", "containerStatuses"):
        for cs in status.get(key) or ():
            state = cs.get("state") or {}
            fatal = fatal or (state.get("waiting") or {}).get("reason", "") in FATAL_WAITING_REASONS
            name = cs.get("name")
            if name not in named:  # a name's first status says whether it started (PodTrack.container_started)
                named.add(name)
                if "running" in state or "terminated" in state:
                    started.append(name)
            if state.get("terminated") or (cs.get("lastState") or {}).get("terminated"):
                ended.append(name)
    return status.get("phase", "Pending"), fatal, tuple(started), tuple(ended)


def exit_code(view: PodView, main_container: str) -> int:
    """The main container's exit code, or -1 when it never ran."""
    return next((c.exit_code for c in view.containers if c.name == main_container), -1)
