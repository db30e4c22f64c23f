"""KubernetesPodOperator run options -> Podgate request options (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.airflow import request_options as ro
from gateway.airflow.pod_builder import TaskIdentity
from gateway.client import LogSelection, OnFinishAction, PodSpecRequest, XcomMode

TI = TaskIdentity(dag_id="etl", task_id="load", run_id="manual__2026-01-01T00:00:00+00:00", map_index=-1, try_number=3)


@pytest.mark.parametrize(
    ("identity", "with_try", "expected"),
    [
        (TI, False, "airflow/etl/load/manual__2026-01-01T00:00:00+00:00/-1"),
        (TI, True, "airflow/etl/load/manual__2026-01-01T00:00:00+00:00/-1/try-3"),
        (TaskIdentity(dag_id="d", task_id="g.t", run_id="r", map_index=7), False, "airflow/d/g.t/r/7"),
    ],
)
def test_request_id_is_the_task_instance_key(identity: TaskIdentity, with_try: bool, expected: str) -> None:
    assert ro.request_id(identity, include_try_number=with_try) == expected


def test_request_ids_that_do_not_fit_become_a_stable_digest() -> None:
    odd = TaskIdentity(dag_id="d", task_id="t", run_id="run with spaces & ünïcode")
    rid = ro.request_id(odd, include_try_number=False)
    assert rid.startswith("airflow/") and len(rid) == len("airflow/") + 40
    assert rid == ro.request_id(odd, include_try_number=False)
    assert rid != ro.request_id(odd, include_try_number=True)
    PodSpecRequest.build(request_id=rid, pod={})  # accepted by the client's own check
    long = TaskIdentity(dag_id="d" * 200, task_id="t" * 200, run_id="r")
    assert len(ro.request_id(long, include_try_number=False)) <= 253


@pytest.mark.parametrize(
    ("get_logs", "container_logs", "init_logs", "expected"),
    [
        (True, None, None, LogSelection.MAIN),
        (True, "base", None, LogSelection.MAIN),
        (False, None, None, LogSelection.NONE),
        (True, True, None, LogSelection.ALL),
        (True, ["base", "sidecar"], None, ("base", "sidecar")),
        (True, "sidecar", None, ("sidecar",)),
        (True, None, ["init"], ("base", "init")),
        (False, None, "init", ("init",)),
        (True, None, True, LogSelection.ALL),
    ],
)
def test_log_selection(get_logs: bool, container_logs: Any, init_logs: Any, expected: Any) -> None:
    assert ro.log_selection(get_logs, container_logs, init_logs, "base") == expected


@pytest.mark.parametrize(
    ("push", "mode", "expected"),
    [(False, "auto", XcomMode.DISABLED), (True, "auto", XcomMode.AUTO), (True, "sidecar", XcomMode.SIDECAR)],
)
def test_xcom_mode(push: bool, mode: str, expected: XcomMode) -> None:
    assert ro.xcom_mode(push, mode) == expected


def test_xcom_mode_contradiction_and_typo() -> None:
    with pytest.raises(ValueError, match="contradicts"):
        ro.xcom_mode(True, "disabled")
    with pytest.raises(ValueError):
        ro.xcom_mode(True, "sidecars")


@pytest.mark.parametrize(
    ("action", "legacy", "expected", "noted"),
    [
        ("delete_pod", None, OnFinishAction.DELETE_POD, False),
        ("keep_pod", None, OnFinishAction.KEEP_POD, False),
        ("delete_succeeded_pod", None, OnFinishAction.DELETE_SUCCEEDED_POD, False),
        ("delete_pod", False, OnFinishAction.KEEP_POD, True),
        ("keep_pod", True, OnFinishAction.DELETE_POD, True),
    ],
)
def test_on_finish(action: str, legacy: bool | None, expected: OnFinishAction, noted: bool) -> None:
    choice = ro.on_finish(action, legacy)
    assert choice.action == expected
    assert bool(choice.note) == noted


@pytest.mark.parametrize(("value", "expected"), [(None, ()), (3, (3,)), ([1, 2], (1, 2)), ({4}, (4,))])
def test_skip_codes(value: Any, expected: tuple[int, ...]) -> None:
    assert ro.skip_codes(value) == expected


@pytest.mark.parametrize(
    ("kw", "clusters", "note_words"),
    [
        ({}, (), []),
        ({"kubernetes_conn_id": "kubernetes_default"}, (), []),
        ({"cluster_context": "local-eu-gpu"}, ("local-eu-gpu",), ["cluster_context", "clusters=['local-eu-gpu']"]),
        ({"kubernetes_conn_id": "prod-eu"}, ("prod-eu",), ["kubernetes_conn_id"]),
        ({"cluster_context": "a", "kubernetes_conn_id": "b"}, ("a",), ["cluster_context"]),
        ({"clusters": ["x"], "cluster_context": "a"}, ("x",), ["is ignored"]),
        ({"in_cluster": True, "config_file": "~/.kube/config"}, (), ["in_cluster", "config_file"]),
    ],
)
def test_direct_connection_arguments(kw: dict[str, Any], clusters: tuple[str, ...], note_words: list[str]) -> None:
    args: dict[str, Any] = {
        "kubernetes_conn_id": None,
        "cluster_context": None,
        "in_cluster": None,
        "config_file": None,
    }
    args.update({k: v for k, v in kw.items() if k != "clusters"})
    out = ro.direct_connection(kw.get("clusters", ()), **args)
    assert out.clusters == clusters
    text = " ".join(out.notes)
    assert all(w in text for w in note_words)
    assert bool(out.notes) == bool(note_words)
