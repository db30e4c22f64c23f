"""A deferrable task: the trigger follows the pod over one WatchPod stream, the worker finishes it."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from gateway.airflow.operators import GatewayPodOperator

CODE = """
import json, os, time
for i in range(1, 7):
    print(f"tick {i}", flush=True)
    time.sleep(0.3)
os.makedirs("/airflow/xcom", exist_ok=True)
json.dump({"ticks": 6}, open("/airflow/xcom/return.json", "w"))
"""

with DAG("podgate_deferrable", start_date=datetime(2026, 1, 1), schedule=None, catchup=False) as dag:
    GatewayPodOperator(
        task_id="deferred",
        image="python:3.12",
        cmds=["python", "-c", CODE],
        do_xcom_push=True,
        deferrable=True,
        regions=["eu-central-1"],
    )
