"""Airflow provider for Podgate: a KubernetesPodOperator-compatible operator that runs pods through the gateway."""
