"""Kubernetes client model objects -> plain camelCase JSON, without importing the kubernetes package.

DAGs written for KubernetesPodOperator pass V1EnvVar, V1Volume, V1Toleration, V1ResourceRequirements and
friends. Those classes describe themselves (`openapi_types` lists the attributes, `attribute_map` their JSON
names), which is all we need to serialise them the way the kubernetes ApiClient does.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

JSON = Any


def is_model(value: object) -> bool:
    """True for a kubernetes client model object (or anything shaped like one)."""
    return hasattr(value, "openapi_types") and hasattr(value, "attribute_map")


def to_json(value: object, where: str = "value") -> JSON:
    """Serialises models, dicts, lists and scalars to JSON types; None attributes of models are dropped.
    Anything else is a TypeError naming where it was found."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [to_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {str(k): to_json(v, f"{where}.{k}") for k, v in value.items()}
    if is_model(value):
        attribute_map: Mapping[str, str] = getattr(value, "attribute_map", {})
        out = {}
        for attr in getattr(value, "openapi_types", {}):
            item = getattr(value, attr, None)
            if item is not None:
                out[attribute_map.get(attr, attr)] = to_json(item, f"{where}.{attr}")
        return out
    raise TypeError(
        f"{where}: cannot turn a {type(value).__name__} into Kubernetes JSON; pass a kubernetes client model "
        "(e.g. k8s.V1EnvVar) or a dict in the Kubernetes API's camelCase form"
    )


def to_json_list(value: object, where: str) -> list[JSON]:
    """A list argument (None or empty -> []); a single model or dict is accepted as a one-item list."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [to_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return [to_json(value, where)]
