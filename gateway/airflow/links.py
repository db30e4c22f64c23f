"""The task's extra link to its pod: cluster, namespace and name (a template from the connection may turn
it into a dashboard URL)."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperatorLink

DEFAULT_TEMPLATE = "podgate://{cluster}/{namespace}/{name}"


def pod_link(template: str, cluster: str, namespace: str, name: str) -> str:
    if not name:
        return ""
    return (template or DEFAULT_TEMPLATE).format(cluster=cluster, namespace=namespace, name=name)


class PodgatePodLink(BaseOperatorLink):
    """Computed on the worker when the task ends, from what the operator learnt about its pod."""

    name = "Podgate pod"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return str(getattr(operator, "pod_link", "") or "")
