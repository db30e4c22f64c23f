"""KubernetesPodOperator's pod merge rules, on plain camelCase dicts.

A base pod (pod_template_file / pod_template_dict / full_pod_spec) and the pod the operator's arguments
describe are reconciled field by field, as airflow's PodGenerator.reconcile_pods does: a field set (truthy)
on the client pod wins, otherwise the base's stays; labels and annotations merge key by key; init containers,
volumes, finalizers and owner references concatenate; containers pair up by position, and in each pair the
list fields env, envFrom, ports, volumeMounts and volumeDevices concatenate (base first).
"""

from __future__ import annotations

import copy
from typing import Any

Obj = dict[str, Any]

CONTAINER_LISTS = ("volumeMounts", "env", "envFrom", "ports", "volumeDevices")
METADATA_LISTS = ("managedFields", "finalizers", "ownerReferences")


def merge_objects(base: Obj | None, client: Obj | None) -> Obj | None:
    """Field-wise: the client's truthy fields win; the base fills the rest."""
    if not base:
        return client
    if not client:
        return base
    out = copy.deepcopy(client)
    for key, value in base.items():
        if not out.get(key) and value is not None:
            out[key] = copy.deepcopy(value)
    return out


def merge_maps(base: dict[str, Any] | None, client: dict[str, Any] | None) -> dict[str, Any] | None:
    """Key-wise for label and annotation maps: the client's keys win."""
    if not base:
        return client
    if not client:
        return base
    return {**base, **client}


def extend_field(base: Obj, client: Obj, field: str) -> Obj:
    """A copy of client whose list `field` is base's items followed by client's."""
    out = copy.deepcopy(client)
    base_items, client_items = base.get(field), client.get(field)
    for items in (base_items, client_items):
        if items is not None and not isinstance(items, list):
            raise ValueError(f"{field} must be a list, got {type(items).__name__}")
    if not base_items:
        return out
    out[field] = copy.deepcopy(base_items) + (client_items or [])
    return out


def reconcile_containers(base: list[Obj] | None, client: list[Obj] | None) -> list[Obj]:
    if not base:
        return list(client or [])
    if not client:
        return list(base)
    merged = client[0]
    for field in CONTAINER_LISTS:
        merged = extend_field(base[0], merged, field)
    first = merge_objects(base[0], merged) or {}
    return [first, *reconcile_containers(base[1:], client[1:])]


def reconcile_specs(base: Obj | None, client: Obj | None) -> Obj | None:
    if not base or not client:
        return client or base
    merged = copy.deepcopy(client)
    merged["containers"] = reconcile_containers(base.get("containers"), client.get("containers"))
    merged = extend_field(base, merged, "initContainers")
    merged = extend_field(base, merged, "volumes")
    return merge_objects(base, merged)


def reconcile_metadata(base: Obj | None, client: Obj | None) -> Obj | None:
    if not base or not client:
        return client or base
    merged = copy.deepcopy(client)
    merged["labels"] = merge_maps(base.get("labels"), client.get("labels"))
    merged["annotations"] = merge_maps(base.get("annotations"), client.get("annotations"))
    for field in METADATA_LISTS:
        merged = extend_field(base, merged, field)
    return merge_objects(base, merged)


def reconcile_pods(base: Obj | None, client: Obj | None) -> Obj:
    """The client pod laid over the base pod."""
    if client is None:
        return copy.deepcopy(base or {})
    if base is None:
        return copy.deepcopy(client)
    merged = copy.deepcopy(client)
    merged["spec"] = reconcile_specs(base.get("spec"), client.get("spec"))
    merged["metadata"] = reconcile_metadata(base.get("metadata"), client.get("metadata"))
    return merge_objects(base, merged) or {}


def compact(obj: Obj) -> Obj:
    """The keys of obj whose value is set: not None, "", [] or {} (False and 0 are values)."""
    return {k: v for k, v in obj.items() if v is not None and v != "" and v != [] and v != {}}
