"""The three PATCH flavours kube-apiserver accepts for built-in types (pure).

- JSON merge patch (RFC 7386): maps merge, null deletes, lists replace.
- Strategic merge patch, the subset pods need: lists of objects with a merge key (containers by name,
  env by name, volumeMounts by mountPath, conditions by type...) merge element-wise; `$patch: delete`
  and `$patch: replace` directives, `$deleteFromPrimitiveList/<field>`, `$setElementOrder/<field>`
  (accepted, order kept), `$retainKeys`; lists without a merge key replace, except finalizers which merge.
- JSON patch (RFC 6902) through the `jsonpatch` library.
"""

from __future__ import annotations

from typing import Any

import jsonpatch

from gateway.sim.errors import BadRequest, UnsupportedMediaType

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
SUPPORTED = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH)

# field name -> merge key, for lists of objects in the types we serve.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "conditions": "type",
    "hostAliases": "ip",
    "secrets": "name",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
    "ownerReferences": "uid",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "readinessGates": "conditionType",
    "taints": "key",
}
MERGED_PRIMITIVE_LISTS = frozenset({"finalizers"})


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    if patch.get("$patch") == "replace":
        return {k: v for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = dict(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$retainKeys", "$patch"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [v for v in result.get(field) or [] if v not in (value or [])]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value)
        else:
            merged = strategic_merge_patch(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain or k not in (target or {})}
    return result


def _merge_list(field: str, current: Any, patch: list[Any]) -> list[Any]:
    if field in MERGED_PRIMITIVE_LISTS:
        existing = list(current or [])
        return existing + [v for v in patch if v not in existing]
    key = MERGE_KEYS.get(field)
    if key is None or not all(isinstance(p, dict) for p in patch):
        return [p for p in patch if not (isinstance(p, dict) and p.get("$patch"))]
    if any(p.get("$patch") == "replace" for p in patch):
        return [p for p in patch if not p.get("$patch")]
    result = [dict(c) for c in current or [] if isinstance(c, dict)]
    for item in patch:
        if key not in item:
            raise BadRequest(f"map: {item} does not contain declared merge key: {key}")
        index = next((i for i, c in enumerate(result) if c.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                result.pop(index)
        elif index is None:
            result.append(strategic_merge_patch({}, item))
        else:
            result[index] = strategic_merge_patch(result[index], item)
    return result


def json_patch(target: dict[str, Any], operations: Any) -> dict[str, Any]:
    if not isinstance(operations, list):
        raise BadRequest("json patch must be a list of operations")
    try:
        patched: dict[str, Any] = jsonpatch.apply_patch(target, operations)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, KeyError, TypeError) as e:
        raise BadRequest(f"the server rejected our request due to an error in our request: {e}") from e
    return patched


def apply(content_type: str, target: dict[str, Any], patch: Any) -> dict[str, Any]:
    """`target` patched per the request's Content-Type; 415 for a type we do not serve."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == JSON_PATCH:
        return json_patch(target, patch)
    if not isinstance(patch, dict):
        raise BadRequest(f"{media} body must be a JSON object")
    if media == MERGE_PATCH:
        result: dict[str, Any] = merge_patch(target, patch)
        return result
    if media == STRATEGIC_MERGE_PATCH:
        merged: dict[str, Any] = strategic_merge_patch(target, patch)
        return merged
    raise UnsupportedMediaType(
        f"the body of the request was in an unknown format - accepted media types include: {', '.join(SUPPORTED)}"
    )
