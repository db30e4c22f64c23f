"""Pods that fail, skip, or can never be placed."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from gateway.airflow.operators import GatewayPodOperator

PY = "python:3.12"

with DAG("podgate_failures", start_date=datetime(2026, 1, 1), schedule=None, catchup=False) as dag:
    GatewayPodOperator(
        task_id="fails",
        image=PY,
        cmds=["python", "-c", "import sys; print('about to fail'); sys.exit(3)"],
        log_events_on_failure=True,
        retries=0,
    )
    GatewayPodOperator(
        task_id="skips",
        image=PY,
        cmds=["python", "-c", "import sys; sys.exit(42)"],
        skip_on_exit_code=[42, 43],
    )
    GatewayPodOperator(
        task_id="unplaceable",
        image=PY,
        cmds=["python", "-c", "print('never')"],
        container_resources={"limit_gpu": 1},
        regions=["eu-central-1"],
        retries=3,
        retry_delay=timedelta(seconds=1),
    )
    GatewayPodOperator(
        task_id="timed_out",
        image=PY,
        cmds=["python", "-c", "import time; print('working', flush=True); time.sleep(60)"],
        execution_timeout=timedelta(seconds=4),
        retries=0,
    )
    GatewayPodOperator(
        task_id="cannot_start",
        image=PY,
        cmds=["/opt/no-such-binary"],
        log_events_on_failure=True,
        retries=0,
    )
    GatewayPodOperator(
        task_id="big_auto",
        image=PY,
        cmds=["python", "-c", "import json; json.dump({'blob': 'x' * 6000}, open('/airflow/xcom/return.json', 'w'))"],
        do_xcom_push=True,
        retries=0,
    )
