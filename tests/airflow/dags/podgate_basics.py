"""Everyday GatewayPodOperator use, one task per behaviour; every task must succeed."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

from gateway.airflow.operators import GatewayPodOperator

PY = "python:3.12"
WRITE_XCOM = "import json, os; os.makedirs('/airflow/xcom', exist_ok=True); json.dump({value}, open('/airflow/xcom/return.json', 'w'))"

with DAG("podgate_basics", start_date=datetime(2026, 1, 1), schedule=None, catchup=False) as dag:
    hello = GatewayPodOperator(
        task_id="hello",
        image=PY,
        cmds=["python", "-c"],
        arguments=["print('hello from the pod'); print('second line')"],
    )

    templated = GatewayPodOperator(
        task_id="templated",
        image=PY,
        name="tmpl-{{ ti.task_id }}",
        cmds=["python", "-c"],
        arguments=[
            "import os; print('GREETING=' + os.environ['GREETING']); print('RUN=' + os.environ['RUN'])",
            "{{ ds }}",
        ],
        env_vars={"GREETING": "hello {{ dag.dag_id }}", "RUN": "{{ run_id }}", "STATIC": "1"},
        labels={"team": "{{ dag.dag_id | replace('_', '-') }}"},
        container_resources={"request_cpu": "100m", "request_memory": "64Mi", "limit_memory": "256Mi"},
    )

    kept_name = GatewayPodOperator(
        task_id="kept_name",
        image=PY,
        name="kept-name-pod",
        random_name_suffix=False,
        cmds=["python", "-c", "print('named exactly')"],
    )

    gpu_eu = GatewayPodOperator(
        task_id="gpu_eu",
        image=PY,
        cmds=["python", "-c", "print('on a GPU in the EU')"],
        container_resources={"limit_gpu": 1},
        cluster_selector="accelerator=nvidia",
        regions=["eu-west-1", "eu-central-1"],
    )

    gpu_us = GatewayPodOperator(
        task_id="gpu_us",
        image=PY,
        cmds=["python", "-c", "print('on an H100')"],
        container_resources={"limit_gpu": 1},
        cluster_selector={"accelerator": "nvidia"},
        regions=["us-east-1"],
        tolerations=[{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
    )

    big_xcom = GatewayPodOperator(
        task_id="big_xcom",
        image=PY,
        cmds=["python", "-c", WRITE_XCOM.format(value="{'blob': 'x' * 6000, 'n': 6000}")],
        do_xcom_push=True,
        xcom_mode="sidecar",
    )

    no_xcom = GatewayPodOperator(
        task_id="no_xcom", image=PY, cmds=["python", "-c", "print('nothing to return')"], do_xcom_push=True
    )

    @task
    def extract() -> int:
        return 2

    transform = GatewayPodOperator(
        task_id="transform",
        image=PY,
        cmds=["python", "-c"],
        arguments=[WRITE_XCOM.format(value="{{ ti.xcom_pull(task_ids='extract') }} * 23")],
        do_xcom_push=True,
    )

    @task
    def load(value: int) -> dict[str, int]:
        assert value == 46, value
        return {"loaded": value}

    @task.podgate(image=PY, use_dill=True)  # @task.kubernetes arguments are accepted
    def multiply(x: int, factor: int = 23) -> dict[str, int]:
        import platform

        print("multiplying in the pod on", platform.python_implementation())
        return {"product": x * factor}

    # Each map index is its own task instance, so its own idempotency key and its own pod.
    GatewayPodOperator.partial(task_id="mapped", image=PY, cmds=["python", "-c"], do_xcom_push=True).expand(
        arguments=[[WRITE_XCOM.format(value=n * 10)] for n in (1, 2, 3)]
    )

    first = extract()
    first >> transform
    load(transform.output)
    multiply(first)
