"""Airflow provider for Podgate: a KubernetesPodOperator-compatible operator that runs pods through the gateway.

Importing this package loads nothing of Airflow; the names below load their module on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "GatewayPodOperator": "gateway.airflow.operators",
    "PodgateFatalError": "gateway.airflow.operators",
    "PodFailed": "gateway.airflow.operators",
    "PodgateHook": "gateway.airflow.hooks",
    "PodgateTrigger": "gateway.airflow.triggers",
    "PodgatePodLink": "gateway.airflow.links",
    "podgate_task": "gateway.airflow.decorators",
}

__all__ = [*_LAZY, "get_provider_info"]


def get_provider_info() -> dict[str, Any]:
    from gateway.airflow.provider import get_provider_info as info

    return info()


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
