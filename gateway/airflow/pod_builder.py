"""Builds the Pod manifest from KubernetesPodOperator's arguments, the way KPO builds it, as a plain dict.

Pure: no Airflow, no kubernetes package, no I/O. The operator renders its templates, loads any
pod_template_file, and hands the values here; kubernetes model objects are accepted duck-typed.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.airflow.k8s_models import JSON, to_json, to_json_list
from gateway.airflow.pod_merge import Obj, compact, reconcile_pods
from gateway.client.types import AirflowContext

# The task instance a pod belongs to (dag, task, run, map index, try): the client's AirflowContext.
TaskIdentity = AirflowContext

POD_NAME_MAX_LENGTH = 63
MAX_LABEL_LEN = 63
_KEY_RE = re.compile(r"^[\w.-]+$")
LEGACY_RESOURCES = {
    "request_memory": ("requests", "memory"),
    "request_cpu": ("requests", "cpu"),
    "request_ephemeral_storage": ("requests", "ephemeral-storage"),
    "limit_memory": ("limits", "memory"),
    "limit_cpu": ("limits", "cpu"),
    "limit_gpu": ("limits", "nvidia.com/gpu"),
    "limit_ephemeral_storage": ("limits", "ephemeral-storage"),
}


@dataclass(frozen=True, kw_only=True)
class PodArgs:
    """KubernetesPodOperator's pod-shaping arguments, rendered. Model-typed fields take kubernetes client
    objects or camelCase dicts; `pod_template` is the loaded pod_template_file or pod_template_dict."""

    task_id: str
    image: str | None = None
    name: str | None = None
    namespace: str | None = None
    cmds: Sequence[str] = ()
    arguments: Sequence[str] = ()
    env_vars: Any = None
    env_from: Any = None
    secrets: Sequence[Any] = ()
    configmaps: Sequence[str] = ()
    pod_runtime_info_envs: Any = None
    labels: Mapping[str, Any] | None = None
    annotations: Mapping[str, Any] | None = None
    ports: Any = None
    volumes: Any = None
    volume_mounts: Any = None
    container_resources: Any = None
    node_selector: Mapping[str, str] | None = None
    affinity: Any = None
    tolerations: Any = None
    security_context: Any = None
    container_security_context: Any = None
    service_account_name: str | None = None
    automount_service_account_token: bool | None = None
    image_pull_policy: str | None = None
    image_pull_secrets: Any = None
    init_containers: Any = None
    priority_class_name: str | None = None
    termination_grace_period: int | None = None
    active_deadline_seconds: int | None = None
    hostnetwork: bool = False
    host_aliases: Any = None
    dnspolicy: str | None = None
    dns_config: Any = None
    hostname: str | None = None
    subdomain: str | None = None
    schedulername: str | None = None
    termination_message_policy: str = "File"
    base_container_name: str = "base"
    full_pod_spec: Any = None
    pod_template: Mapping[str, Any] | None = None
    extra_labels: Mapping[str, str] = field(default_factory=dict)


# --- names and labels ---------------------------------------------------------------------------


def slugify(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def normalize_name(name: str | None) -> str | None:
    """KPO's rule for a user-given pod name: a valid key, lower-cased, other characters turned into '-'."""
    if name is None:
        return None
    if len(name) > 220 or not _KEY_RE.match(name):
        raise ValueError(f"pod name {name!r}: use at most 220 letters, digits, '_', '.' or '-'")
    return re.sub(r"[^a-z0-9-]+", "-", name.lower())


def pod_name(given: str | None, task_id: str) -> str:
    """The name's base: the given name, else the task id made DNS-safe. The gateway appends the random
    suffix that makes it unique (as random_name_suffix=True does in KPO), and truncates to 63 characters."""
    return given or slugify(task_id)[:POD_NAME_MAX_LENGTH].strip(".-") or "pod"


def safe_label_value(value: str) -> str:
    """A valid label value: unchanged when it already is one, else trimmed and tagged with a short hash."""
    safe = re.sub(r"^[^a-z0-9A-Z]*|[^a-zA-Z0-9_\-\.]|[^a-z0-9A-Z]*$", "", value)
    if len(safe) > MAX_LABEL_LEN or safe != value:
        digest = hashlib.md5(value.encode(), usedforsecurity=False).hexdigest()[:9]
        safe = safe[: MAX_LABEL_LEN - len(digest) - 1] + "-" + digest
    return safe


def task_labels(identity: TaskIdentity, *, include_try_number: bool) -> dict[str, str]:
    """The labels KPO puts on its pods to find them again (values made label-safe)."""
    labels = {
        "dag_id": identity.dag_id,
        "task_id": identity.task_id,
        "run_id": identity.run_id,
        "kubernetes_pod_operator": "True",
    }
    if identity.map_index >= 0:
        labels["map_index"] = str(identity.map_index)
    if include_try_number:
        labels["try_number"] = str(identity.try_number)
    return {k: safe_label_value(v) for k, v in labels.items()}


# --- argument conversions -------------------------------------------------------------------------


def env_list(env_vars: Any, where: str = "env_vars") -> list[JSON]:
    """A dict becomes name/value pairs; a list of V1EnvVar (or dicts) is serialised as is."""
    if not env_vars:
        return []
    if isinstance(env_vars, Mapping):
        return [{"name": str(k), "value": v if v is None else str(v)} for k, v in env_vars.items()]
    if isinstance(env_vars, list | tuple):
        return to_json_list(env_vars, where)
    raise TypeError(f"{where}: expected a dict or a list of V1EnvVar, got {type(env_vars).__name__}")


def resources(value: Any) -> JSON:
    """V1ResourceRequirements, its dict form, or the older dict with request_*/limit_* keys."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        return to_json(value, "container_resources")
    if not value:
        return None
    if set(value) <= set(LEGACY_RESOURCES):
        out: dict[str, dict[str, str]] = {}
        for key, item in value.items():
            if item is not None:
                section, resource = LEGACY_RESOURCES[key]
                out.setdefault(section, {})[resource] = str(item)
        return out
    if set(value) <= {"requests", "limits", "claims"}:
        return to_json(value, "container_resources")
    unknown = sorted(set(value) - set(LEGACY_RESOURCES) - {"requests", "limits", "claims"})
    raise ValueError(
        f"container_resources: unknown keys {unknown}; use V1ResourceRequirements, "
        f"{{'requests': ..., 'limits': ...}} or the keys {sorted(LEGACY_RESOURCES)}"
    )


def pull_secrets(value: Any) -> list[JSON]:
    """ "a,b" or ["a", V1LocalObjectReference(name="b")] -> [{"name": "a"}, {"name": "b"}]."""
    if not value:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [{"name": item.strip()} if isinstance(item, str) else to_json(item, "image_pull_secrets") for item in items]


def _secret_field(secret: Any, name: str) -> Any:
    return secret.get(name) if isinstance(secret, Mapping) else getattr(secret, name, None)


def attach_secrets(pod: Obj, secret_list: Sequence[Any]) -> Obj:
    """Airflow's Secret objects (deploy_type env or volume), duck-typed: env vars, envFrom or a mounted volume
    on the first container, as Secret.attach_to_pod does."""
    if not secret_list:
        return pod
    container = pod["spec"]["containers"][0]
    for i, secret in enumerate(secret_list):
        kind = _secret_field(secret, "deploy_type")
        target = _secret_field(secret, "deploy_target")
        name = _secret_field(secret, "secret")
        key = _secret_field(secret, "key")
        if kind == "env" and key is None and target is None:
            container.setdefault("envFrom", []).append({"secretRef": {"name": name}})
        elif kind == "env":
            ref = {"name": name, "key": key}
            container.setdefault("env", []).append({"name": target, "valueFrom": {"secretKeyRef": ref}})
        elif kind == "volume":
            volume_name = f"secretvol-{i}"
            source = compact({"secretName": name, "items": to_json(_secret_field(secret, "items"), "items")})
            pod["spec"].setdefault("volumes", []).append({"name": volume_name, "secret": source})
            mount = {"name": volume_name, "mountPath": target, "readOnly": True}
            container.setdefault("volumeMounts", []).append(mount)
        else:
            raise ValueError(f"secrets[{i}]: deploy_type must be 'env' or 'volume', got {kind!r}")
    return pod


# --- the pod --------------------------------------------------------------------------------------


def _container(a: PodArgs) -> Obj:
    env = env_list(a.env_vars) + env_list(a.pod_runtime_info_envs, "pod_runtime_info_envs")
    env_from = to_json_list(a.env_from, "env_from") + [{"configMapRef": {"name": c}} for c in a.configmaps or ()]
    return compact(
        {
            "name": a.base_container_name,
            "image": a.image,
            "command": list(a.cmds or ()),
            "args": list(a.arguments or ()),
            "ports": to_json_list(a.ports, "ports"),
            "imagePullPolicy": a.image_pull_policy,
            "resources": resources(a.container_resources),
            "volumeMounts": to_json_list(a.volume_mounts, "volume_mounts"),
            "env": env,
            "envFrom": env_from,
            "securityContext": to_json(a.container_security_context, "container_security_context"),
            "terminationMessagePolicy": a.termination_message_policy,
        }
    )


def _spec(a: PodArgs) -> Obj:
    return compact(
        {
            "nodeSelector": dict(a.node_selector or {}),
            "affinity": to_json(a.affinity, "affinity"),
            "tolerations": to_json_list(a.tolerations, "tolerations"),
            "initContainers": to_json_list(a.init_containers, "init_containers"),
            "hostAliases": to_json_list(a.host_aliases, "host_aliases"),
            "containers": [_container(a)],
            "imagePullSecrets": pull_secrets(a.image_pull_secrets),
            "serviceAccountName": a.service_account_name,
            "automountServiceAccountToken": a.automount_service_account_token,
            "hostNetwork": a.hostnetwork,
            "hostname": a.hostname,
            "subdomain": a.subdomain,
            "securityContext": to_json(a.security_context, "security_context"),
            "dnsPolicy": a.dnspolicy,
            "dnsConfig": to_json(a.dns_config, "dns_config"),
            "schedulerName": a.schedulername,
            "restartPolicy": "Never",
            "priorityClassName": a.priority_class_name,
            "volumes": to_json_list(a.volumes, "volumes"),
            "activeDeadlineSeconds": a.active_deadline_seconds,
            "terminationGracePeriodSeconds": a.termination_grace_period,
        }
    )


def operator_pod(a: PodArgs) -> Obj:
    """The pod the operator's own arguments describe, before templates are laid under it."""
    labels = {str(k): "" if v is None else str(v) for k, v in (a.labels or {}).items()}
    metadata = compact(
        {
            "namespace": a.namespace,
            "name": normalize_name(a.name),
            "labels": labels,
            "annotations": {str(k): str(v) for k, v in (a.annotations or {}).items()},
        }
    )
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": _spec(a)}


def base_pod(a: PodArgs) -> Obj | None:
    """pod_template (file or dict) reconciled with full_pod_spec, or full_pod_spec alone."""
    full = to_json(a.full_pod_spec, "full_pod_spec") if a.full_pod_spec is not None else None
    if a.pod_template is not None:
        template = to_json(a.pod_template, "pod_template")
        return reconcile_pods(template, full) if full else template
    return full


def build_pod(
    a: PodArgs,
    identity: TaskIdentity | None,
    *,
    include_try_number: bool = True,
    default_namespace: str = "default",
) -> Obj:
    """The Pod manifest KubernetesPodOperator would create (less the XCom sidecar: the gateway adds it)."""
    pod = reconcile_pods(base_pod(a), operator_pod(a))
    metadata = pod.setdefault("metadata", {})
    spec = pod.setdefault("spec", {})
    if not spec.get("containers"):
        raise ValueError("the pod has no container: give an image, or a full_pod_spec / pod template with one")
    if not spec["containers"][0].get("image"):
        raise ValueError("the base container has no image: set image= (or the template's first container image)")
    metadata["name"] = pod_name(metadata.get("name"), a.task_id)
    metadata["namespace"] = metadata.get("namespace") or default_namespace
    pod = attach_secrets(pod, a.secrets)
    labels = metadata.get("labels") or {}
    if identity is not None:
        labels.update(task_labels(identity, include_try_number=include_try_number))
    labels.update(a.extra_labels)
    metadata["labels"] = labels
    return pod
