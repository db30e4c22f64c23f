"""A DAG written for KubernetesPodOperator (the test swaps only its import line for Podgate's)."""

from __future__ import annotations

import os
from datetime import datetime

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG

HERE = os.path.dirname(os.path.abspath(__file__))

with DAG("kpo_migrated", start_date=datetime(2026, 1, 1), schedule=None, catchup=False, tags=["kpo"]) as dag:
    KubernetesPodOperator(
        task_id="report",
        name="nightly-report",
        namespace="airflow",
        image="python:3.12",
        cmds=["python", "-c"],
        arguments=[
            "import json, os; print('REPORT_DATE=' + os.environ['REPORT_DATE']); "
            "print('FROM_TEMPLATE=' + os.environ['FROM_TEMPLATE']); "
            "os.makedirs('/airflow/xcom', exist_ok=True); "
            "json.dump({'rows': 42}, open('/airflow/xcom/return.json', 'w'))"
        ],
        env_vars={"REPORT_DATE": "{{ ds }}"},
        labels={"app": "reports"},
        annotations={"owner": "data-team"},
        pod_template_file=os.path.join(HERE, "kpo_template.yaml"),
        tolerations=[{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        affinity={},
        in_cluster=False,
        config_file="/home/airflow/.kube/config",
        cluster_context="local-eu-cpu",
        kubernetes_conn_id="kubernetes_default",
        get_logs=True,
        log_events_on_failure=True,
        is_delete_operator_pod=True,
        do_xcom_push=True,
        startup_timeout_seconds=300,
        image_pull_policy="IfNotPresent",
        retries=0,
    )
