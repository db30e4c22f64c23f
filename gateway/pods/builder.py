"""Builds the Pod the gateway creates from a request: pure, so the same request always gives the same body.

The caller's manifest is kept as is; the gateway adds a unique name, its ownership labels, the Airflow
labels KubernetesPodOperator sets, `restartPolicy: Never` and what the XCom mode needs.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from gateway.domain import MANAGED_BY_LABEL, AirflowContext, PodRequest, XcomMode
from gateway.placement.labels import DNS1123_LABEL_MAX, LABEL_VALUE_MAX, dns1123_label_error
from gateway.pods.xcom import XCOM_DIR, XCOM_PATH

GATEWAY_PREFIX = "podgate.io/"
REQUEST_ID_LABEL = "podgate.io/request-id"
REQUEST_ID_ANNOTATION = "podgate.io/request-id"
CLUSTER_ANNOTATION = "podgate.io/cluster"
DEFAULT_NAME = "podgate"
DEFAULT_NAMESPACE = "default"

XCOM_VOLUME = "xcom"
XCOM_SIDECAR_NAME = "airflow-xcom-sidecar"
XCOM_SIDECAR_IMAGE = "alpine"
# Waits until the gateway has read the result, then exits 0 on SIGINT (KubernetesPodOperator's sidecar).
XCOM_SIDECAR_COMMAND = 'trap "exit 0" INT; while true; do sleep 1; done;'

_HASHED_LABEL_KEEP = 53  # KubernetesPodOperator keeps 53 characters, then "-" and 9 hex digits
_UNSAFE_EDGES = re.compile(r"^[^A-Za-z0-9]*|[^A-Za-z0-9_.-]|[^A-Za-z0-9]*$")
_NAME_UNSAFE = re.compile(r"[^a-z0-9-]+")


def safe_label_value(value: str) -> str:
    """A label value made valid the way KubernetesPodOperator makes it, so both find the same pods.

    Invalid characters and non-alphanumeric ends are dropped; when that changed the value or it is too
    long, the first 53 characters are kept and a short md5 of the original appended.
    """
    safe = _UNSAFE_EDGES.sub("", value)
    if len(safe) > LABEL_VALUE_MAX or safe != value:
        digest = hashlib.md5(value.encode(), usedforsecurity=False).hexdigest()[:9]
        safe = f"{safe[:_HASHED_LABEL_KEEP]}-{digest}"
    return safe


def request_id_label(request_id: str) -> str:
    """A label value identifying a request id of any length (the full id is in an annotation)."""
    return hashlib.sha256(request_id.encode()).hexdigest()[: LABEL_VALUE_MAX - 3]


def airflow_labels(context: AirflowContext) -> dict[str, str]:
    labels = {
        "dag_id": safe_label_value(context.dag_id),
        "task_id": safe_label_value(context.task_id),
        "run_id": safe_label_value(context.run_id),
        "try_number": str(context.try_number),
    }
    if context.map_index >= 0:
        labels["map_index"] = str(context.map_index)
    return labels


def base_name(metadata: Mapping[str, Any]) -> str:
    """The caller's name (or generateName) as DNS-1123 characters; "podgate" when nothing usable is left."""
    raw = str(metadata.get("name") or metadata.get("generateName") or DEFAULT_NAME)
    name = _NAME_UNSAFE.sub("-", raw.lower()).strip("-")
    return name or DEFAULT_NAME


def pod_name(metadata: Mapping[str, Any], suffix: str) -> str:
    """`<base>-<suffix>`, at most 63 characters, the base truncated to make room."""
    if error := dns1123_label_error(suffix):
        raise ValueError(f"name suffix {error}")
    room = DNS1123_LABEL_MAX - len(suffix) - 1
    if room < 1:
        raise ValueError(f"name suffix {suffix!r} leaves no room for a name")
    base = base_name(metadata)[:room].rstrip("-") or DEFAULT_NAME[:room]
    return f"{base}-{suffix}"


def pod_name_of(request: PodRequest, suffix: str) -> str:
    """The name `build_pod` gives the request's pod: the caller's own with keep_name, else `pod_name`'s."""
    metadata = request.pod.get("metadata") or {}
    if request.keep_name:
        kept: str = metadata["name"]
        return kept
    return pod_name(metadata, suffix)


def _add_sidecar(spec: dict[str, Any], image: str) -> None:
    mount = {"name": XCOM_VOLUME, "mountPath": XCOM_DIR}
    spec.setdefault("volumes", []).append({"name": XCOM_VOLUME, "emptyDir": {}})
    main = spec["containers"][0]
    main.setdefault("volumeMounts", []).append(dict(mount))
    spec["containers"].append(
        {
            "name": XCOM_SIDECAR_NAME,
            "image": image or XCOM_SIDECAR_IMAGE,
            "command": ["sh", "-c", XCOM_SIDECAR_COMMAND],
            "volumeMounts": [dict(mount)],
            "resources": {"requests": {"cpu": "1m", "memory": "10Mi"}},
        }
    )


_SHARED = frozenset({str, int, float, bool, type(None), Decimal})  # immutable: a copy may share them


def _copied(value: Any) -> Any:
    """A copy of decoded JSON (dicts, lists, immutable scalars) that shares no dict or list with `value`; other
    values through `copy.deepcopy`. Half the CPU of deepcopy on a manifest: no memo, no dispatch per value."""
    kind = type(value)
    if kind is dict:
        return {k: _copied(v) for k, v in value.items()}
    if kind is list:
        return [_copied(v) for v in value]
    return value if kind in _SHARED else copy.deepcopy(value)


def build_pod(request: PodRequest, *, cluster: str, gateway_id: str, name_suffix: str) -> dict[str, Any]:
    """The Pod body to create on `cluster`; `name_suffix` (random in production) makes the name unique."""
    pod: dict[str, Any] = _copied(dict(request.pod))
    pod["apiVersion"], pod["kind"] = "v1", "Pod"
    metadata = pod.setdefault("metadata", {})
    metadata["name"] = pod_name_of(request, name_suffix)
    metadata.pop("generateName", None)
    metadata["namespace"] = metadata.get("namespace") or DEFAULT_NAMESPACE
    labels = metadata.setdefault("labels", {})
    if request.airflow is not None:
        labels.update(airflow_labels(request.airflow))
    labels[MANAGED_BY_LABEL] = safe_label_value(gateway_id)
    labels[REQUEST_ID_LABEL] = request_id_label(request.request_id)
    annotations = metadata.setdefault("annotations", {})
    annotations[REQUEST_ID_ANNOTATION] = request.request_id
    annotations[CLUSTER_ANNOTATION] = cluster
    spec = pod.setdefault("spec", {})
    spec["restartPolicy"] = "Never"
    if request.xcom_mode is XcomMode.AUTO:
        main = spec["containers"][0]
        main["terminationMessagePath"] = XCOM_PATH
        main["terminationMessagePolicy"] = "File"
    elif request.xcom_mode is XcomMode.SIDECAR:
        _add_sidecar(spec, request.xcom_sidecar_image)
    return pod
