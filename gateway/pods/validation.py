"""The gateway's own checks of a request's Pod manifest, after the schema walk, each with its field path.

The API layer has parsed the JSON and walked it against the Pod schema and the API server's rules
(api/convert_pods.py: pod_schema.py with pod_rules.py), refusing the request on any problem. So the
manifest here has the schema's types, enumerations and required fields, and only null stands where a
value is optional. What remains is what the walk leaves out: the configured sizes (policy/limits.py),
the pod's metadata (pod_rules.object_meta, with the gateway's `podgate.io/` keys refused), what the
gateway itself needs (a container image, restartPolicy Never, unique container names, the XCom
sidecar's names) and what placement reads (pod_needs; `validate_request` keeps it with the request, so
quotas and placement do not read it again).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gateway.domain import MANIFEST_FIELD as ROOT
from gateway.domain import LogSelection, PodRequest, XcomMode
from gateway.errors import FieldViolation, InvalidArgument
from gateway.placement.labels import dns1123_label_error
from gateway.placement.node_fit import PodNeeds, pod_needs, request_needs
from gateway.pods import pod_rules
from gateway.pods.builder import GATEWAY_PREFIX, XCOM_SIDECAR_NAME, XCOM_VOLUME
from gateway.pods.pod_schema import Path, field_path
from gateway.policy.limits import DEFAULT_LIMITS, InputLimits, manifest_size_violation, pod_limit_violations

# Sizes and counts are policy/limits.py's (configurable); these are its defaults.
MAX_MANIFEST_BYTES = DEFAULT_LIMITS.manifest_bytes
MAX_ANNOTATIONS_BYTES = DEFAULT_LIMITS.annotations_bytes
MAX_CONTAINERS = DEFAULT_LIMITS.containers


class _Violations(list[FieldViolation]):
    def add(self, path: Path, description: str) -> None:
        self.append(FieldViolation(field_path(ROOT, path), description))


def _gateway_key(key: str) -> str:
    if key.startswith(GATEWAY_PREFIX):
        return f"keys with prefix {GATEWAY_PREFIX} are set by the gateway, not by callers"
    return ""


def _check_header(pod: Mapping[str, Any], v: _Violations) -> None:
    for key, wanted in (("apiVersion", "v1"), ("kind", "Pod")):
        if key in pod and pod[key] is None:  # the schema allows only `wanted`, or null
            v.add((key,), f"must be {wanted!r}, got None")


def _check_metadata(metadata: Mapping[str, Any], v: _Violations) -> None:
    for key in ("name", "generateName"):
        if key in metadata and metadata[key] is None:
            v.add(("metadata", key), "must be a string")
    pod_rules.object_meta(metadata, ("metadata",), v.add, own_key=_gateway_key)


def _check_container(c: Mapping[str, Any] | None, path: Path, v: _Violations) -> str:
    """Returns the container's name ("" when the entry is null)."""
    if c is None:
        v.add(path, "must be an object")
        return ""
    name: str = c["name"]  # required by the schema
    if error := dns1123_label_error(name):
        v.add((*path, "name"), f"container name {error}")
    image = c.get("image")
    if image is None or not image.strip():
        v.add((*path, "image"), "required: a container image, e.g. python:3.12")
    return name


def _check_containers(spec: Mapping[str, Any], v: _Violations) -> list[str]:
    if not spec["containers"]:  # required by the schema, and a list
        v.add(("spec", "containers"), "at least one container is required")
    names: list[str] = []
    seen: set[str] = set()
    for group in ("containers", "initContainers"):
        for i, c in enumerate(spec.get(group) or ()):
            name = _check_container(c, ("spec", group, i), v)
            if name and name in seen:
                v.add(("spec", group, i, "name"), f"duplicate container name {name!r}")
            seen.add(name)
            names.append(name)
    return names


def _check_xcom(spec: Mapping[str, Any], names: list[str], mode: XcomMode, v: _Violations) -> None:
    if mode is not XcomMode.SIDECAR:
        return
    if XCOM_SIDECAR_NAME in names:
        v.add(("spec", "containers"), f"container name {XCOM_SIDECAR_NAME!r} is reserved for the XCom sidecar")
    if any(vol is not None and vol["name"] == XCOM_VOLUME for vol in spec.get("volumes") or ()):
        v.add(("spec", "volumes"), f"volume name {XCOM_VOLUME!r} is reserved for the XCom sidecar")


def _check_resources(pod: Mapping[str, Any], read: Callable[[Mapping[str, Any]], PodNeeds], v: _Violations) -> None:
    try:
        read(pod)  # field paths under ROOT, pod_needs's default
    except InvalidArgument as e:
        v.extend(e.violations)


def pod_violations(
    pod: Mapping[str, Any],
    *,
    xcom_mode: XcomMode = XcomMode.DISABLED,
    limits: InputLimits = DEFAULT_LIMITS,
    needs: Callable[[Mapping[str, Any]], PodNeeds] = pod_needs,
    text_chars: int | None = None,
) -> list[FieldViolation]:
    """Every problem the schema walk leaves in a Pod manifest that passed it, under `pod.pod_json`.

    `needs` reads what placement reads of it (`pod_needs`, or one that keeps it with the request).
    `text_chars`: the length of the JSON text the manifest was decoded from, if known (its size check)."""
    v = _Violations()
    too_big = manifest_size_violation(pod, limits, text_chars=text_chars)
    if too_big is not None:
        v.append(too_big)
        return v
    v.extend(pod_limit_violations(pod, limits))
    _check_header(pod, v)
    _check_metadata(pod.get("metadata") or {}, v)
    spec = pod.get("spec")
    if spec is None:
        v.add(("spec",), "required: an object with at least one container")
        return v
    if spec.get("restartPolicy") not in (None, "Never"):
        v.add(("spec", "restartPolicy"), "must be Never or unset: the gateway runs each pod once, to completion")
    names = _check_containers(spec, v)
    _check_xcom(spec, names, xcom_mode, v)
    if not v:
        _check_resources(pod, needs, v)
    return v


def _container_names(pod: Mapping[str, Any]) -> list[str]:
    spec = pod.get("spec") or {}
    return [str(c["name"]) for key in ("initContainers", "containers") for c in spec.get(key) or () if c is not None]


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
    name = (request.pod.get("metadata") or {}).get("name")
    if not name:
        return [FieldViolation(f"{ROOT}.metadata.name", "required with keep_name: the pod gets exactly this name")]
    if error := dns1123_label_error(name):
        return [FieldViolation(f"{ROOT}.metadata.name", f"with keep_name the pod name must be valid: {error}")]
    return []


def validate_request(
    request: PodRequest, *, limits: InputLimits = DEFAULT_LIMITS, text_chars: int | None = None
) -> None:
    """Raises InvalidArgument listing every violation of the request's manifest and of its log selection.

    The manifest must have passed the schema walk (api/convert_pods.py does it for every request).
    `text_chars`: the length of the JSON text it was decoded from, when the caller has it."""
    violations = pod_violations(
        request.pod,
        xcom_mode=request.xcom_mode,
        limits=limits,
        needs=lambda _: request_needs(request),
        text_chars=text_chars,
    )
    violations += log_container_violations(request)
    violations += kept_name_violations(request)
    if violations:
        first = violations[0]
        raise InvalidArgument(f"invalid pod manifest: {first.field}: {first.description}", violations)
