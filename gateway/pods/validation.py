"""Checks a request's Pod manifest at the gateway's edge, reporting every problem with its field path.

The API layer has already parsed the JSON; this checks what Kubernetes would refuse later (names,
images, labels, quantities) and what the gateway owns (its `podgate.io/` labels, the XCom sidecar).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gateway.domain import LogSelection, PodRequest, XcomMode
from gateway.errors import FieldViolation, InvalidArgument
from gateway.placement.labels import dns1123_label_error, label_key_error, label_value_error
from gateway.placement.node_fit import pod_needs
from gateway.pods.builder import GATEWAY_PREFIX, XCOM_SIDECAR_NAME, XCOM_VOLUME
from gateway.policy.limits import DEFAULT_LIMITS, InputLimits, manifest_size_violation, pod_limit_violations

ROOT = "pod.pod_json"
# Sizes and counts are policy/limits.py's (configurable); these are its defaults.
MAX_MANIFEST_BYTES = DEFAULT_LIMITS.manifest_bytes
MAX_ANNOTATIONS_BYTES = DEFAULT_LIMITS.annotations_bytes
MAX_CONTAINERS = DEFAULT_LIMITS.containers


class _Violations(list[FieldViolation]):
    def add(self, field: str, description: str) -> None:
        self.append(FieldViolation(field, description))


def _mapping(value: Any, field: str, v: _Violations) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        v.add(field, f"must be an object, got {type(value).__name__}")
        return {}
    return value


def _list(value: Any, field: str, v: _Violations) -> Sequence[Any]:
    if value is None:
        return ()
    if not isinstance(value, list):
        v.add(field, f"must be a list, got {type(value).__name__}")
        return ()
    return value


def _check_header(pod: Mapping[str, Any], v: _Violations) -> None:
    for key, wanted in (("apiVersion", "v1"), ("kind", "Pod")):
        if key in pod and pod[key] != wanted:
            v.add(f"{ROOT}.{key}", f"must be {wanted!r}, got {pod[key]!r}")


def _check_labels(labels: Mapping[str, Any], field: str, v: _Violations, *, values: bool) -> None:
    for key, value in labels.items():
        sub = f"{field}[{key}]"
        if not isinstance(value, str):
            v.add(sub, f"value must be a string, got {type(value).__name__}")
        elif values and (error := label_value_error(value)):
            v.add(sub, error)
        if error := label_key_error(str(key)):
            v.add(sub, error)
        elif str(key).startswith(GATEWAY_PREFIX):
            v.add(sub, f"keys with prefix {GATEWAY_PREFIX} are set by the gateway, not by callers")


def _check_metadata(metadata: Mapping[str, Any], v: _Violations) -> None:
    field = f"{ROOT}.metadata"
    for key in ("name", "generateName"):
        if key in metadata and not isinstance(metadata[key], str):
            v.add(f"{field}.{key}", "must be a string")
    namespace = metadata.get("namespace")
    if namespace is not None and not isinstance(namespace, str):
        v.add(f"{field}.namespace", "must be a string")
    elif namespace and (error := dns1123_label_error(namespace)):
        v.add(f"{field}.namespace", f"namespace {error}")
    _check_labels(_mapping(metadata.get("labels"), f"{field}.labels", v), f"{field}.labels", v, values=True)
    annotations = _mapping(metadata.get("annotations"), f"{field}.annotations", v)
    _check_labels(annotations, f"{field}.annotations", v, values=False)


def _check_container(c: Any, field: str, v: _Violations) -> str:
    """Returns the container's name ("" when unusable)."""
    if not isinstance(c, Mapping):
        v.add(field, "must be an object")
        return ""
    name = c.get("name")
    if not isinstance(name, str) or (error := dns1123_label_error(name)):
        v.add(f"{field}.name", f"container name {error}" if isinstance(name, str) else "required: a DNS-1123 label")
    image = c.get("image")
    if not isinstance(image, str) or not image.strip():
        v.add(f"{field}.image", "required: a container image, e.g. python:3.12")
    return name if isinstance(name, str) else ""


def _check_containers(spec: Mapping[str, Any], v: _Violations) -> list[str]:
    field = f"{ROOT}.spec"
    raw = spec.get("containers")
    containers = _list(raw, f"{field}.containers", v)
    if not raw:
        v.add(f"{field}.containers", "at least one container is required")
    names: list[str] = []
    seen: set[str] = set()
    groups = (
        ("containers", containers),
        ("initContainers", _list(spec.get("initContainers"), f"{field}.initContainers", v)),
    )
    for group, items in groups:
        for i, c in enumerate(items):
            name = _check_container(c, f"{field}.{group}[{i}]", v)
            if name and name in seen:
                v.add(f"{field}.{group}[{i}].name", f"duplicate container name {name!r}")
            seen.add(name)
            names.append(name)
    return names


def _check_xcom(spec: Mapping[str, Any], names: list[str], mode: XcomMode, v: _Violations) -> None:
    if mode is not XcomMode.SIDECAR:
        return
    if XCOM_SIDECAR_NAME in names:
        v.add(f"{ROOT}.spec.containers", f"container name {XCOM_SIDECAR_NAME!r} is reserved for the XCom sidecar")
    raw = spec.get("volumes")
    volumes = raw if isinstance(raw, list) else []
    if any(isinstance(vol, Mapping) and vol.get("name") == XCOM_VOLUME for vol in volumes):
        v.add(f"{ROOT}.spec.volumes", f"volume name {XCOM_VOLUME!r} is reserved for the XCom sidecar")


def _check_resources(pod: Mapping[str, Any], v: _Violations) -> None:
    try:
        pod_needs(pod, field=ROOT)
    except InvalidArgument as e:
        v.extend(e.violations)


def pod_violations(
    pod: Mapping[str, Any], *, xcom_mode: XcomMode = XcomMode.DISABLED, limits: InputLimits = DEFAULT_LIMITS
) -> list[FieldViolation]:
    """Every problem in a Pod manifest, each with its field path under `pod.pod_json`."""
    v = _Violations()
    too_big = manifest_size_violation(pod, limits)
    if too_big is not None:
        v.append(too_big)
        return v
    v.extend(pod_limit_violations(pod, limits))
    _check_header(pod, v)
    _check_metadata(_mapping(pod.get("metadata"), f"{ROOT}.metadata", v), v)
    if not isinstance(pod.get("spec"), Mapping):
        v.add(f"{ROOT}.spec", "required: an object with at least one container")
        return v
    spec: Mapping[str, Any] = pod["spec"]
    if spec.get("restartPolicy") not in (None, "Never"):
        v.add(f"{ROOT}.spec.restartPolicy", "must be Never or unset: the gateway runs each pod once, to completion")
    names = _check_containers(spec, v)
    _check_xcom(spec, names, xcom_mode, v)
    if not v:
        _check_resources(pod, v)
    return v


def _container_names(pod: Mapping[str, Any]) -> list[str]:
    spec = pod.get("spec")
    if not isinstance(spec, Mapping):
        return []
    groups = [spec.get(key) for key in ("initContainers", "containers")]
    return [str(c.get("name")) for g in groups if isinstance(g, list) for c in g if isinstance(c, Mapping)]


def log_container_violations(request: PodRequest) -> list[FieldViolation]:
    """Containers named for their logs must be in the pod: a typo would otherwise stream nothing, silently."""
    if request.log_selection is not LogSelection.NAMED:
        return []
    known = _container_names(request.pod)
    if request.xcom_mode is XcomMode.SIDECAR:
        known.append(XCOM_SIDECAR_NAME)
    return [
        FieldViolation("pod.logs.containers", f"no container named {name!r} in the pod; it has {', '.join(known)}")
        for name in request.log_containers
        if name not in known
    ]


def kept_name_violations(request: PodRequest) -> list[FieldViolation]:
    """With keep_name the manifest's metadata.name becomes the pod's name, so it must be a valid one."""
    if not request.keep_name:
        return []
    name = (request.pod.get("metadata") or {}).get("name") if isinstance(request.pod.get("metadata"), Mapping) else None
    if not isinstance(name, str) or not name:
        return [FieldViolation(f"{ROOT}.metadata.name", "required with keep_name: the pod gets exactly this name")]
    if error := dns1123_label_error(name):
        return [FieldViolation(f"{ROOT}.metadata.name", f"with keep_name the pod name must be valid: {error}")]
    return []


def validate_request(request: PodRequest, *, limits: InputLimits = DEFAULT_LIMITS) -> None:
    """Raises InvalidArgument listing every violation of the request's manifest and of its log selection."""
    violations = pod_violations(request.pod, xcom_mode=request.xcom_mode, limits=limits)
    violations += log_container_violations(request)
    violations += kept_name_violations(request)
    if violations:
        first = violations[0]
        raise InvalidArgument(f"invalid pod manifest: {first.field}: {first.description}", violations)
