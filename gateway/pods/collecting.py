"""What an ended pod leaves: its XCom (from the termination message or the sidecar) and its result.

The result functions are pure; the two sidecar calls are the only I/O. As in KubernetesPodOperator,
only a main container that exited 0 has an XCom result; otherwise its termination message is the
runtime's error text, not a payload.
"""

from __future__ import annotations

import logging

from gateway import domain
from gateway.clusters.kubeapi import errors as kube
from gateway.clusters.tracking import PodTrack
from gateway.pods import builder, status, xcom
from gateway.pods.cluster import PodCluster

log = logging.getLogger(__name__)

READ_XCOM = ["sh", "-c", f"test -e {xcom.XCOM_PATH} && cat {xcom.XCOM_PATH} || true"]
STOP_SIDECAR = ["sh", "-c", "kill -s INT 1"]


def main_container(request: domain.PodRequest) -> str:
    return str((request.pod.get("spec", {}).get("containers") or [{}])[0].get("name", ""))


def sidecar_ready_to_read(request: domain.PodRequest, track: PodTrack, view: status.PodView) -> bool:
    """Sidecar mode: the main container has ended and the sidecar has started (a fast main container
    can end before its sidecar runs, and exec into a container not yet running is refused)."""
    return (
        request.xcom_mode is domain.XcomMode.SIDECAR
        and view.main_terminated
        and track.container_started(builder.XCOM_SIDECAR_NAME)
    )


def needs_sidecar_stop(request: domain.PodRequest, view: status.PodView) -> bool:
    """The sidecar keeps a pod running after its main container ended: stopped once its file is read."""
    return request.xcom_mode is domain.XcomMode.SIDECAR and not view.finished


async def read_xcom(cluster: PodCluster, record: domain.PodRecord, view: status.PodView) -> tuple[str | None, str]:
    """(the XCom JSON or None, an error message or "")."""
    mode = record.request.xcom_mode
    try:
        if mode is domain.XcomMode.AUTO:
            return xcom.from_termination_message(view.termination_message), ""
        if mode is domain.XcomMode.SIDECAR and not view.finished:
            done = await cluster.exec(record.namespace, record.name, builder.XCOM_SIDECAR_NAME, READ_XCOM)
            return xcom.from_sidecar_output(done.stdout), ""
    except xcom.XcomError as e:
        return None, str(e)
    except kube.KubeError as e:
        return None, f"could not read the XCom file through the sidecar: {e}"
    return None, ""


async def stop_sidecar(cluster: PodCluster, record: domain.PodRecord) -> None:
    try:
        await cluster.exec(record.namespace, record.name, builder.XCOM_SIDECAR_NAME, STOP_SIDECAR)
    except kube.KubeError as e:
        log.info("stopping the XCom sidecar of %s/%s: %s", record.namespace, record.name, e)


def ended_result(
    view: status.PodView,
    code: int,
    xcom_json: str | None,
    xcom_error: str,
) -> domain.PodResult:
    """The result of a pod whose main container ended with `code` (-1: never ran); warnings are added
    by the follower once they have settled."""
    phase = (
        domain.PodPhase.SUCCEEDED if code == 0 and view.phase is not domain.PodPhase.FAILED else domain.PodPhase.FAILED
    )
    reason, message = (view.reason, view.message) if phase is domain.PodPhase.FAILED else ("Completed", "")
    if xcom_error:
        phase, reason, message = domain.PodPhase.FAILED, "XComError", xcom_error
    return domain.PodResult(
        phase=phase,
        exit_code=code,
        reason=reason or "Error",
        message=message,
        containers=view.containers,
        xcom_json=xcom_json,
    )


def startup_timeout_result(
    request: domain.PodRequest, view: status.PodView, warnings: tuple[domain.KubernetesEvent, ...]
) -> domain.PodResult:
    why = view.message or "the pod did not start"
    return domain.PodResult(
        phase=domain.PodPhase.FAILED,
        reason="StartupTimeout" if not view.unschedulable else "Unschedulable",
        message=f"pod did not start within {request.startup_timeout_seconds:g}s: {why}",
        containers=view.containers,
        warning_events=warnings,
    )
