"""A pod that outlives its worker: the retried task reattaches to it through the gateway's idempotency key."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from gateway.airflow.operators import GatewayPodOperator

CODE = """
import time
for i in range(1, 17):
    print(f"tick {i}", flush=True)
    time.sleep(0.5)
"""

with DAG("podgate_reattach", start_date=datetime(2026, 1, 1), schedule=None, catchup=False) as dag:
    GatewayPodOperator(task_id="long", image="python:3.12", cmds=["python", "-c", CODE], reattach_on_restart=True)
