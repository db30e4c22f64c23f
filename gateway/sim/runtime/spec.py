"""From a pod's container to what the runtime runs: command, environment, mounts (pure; lookups injected).

Follows the kubelet: command/args with `$(VAR)` expansion, env values and `valueFrom` (fieldRef,
secretKeyRef, configMapKeyRef), `envFrom`, and configMap/secret volumes as files. A reference that
cannot be resolved is a `ContainerConfigError`, which the kubelet shows as CreateContainerConfigError.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.sim.quantity import QuantityError, to_int
from gateway.sim.runtime.base import Mount
from gateway.sim.runtime.config import RuntimeConfig

GPU_RESOURCE = "nvidia.com/gpu"

Obj = Mapping[str, Any]
Lookup = Callable[[str, str, str], Obj | None]  # (resource, namespace, name) -> object or None
_VARIABLE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


@dataclass(frozen=True)
class ApiAccess:
    """How a pod reaches its cluster's API server, as in-cluster clients expect: the kubernetes service's
    address in env vars and a ServiceAccount token, the CA and the namespace as files."""

    host: str
    port: int
    ca_pem: bytes = field(repr=False)
    token: str | None = field(repr=False)  # None: automountServiceAccountToken is false (env vars only)
    namespace: str

    def env(self) -> dict[str, str]:
        """The `kubernetes` service's variables, as every container gets them."""
        port, prefix = str(self.port), f"KUBERNETES_PORT_{self.port}_TCP"
        return {
            "KUBERNETES_SERVICE_HOST": self.host,
            "KUBERNETES_SERVICE_PORT": port,
            "KUBERNETES_SERVICE_PORT_HTTPS": port,
            "KUBERNETES_PORT": f"tcp://{self.host}:{port}",
            prefix: f"tcp://{self.host}:{port}",
            f"{prefix}_PROTO": "tcp",
            f"{prefix}_PORT": port,
            f"{prefix}_ADDR": self.host,
        }

    def files(self) -> dict[str, str]:
        if self.token is None:
            return {}
        return {"token": self.token, "ca.crt": self.ca_pem.decode(), "namespace": self.namespace}


def wants_api_access(pod: Obj) -> bool:
    """automountServiceAccountToken is true unless the pod says false."""
    return (pod.get("spec") or {}).get("automountServiceAccountToken") is not False


class ContainerConfigError(Exception):
    """The container cannot be configured (missing secret, key, volume); the kubelet retries it."""


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: known variables are replaced, unknown ones kept, $$ escapes."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _VARIABLE.sub(replace, text)


def argv(container: Obj, env: Mapping[str, str], config: RuntimeConfig) -> tuple[str, ...]:
    """As Kubernetes: `command` replaces the image's ENTRYPOINT and drops its CMD; `args` replace the CMD."""
    command = [expand(c, env) for c in container.get("command") or []]
    args = [expand(a, env) for a in container.get("args") or []]
    if command:
        return (*command, *args)
    image = str(container.get("image", ""))
    return (*config.entrypoint(image), *(args or config.default_command(image)))


def _field(pod: Obj, path: str, pod_ip: str, host_ip: str) -> str:
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path in simple:
        return str(simple[path])
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']*)'\]", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise ContainerConfigError(f"unsupported fieldRef {path!r}")


def _data(obj: Obj, kind: str) -> dict[str, str]:
    values = {k: str(v) for k, v in (obj.get("stringData") or {}).items()}
    for key, value in (obj.get("data") or {}).items():
        values.setdefault(key, base64.b64decode(value).decode() if kind == "Secret" else str(value))
    return values


def _source(lookup: Lookup, kind: str, namespace: str, name: str, optional: bool) -> dict[str, str] | None:
    obj = lookup("secrets" if kind == "Secret" else "configmaps", namespace, name)
    if obj is None:
        if optional:
            return None
        raise ContainerConfigError(f'{kind.lower()} "{name}" not found')
    return _data(obj, kind)


def _key_ref(ref: Obj, kind: str, namespace: str, lookup: Lookup) -> str | None:
    values = _source(lookup, kind, namespace, ref.get("name", ""), bool(ref.get("optional")))
    if values is None:
        return None
    key = ref.get("key", "")
    if key not in values:
        if ref.get("optional"):
            return None
        raise ContainerConfigError(f"couldn't find key {key} in {kind} {namespace}/{ref.get('name', '')}")
    return values[key]


def environment(
    pod: Obj, container: Obj, lookup: Lookup, pod_ip: str, host_ip: str, config: RuntimeConfig
) -> dict[str, str]:
    """The container's environment, as the kubelet builds it (PATH and HOSTNAME first, as an image would)."""
    namespace = (pod.get("metadata") or {}).get("namespace", "")
    env = {"PATH": config.path, "HOSTNAME": (pod.get("metadata") or {}).get("name", "")}
    env.update(gpu_environment(pod, container))
    for source in container.get("envFrom") or []:
        for kind, ref in (("ConfigMap", source.get("configMapRef")), ("Secret", source.get("secretRef"))):
            if ref:
                values = _source(lookup, kind, namespace, ref.get("name", ""), bool(ref.get("optional")))
                env.update({source.get("prefix", "") + k: v for k, v in (values or {}).items()})
    for item in container.get("env") or []:
        value: str | None
        source = item.get("valueFrom")
        if not source:
            value = expand(str(item.get("value", "")), env)
        elif "fieldRef" in source:
            value = _field(pod, source["fieldRef"].get("fieldPath", ""), pod_ip, host_ip)
        elif "secretKeyRef" in source:
            value = _key_ref(source["secretKeyRef"], "Secret", namespace, lookup)
        elif "configMapKeyRef" in source:
            value = _key_ref(source["configMapKeyRef"], "ConfigMap", namespace, lookup)
        else:
            raise ContainerConfigError(f"env {item.get('name')}: unsupported valueFrom {sorted(source)}")
        if value is not None:
            env[item["name"]] = value
    return env


def gpu_environment(pod: Obj, container: Obj) -> dict[str, str]:
    """What NVIDIA's device plugin gives a container that asks for GPUs: NVIDIA_VISIBLE_DEVICES naming one
    GPU-<uuid> per device (stable for the pod's container; the simulator has no physical devices to name)."""
    count = ((container.get("resources") or {}).get("limits") or {}).get(GPU_RESOURCE)
    try:
        n = int(str(count)) if count is not None else 0
    except ValueError:
        return {}
    if n <= 0:
        return {}
    owner = f"{(pod.get('metadata') or {}).get('uid', '')}/{container.get('name', '')}"
    ids = [f"GPU-{uuid.uuid5(uuid.NAMESPACE_URL, f'{owner}/{i}')}" for i in range(n)]
    return {"NVIDIA_VISIBLE_DEVICES": ",".join(ids)}


def memory_limit(container: Obj) -> int | None:
    limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
    try:
        return to_int(limit) if limit is not None else None
    except QuantityError as e:
        raise ContainerConfigError(str(e)) from e


def security(pod: Obj, container: Obj, key: str) -> int | None:
    """A securityContext id (runAsUser, runAsGroup): the container's, else the pod's."""
    for context in (container.get("securityContext"), (pod.get("spec") or {}).get("securityContext")):
        if context and context.get(key) is not None:
            return int(context[key])
    return None


def _selected(values: Mapping[str, str], items: list[Obj] | None) -> dict[str, str]:
    """`items` (key -> path) of a configMap/secret source, or every key as a file."""
    if not items:
        return dict(values)
    return {i["path"]: values[i["key"]] for i in items if i.get("key") in values}


def _downward(pod: Obj, items: list[Obj], pod_ip: str, host_ip: str) -> dict[str, str]:
    files = {}
    for item in items:
        path = (item.get("fieldRef") or {}).get("fieldPath", "")
        if path in ("metadata.labels", "metadata.annotations"):
            values = ((pod.get("metadata") or {}).get(path.split(".")[1]) or {}).items()
            files[item["path"]] = "\n".join(f'{k}="{v}"' for k, v in sorted(values))
        elif path:
            files[item["path"]] = _field(pod, path, pod_ip, host_ip)
    return files


def _volume_source(pod: Obj, source: Obj, lookup: Lookup, token: str | None) -> dict[str, str] | None:
    """Files of one configMap, secret, downwardAPI or serviceAccountToken source; None if it is none of them."""
    namespace = (pod.get("metadata") or {}).get("namespace", "")
    for kind, key, name_key in (("ConfigMap", "configMap", "name"), ("Secret", "secret", "secretName")):
        ref = source.get(key)
        if ref is not None:
            name = ref.get(name_key) or ref.get("name", "")
            values = _source(lookup, kind, namespace, name, bool(ref.get("optional"))) or {}
            return _selected(values, ref.get("items"))
    if "downwardAPI" in source:
        return _downward(pod, source["downwardAPI"].get("items") or [], "", "")
    if "serviceAccountToken" in source:
        return {source["serviceAccountToken"].get("path", "token"): token or ""}
    return None


def volume_files(pod: Obj, lookup: Lookup, token: str | None = None) -> dict[str, dict[str, str]]:
    """Files of the configMap, secret, downwardAPI and projected volumes, per volume name (items honoured);
    a projected serviceAccountToken gets `token` (empty without API access)."""
    files: dict[str, dict[str, str]] = {}
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        if "projected" in volume:
            merged: dict[str, str] = {}
            for source in volume["projected"].get("sources") or []:
                merged.update(_volume_source(pod, source, lookup, token) or {})
            files[volume["name"]] = merged
        else:
            found = _volume_source(pod, volume, lookup, token)
            if found is not None:
                files[volume["name"]] = found
    return files


def mounts(pod: Obj, container: Obj, volume_dirs: Mapping[str, str], termination_file: str) -> tuple[Mount, ...]:
    """The container's volumeMounts on the pod's volume directories, plus its termination-message file."""
    volumes = {v["name"]: v for v in (pod.get("spec") or {}).get("volumes") or []}
    result = []
    for mount in container.get("volumeMounts") or []:
        name = mount.get("name", "")
        volume = volumes.get(name)
        if volume is None:
            raise ContainerConfigError(f"volume {name!r} is mounted but not defined in the pod")
        source = volume["hostPath"]["path"] if "hostPath" in volume else volume_dirs[name]
        if mount.get("subPath"):
            source = f"{source.rstrip('/')}/{mount['subPath']}"
        result.append(Mount(source, mount["mountPath"], bool(mount.get("readOnly"))))
    result.append(Mount(termination_file, container.get("terminationMessagePath") or "/dev/termination-log"))
    return tuple(result)
