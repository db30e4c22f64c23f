"""DAGs run in real Airflow (`airflow dags test`) against a live gateway and the simulated clusters."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.airflow.conftest import DAGS, DagRun, LiveGateway, install_dag, pods_of, run_dag


@pytest.fixture(scope="module")
def basics(airflow_home: Path, gateway: LiveGateway) -> DagRun:
    install_dag(airflow_home, "podgate_basics.py")
    return run_dag(airflow_home, gateway, "podgate_basics")


def test_every_basic_task_succeeds(basics: DagRun) -> None:
    assert basics.returncode == 0, basics.output[-6000:]
    assert basics.states == {
        name: "success"
        for name in (
            "mapped[0]",
            "mapped[1]",
            "mapped[2]",
            "hello",
            "kept_name",
            "templated",
            "gpu_eu",
            "gpu_us",
            "big_xcom",
            "no_xcom",
            "extract",
            "transform",
            "load",
            "multiply",
        )
    }


def test_pod_logs_reach_the_task_log_line_by_line_with_the_container_prefix(basics: DagRun) -> None:
    assert len(basics.lines_of("[base] hello from the pod")) == 1
    assert len(basics.lines_of("[base] second line")) == 1
    assert basics.xcoms["hello"]["cluster"] in {"local-eu-gpu", "local-eu-cpu", "local-us-gpu"}
    assert basics.xcoms["hello"]["pod_name"].startswith("hello-")
    assert basics.xcoms["hello"]["pod_namespace"] == "default"
    assert "return_value" not in basics.xcoms["hello"]  # do_xcom_push defaults to False, as in KPO
    hello = basics.xcoms["hello"]
    assert hello["_link_PodgatePodLink"] == f"podgate://{hello['cluster']}/default/{hello['pod_name']}"


def test_random_name_suffix_false_keeps_the_name(basics: DagRun) -> None:
    assert basics.xcoms["kept_name"]["pod_name"] == "kept-name-pod"
    assert basics.xcoms["hello"]["pod_name"] != "hello"  # the default still adds a unique suffix


def test_templated_fields_and_env_vars(basics: DagRun) -> None:
    assert basics.lines_of("[base] GREETING=hello podgate_basics")
    run_line = basics.lines_of("[base] RUN=")[0]
    assert "manual__" in run_line
    assert basics.xcoms["templated"]["pod_name"].startswith("tmpl-templated-")


def test_gpu_tasks_are_routed_by_selector_and_region(basics: DagRun) -> None:
    assert basics.xcoms["gpu_eu"]["cluster"] == "local-eu-gpu"
    assert basics.xcoms["gpu_us"]["cluster"] == "local-us-gpu"


def test_xcom_over_4_kib_through_the_sidecar_and_no_xcom(basics: DagRun) -> None:
    value = basics.xcoms["big_xcom"]["return_value"]
    assert value["n"] == 6000 and value["blob"] == "x" * 6000
    assert basics.xcoms["no_xcom"].get("return_value") is None


def test_taskflow_pipeline_multiplies_by_23(basics: DagRun) -> None:
    assert basics.xcoms["extract"]["return_value"] == 2
    assert basics.xcoms["transform"]["return_value"] == 46
    assert basics.xcoms["load"]["return_value"] == {"loaded": 46}


def test_podgate_decorator_runs_the_function_in_a_pod(basics: DagRun) -> None:
    assert basics.xcoms["multiply"]["return_value"] == {"product": 46}
    assert basics.lines_of("[base] multiplying in the pod on CPython")
    assert basics.lines_of("use_dill is ignored")
    assert basics.xcoms["multiply"]["pod_name"].startswith("podgate-multiply-")


@pytest.fixture(scope="module")
def failures(airflow_home: Path, gateway: LiveGateway) -> DagRun:
    install_dag(airflow_home, "podgate_failures.py")
    return run_dag(airflow_home, gateway, "podgate_failures")


def test_a_failing_pod_fails_the_task_with_exit_code_and_reason(failures: DagRun) -> None:
    assert failures.returncode == 1  # `airflow dags test` exits 1 when the run failed
    assert failures.states["fails"] == "failed"
    assert failures.lines_of("[base] about to fail")
    (message,) = [line for line in failures.lines_of("returned a failure") if "default/fails-" in line]
    assert "exit code 3" in message and "reason Error" in message
    assert failures.xcoms["fails"]["pod_name"].startswith("fails-")
    manifests = failures.lines_of("Pod manifest sent to the gateway:")  # log_pod_spec_on_failure, as KPO
    command = '"command": ["python", "-c", "import sys; print(\'about to fail\'); sys.exit(3)"]'
    assert len([m for m in manifests if command in m]) == 1


def test_skip_on_exit_code_skips(failures: DagRun) -> None:
    assert failures.states["skips"] == "skipped"
    assert failures.lines_of("returned exit code 42. Skipping.")


def test_an_unplaceable_pod_fails_at_once_without_retries(failures: DagRun) -> None:
    # A GPU pod restricted to a region without GPUs: PlacementFailed is fatal (AirflowFailException).
    assert failures.states["unplaceable"] == "failed"
    refusal = failures.lines_of("PodgateFatalError: RunPod: no cluster satisfies the constraints")
    assert refusal and "local-eu-cpu: no node can ever run the pod" in refusal[0], failures.output[-4000:]
    assert "local-us-gpu: region us-east-1 is outside the allowed regions" in failures.output


def test_deferrable_task_follows_the_pod_in_the_trigger_and_loses_no_line(
    airflow_home: Path, gateway: LiveGateway
) -> None:
    install_dag(airflow_home, "podgate_deferrable.py")
    run = run_dag(airflow_home, gateway, "podgate_deferrable")
    assert run.returncode == 0, run.output[-6000:]
    assert run.states == {"deferred": "success"}
    assert run.xcoms["deferred"]["return_value"] == {"ticks": 6}
    assert run.xcoms["deferred"]["cluster"] == "local-eu-cpu"
    assert run.lines_of("[DAG TEST] running trigger in line")
    for i in range(1, 7):
        assert len(run.lines_of(f"[base] tick {i}")) == 1, (i, run.output[-6000:])


KPO_IMPORT = "from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator"
PODGATE_IMPORT = "from gateway.airflow.operators import GatewayPodOperator as KubernetesPodOperator"


def test_a_kubernetes_pod_operator_dag_runs_with_only_its_import_changed(
    airflow_home: Path, gateway: LiveGateway
) -> None:
    original = (DAGS / "kpo_original.py").read_text()
    assert original.count(KPO_IMPORT) == 1
    (airflow_home / "dags" / "kpo_migrated.py").write_text(original.replace(KPO_IMPORT, PODGATE_IMPORT))
    install_dag(airflow_home, "kpo_template.yaml")
    run = run_dag(airflow_home, gateway, "kpo_migrated")
    assert run.returncode == 0, run.output[-6000:]
    assert run.states == {"report": "success"}
    assert run.xcoms["report"]["return_value"] == {"rows": 42}
    assert run.xcoms["report"]["cluster"] == "local-eu-cpu"  # cluster_context names the registered cluster
    assert run.xcoms["report"]["pod_namespace"] == "airflow"
    assert run.xcoms["report"]["pod_name"].startswith("nightly-report-")
    assert run.lines_of("[base] REPORT_DATE=20")
    assert run.lines_of("[base] FROM_TEMPLATE=template-value")  # pod_template_file merged as KPO merges it
    notes = "\n".join(run.lines_of("Deprecated:"))
    assert "cluster_context='local-eu-cpu'" in notes and "clusters=['local-eu-cpu']" in notes
    assert "config_file is ignored" in notes and "in_cluster" not in notes  # in_cluster=False asks for nothing
    assert "is_delete_operator_pod is deprecated" in notes


def test_a_killed_task_cancels_its_pod(failures: DagRun, gateway: LiveGateway) -> None:
    # execution_timeout makes Airflow kill the task and call on_kill, which cancels the pod.
    assert failures.states["timed_out"] == "failed"
    assert failures.lines_of("[base] working")
    assert failures.lines_of("Cancelled pod airflow/podgate_failures/timed_out/")
    pods = asyncio.run(pods_of(gateway.address, "podgate_failures"))
    assert pods[failures.xcoms["timed_out"]["pod_name"]] == "Cancelled"


def test_a_pod_that_cannot_start_fails_with_its_warning_events(failures: DagRun) -> None:
    assert failures.states["cannot_start"] == "failed"
    (message,) = [line for line in failures.lines_of("returned a failure") if "cannot-start" in line]
    assert "exit code 128, reason StartError" in message
    events = failures.output[failures.output.index(message) :]
    assert "event: Warning Failed: Error: failed to start container" in events  # log_events_on_failure


def test_mapped_tasks_each_run_their_own_pod(basics: DagRun) -> None:
    values = [basics.xcoms[f"mapped[{i}]"]["return_value"] for i in range(3)]
    assert values == [10, 20, 30]
    assert len({basics.xcoms[f"mapped[{i}]"]["pod_name"] for i in range(3)}) == 3


def test_an_xcom_too_big_for_auto_mode_is_a_clear_error(failures: DagRun) -> None:
    assert failures.states["big_auto"] == "failed"
    (message,) = [line for line in failures.lines_of("returned a failure") if "big-auto" in line]
    assert "reason XComError" in message
    assert failures.lines_of("hint: GatewayPodOperator(..., xcom_mode='sidecar')")
