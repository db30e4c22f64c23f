"""KubernetesPodOperator's run options (logs, XCom, on-finish, skip codes, direct-connection arguments) turned
into Podgate request options. Pure: no Airflow, no I/O."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from gateway.airflow.pod_builder import TaskIdentity
from gateway.client.request import REQUEST_ID_RE, LogSelection, OnFinishAction, XcomMode

DEFAULT_KUBERNETES_CONN_ID = "kubernetes_default"


def request_id(identity: TaskIdentity, *, include_try_number: bool) -> str:
    """The gateway's idempotency key: (dag_id, task_id, run_id, map_index) as KPO's reattach labels, plus the
    try number when reattaching is off. Readable when it fits the id alphabet, else a digest."""
    parts = ["airflow", identity.dag_id, identity.task_id, identity.run_id, str(identity.map_index)]
    if include_try_number:
        parts.append(f"try-{identity.try_number}")
    readable = "/".join(parts)
    if REQUEST_ID_RE.match(readable):
        return readable
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:40]
    return f"airflow/{digest}"


def log_selection(
    get_logs: bool,
    container_logs: Iterable[str] | str | bool | None,
    init_container_logs: Iterable[str] | str | bool | None,
    base_container_name: str,
) -> LogSelection | tuple[str, ...]:
    """KPO streams the base container by default; True means every container; names pick containers."""
    if not get_logs and not init_container_logs:
        return LogSelection.NONE
    if container_logs is True or init_container_logs is True:
        return LogSelection.ALL
    names = _names(container_logs) if get_logs else []
    names = (names or ([base_container_name] if get_logs else [])) + _names(init_container_logs)
    if names == [base_container_name]:
        return LogSelection.MAIN
    return tuple(dict.fromkeys(names))


def _names(value: Iterable[str] | str | bool | None) -> list[str]:
    if not value or value is True:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def xcom_mode(do_xcom_push: bool, mode: str) -> XcomMode:
    if not do_xcom_push:
        return XcomMode.DISABLED
    chosen = XcomMode(mode)
    if chosen == XcomMode.DISABLED:
        raise ValueError("xcom_mode='disabled' contradicts do_xcom_push=True; use 'auto' or 'sidecar'")
    return chosen


@dataclass(frozen=True)
class OnFinishChoice:
    action: OnFinishAction
    note: str = ""


def on_finish(on_finish_action: str, is_delete_operator_pod: bool | None) -> OnFinishChoice:
    """is_delete_operator_pod, from older DAGs, still wins when given, as it did in KPO."""
    if is_delete_operator_pod is None:
        return OnFinishChoice(OnFinishAction(on_finish_action))
    action = OnFinishAction.DELETE_POD if is_delete_operator_pod else OnFinishAction.KEEP_POD
    note = f"is_delete_operator_pod is deprecated: use on_finish_action={str(action)!r}"
    return OnFinishChoice(action, note)


def skip_codes(skip_on_exit_code: int | Collection[int] | None) -> tuple[int, ...]:
    if skip_on_exit_code is None:
        return ()
    if isinstance(skip_on_exit_code, int):
        return (skip_on_exit_code,)
    return tuple(int(c) for c in skip_on_exit_code)


@dataclass(frozen=True)
class DirectConnection:
    clusters: tuple[str, ...]
    notes: tuple[str, ...]


def direct_connection(
    clusters: Sequence[str],
    *,
    kubernetes_conn_id: str | None,
    cluster_context: str | None,
    in_cluster: bool | None,
    config_file: str | None,
) -> DirectConnection:
    """KPO's direct-connection arguments: a cluster_context (or a non-default kubernetes_conn_id) names the
    registered cluster to run on, unless `clusters` is given; in_cluster and config_file have no meaning
    through the gateway. Each use yields a deprecation note for the task log."""
    notes = []
    named = cluster_context or (
        kubernetes_conn_id if kubernetes_conn_id and kubernetes_conn_id != DEFAULT_KUBERNETES_CONN_ID else None
    )
    argument = "cluster_context" if cluster_context else "kubernetes_conn_id"
    chosen = tuple(clusters)
    if named and not chosen:
        chosen = (named,)
        notes.append(
            f"{argument}={named!r} is a direct-connection argument: Podgate places the pod on the registered "
            f"cluster {named!r}; write clusters=[{named!r}] instead"
        )
    elif named:
        notes.append(f"{argument}={named!r} is ignored: clusters={list(chosen)!r} decides where the pod runs")
    for arg, value in (("in_cluster", in_cluster), ("config_file", config_file)):
        if value:
            notes.append(f"{arg} is ignored: the gateway holds the cluster credentials, the worker needs none")
    return DirectConnection(chosen, tuple(notes))
