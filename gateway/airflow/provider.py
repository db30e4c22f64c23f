"""Provider metadata read by Airflow through the `apache_airflow_provider` entry point (no Airflow import)."""

from __future__ import annotations

from typing import Any

from gateway import __version__ as PODGATE_VERSION

OPERATOR = "gateway.airflow.operators.GatewayPodOperator"


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "podgate",
        "name": "Podgate",
        "description": "Runs KubernetesPodOperator-style pods on many clusters through a Podgate gateway: "
        "cluster routing, no cluster credentials on workers, no per-pod polling.",
        "versions": [PODGATE_VERSION],
        "integrations": [
            {
                "integration-name": "Podgate",
                "external-doc-url": "https://pypi.org/project/podgate/",
                "tags": ["software"],
            }
        ],
        "operators": [{"integration-name": "Podgate", "python-modules": ["gateway.airflow.operators"]}],
        "triggers": [{"integration-name": "Podgate", "python-modules": ["gateway.airflow.triggers"]}],
        "hooks": [{"integration-name": "Podgate", "python-modules": ["gateway.airflow.hooks"]}],
        "connection-types": [{"connection-type": "podgate", "hook-class-name": "gateway.airflow.hooks.PodgateHook"}],
        "task-decorators": [{"name": "podgate", "class-name": "gateway.airflow.decorators.podgate_task"}],
        "extra-links": ["gateway.airflow.links.PodgatePodLink"],
    }
