"""The API server's own checks where the Pod schema is silent: ranges, enumerations, names, quantities (pure).

Rules run in the same walk as the schema (pod_schema.py), on every object it reaches, whatever the types
of the object's fields: each rule reads fields through `_str`/`_list`/`_map`/`_int`, which give "nothing"
for a value of the wrong type (the walk reports those), so one request hears of every problem at once;
a rule is keyed by the schema definition it checks, so it applies wherever that definition occurs
(containers, init and ephemeral containers, probes of each). The wording follows kube-apiserver's
`pkg/apis/core/validation` for the Kubernetes version of the schema; what a rule does not cover, the API
server may still refuse (the pod then fails as Rejected, with its message).

The pod's own metadata (`object_meta`) is checked here too but run by pods/validation.py, after the walk:
its problems are part of that stage's answer ("invalid pod manifest: ..."), not of the request's shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any

from gateway.placement.labels import dns1123_label_error, label_key_error, label_value_error
from gateway.placement.quantity import parse_quantity
from gateway.pods.pod_schema import Add, Key, Path, Rule, shown

CORE = "io.k8s.api.core.v1."
META = "io.k8s.apimachinery.pkg.apis.meta.v1."
INT32_MAX = 2**31 - 1
_IANA_SVC_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?", re.ASCII)
_STANDARD_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage", "storage"})
_ENUMS: dict[str, dict[str, tuple[str, ...]]] = {
    "Container": {
        "imagePullPolicy": ("Always", "Never", "IfNotPresent"),
        "terminationMessagePolicy": ("File", "FallbackToLogsOnError"),
    },
    "PodSpec": {
        "dnsPolicy": ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"),
        "preemptionPolicy": ("Never", "PreemptLowerPriority"),
    },
    "ContainerPort": {"protocol": ("TCP", "UDP", "SCTP")},
    "Toleration": {"effect": ("", "NoSchedule", "PreferNoSchedule", "NoExecute"), "operator": ("", "Equal", "Exists")},
    "NodeSelectorRequirement": {"operator": ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")},
    "LabelSelectorRequirement": {"operator": ("In", "NotIn", "Exists", "DoesNotExist")},
}


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _enums(kind: str) -> Rule:
    allowed = _ENUMS[kind]

    def rule(obj: Mapping[str, Any], path: Path, add: Add) -> None:
        for key, values in allowed.items():
            value = obj.get(key)
            if isinstance(value, str) and value not in values:
                add((*path, key), f"unsupported value {shown(value)}: one of {', '.join(repr(v) for v in values)}")

    return rule


def _in_range(obj: Mapping[str, Any], key: str, low: int, high: int, path: Path, add: Add) -> None:
    value = _int(obj.get(key))
    if value is not None and not low <= value <= high:
        add((*path, key), f"must be between {low} and {high}, got {value}")


def _port_number_or_name(obj: Mapping[str, Any], key: str, path: Path, add: Add) -> None:
    value = obj.get(key)
    if _int(value) is not None:
        _in_range(obj, key, 1, 65535, path, add)
    elif isinstance(value, str) and (error := _port_name_error(value)):
        add((*path, key), error)


def _port_name_error(name: str) -> str:
    """IANA_SVC_NAME: 1-15 of [a-z0-9-], at least one letter, no '--', alphanumeric at both ends."""
    if _IANA_SVC_NAME.fullmatch(name) and "--" not in name and any(c.isalpha() for c in name):
        return ""
    return f"port name {shown(name)} must be 1-15 lower-case letters, digits and '-', with at least one letter"


def _pod_spec(obj: Mapping[str, Any], path: Path, add: Add) -> None:
    _enums("PodSpec")(obj, path, add)
    for key in ("hostname", "subdomain"):
        if _str(obj.get(key)) and (error := dns1123_label_error(_str(obj.get(key)))):
            add((*path, key), f"{key} {error}")
    if _list(obj.get("ephemeralContainers")):
        add((*path, "ephemeralContainers"), "cannot be set on create (they are added to a running pod)")
    _in_range(obj, "activeDeadlineSeconds", 1, INT32_MAX, path, add)
    _in_range(obj, "terminationGracePeriodSeconds", 0, 2**63 - 1, path, add)
    for key, value in _map(obj.get("nodeSelector")).items():
        for error in (label_key_error(key), label_value_error(value) if isinstance(value, str) else ""):
            if error:
                add((*path, "nodeSelector", Key(key)), error)
    volumes = [_str(_map(v).get("name")) for v in _list(obj.get("volumes"))]
    seen: set[str] = set()
    for i, name in enumerate(volumes):
        if name and name in seen:
            add((*path, "volumes", i, "name"), f"duplicate volume name {shown(name)}")
        seen.add(name)
    for group in ("containers", "initContainers", "ephemeralContainers"):
        for i, container in enumerate(_list(obj.get(group))):
            for j, mount in enumerate(_list(_map(container).get("volumeMounts"))):
                mounted = _map(mount).get("name")
                if isinstance(mounted, str) and mounted not in seen:
                    add((*path, group, i, "volumeMounts", j, "name"), f"no volume named {shown(mounted)} in the pod")


def _container(obj: Mapping[str, Any], path: Path, add: Add) -> None:
    _enums("Container")(obj, path, add)
    image = _str(obj.get("image"))
    if image != image.strip():
        add((*path, "image"), "must not have leading or trailing whitespace")
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        if obj.get(key) is not None and obj.get("restartPolicy") != "Always" and path[-2:-1] == ("initContainers",):
            add((*path, key), "may not be set for init containers (only for sidecars, restartPolicy Always)")


def _container_port(obj: Mapping[str, Any], path: Path, add: Add) -> None:
    _in_range(obj, "containerPort", 1, 65535, path, add)
    _in_range(obj, "hostPort", 0, 65535, path, add)
    _enums("ContainerPort")(obj, path, add)
    name = obj.get("name")
    if isinstance(name, str) and name and (error := _port_name_error(name)):
        add((*path, "name"), error)


def _env_var(obj: Mapping[str, Any], path: Path, add: Add) -> None:
    name = obj.get("name")
    if isinstance(name, str) and (not name or "=" in name or not (name.isascii() and name.isprintable())):
        add((*path, "name"), f"environment variable name {shown(name)} must be printable ASCII without '='")
    if obj.get("value") not in (None, "") and obj.get("valueFrom") is not None:
        add((*path, "valueFrom"), "may not be set when `value` is not empty")


def _resource_name_error(name: str) -> str:
    if name in _STANDARD_RESOURCES or name.startswith("hugepages-"):
        return ""
    if "/" not in name:
        return f"resource name {shown(name)} must be cpu, memory, ephemeral-storage, hugepages-<size> or domain/name"
    return label_key_error(name).replace("label key", "resource name")


def _quantities(obj: Mapping[str, Any], key: str, path: Path, add: Add) -> dict[str, Fraction]:
    out: dict[str, Fraction] = {}
    for name, raw in _map(obj.get(key)).items():
        if error := _resource_name_error(name):
            add((*path, key, Key(name)), error)
        try:
            value = parse_quantity(raw) if raw is not None else Fraction(0)
        except (ValueError, TypeError):
            continue  # the schema walk reported it
        if value < 0:
            add((*path, key, Key(name)), f"must not be negative, got {shown(raw)}")
        out[name] = value
    return out


def _resources(obj: Mapping[str, Any], path: Path, add: Add) -> None:
    requests = _quantities(obj, "requests", path, add)
    limits = _quantities(obj, "limits", path, add)
    for name, value in requests.items():
        if name in limits and value > limits[name]:
            add((*path, "requests", Key(name)), f"must be less than or equal to the {name} limit")


def _toleration(obj: Mapping[str, Any], path: Path, add: Add) -> None:
    _enums("Toleration")(obj, path, add)
    key, operator, value = _str(obj.get("key")), _str(obj.get("operator")) or "Equal", _str(obj.get("value"))
    if key and (error := label_key_error(key)):
        add((*path, "key"), error)
    if obj.get("key") in (None, "") and operator != "Exists":
        add((*path, "operator"), "must be Exists when `key` is empty (which means all keys)")
    if operator == "Exists" and value:
        add((*path, "value"), "must be empty when `operator` is Exists")
    elif value and (error := label_value_error(value)):
        add((*path, "value"), error)
    if obj.get("tolerationSeconds") is not None and obj.get("effect") != "NoExecute":
        add((*path, "effect"), "must be NoExecute when `tolerationSeconds` is set")


def _requirement(kind: str) -> Rule:
    enums = _enums(kind)

    def rule(obj: Mapping[str, Any], path: Path, add: Add) -> None:
        enums(obj, path, add)
        key, operator, values = _str(obj.get("key")), obj.get("operator"), _list(obj.get("values"))
        if isinstance(obj.get("key"), str) and (error := label_key_error(key)):
            add((*path, "key"), error)
        if operator in ("In", "NotIn") and not values:
            add((*path, "values"), f"must be specified when `operator` is {operator}")
        elif operator in ("Exists", "DoesNotExist") and values:
            add((*path, "values"), f"may not be specified when `operator` is {operator}")
        elif operator in ("Gt", "Lt") and (len(values) != 1 or not re.fullmatch(r"-?[0-9]{1,18}", _str(values[0]))):
            add((*path, "values"), f"must be one integer when `operator` is {operator}")

    return rule


def _node_term(obj: Mapping[str, Any], path: Path, add: Add) -> None:
    for i, requirement in enumerate(_list(obj.get("matchFields"))):
        if not isinstance(requirement, Mapping):
            continue
        where = (*path, "matchFields", i)
        if requirement.get("key") != "metadata.name":
            add((*where, "key"), f"only metadata.name is supported, got {shown(requirement.get('key'))}")
        if _str(requirement.get("operator")) not in ("In", "NotIn"):
            add((*where, "operator"), "must be In or NotIn for a field selector")
        if len(_list(requirement.get("values"))) != 1:
            add((*where, "values"), "must hold exactly one node name")


def _node_selector(obj: Mapping[str, Any], path: Path, add: Add) -> None:
    if obj.get("nodeSelectorTerms") in (None, []):
        add((*path, "nodeSelectorTerms"), "must have at least one node selector term")


def _weight(obj: Mapping[str, Any], path: Path, add: Add) -> None:
    _in_range(obj, "weight", 1, 100, path, add)


def _pod_affinity_term(obj: Mapping[str, Any], path: Path, add: Add) -> None:
    key = _str(obj.get("topologyKey"))
    if not isinstance(obj.get("topologyKey"), str | None):
        return
    if error := label_key_error(key):
        add((*path, "topologyKey"), error if key else "required: a node label key, e.g. kubernetes.io/hostname")


def _probe(obj: Mapping[str, Any], path: Path, add: Add) -> None:
    for key in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"):
        _in_range(obj, key, 0, INT32_MAX, path, add)
    _in_range(obj, "terminationGracePeriodSeconds", 1, 2**63 - 1, path, add)


def _probe_port(obj: Mapping[str, Any], path: Path, add: Add) -> None:
    _port_number_or_name(obj, "port", path, add)


def _grpc_port(obj: Mapping[str, Any], path: Path, add: Add) -> None:
    _in_range(obj, "port", 1, 65535, path, add)


def _volume(obj: Mapping[str, Any], path: Path, add: Add) -> None:
    name = obj.get("name")
    if isinstance(name, str) and (error := dns1123_label_error(name)):
        add((*path, "name"), f"volume name {error}")


def _volume_mount(obj: Mapping[str, Any], path: Path, add: Add) -> None:
    if obj.get("mountPath") in (None, ""):
        add((*path, "mountPath"), "required")


def _sleep(obj: Mapping[str, Any], path: Path, add: Add) -> None:
    _in_range(obj, "seconds", 0, 2**63 - 1, path, add)


def object_meta(obj: Mapping[str, Any], path: Path, add: Add, *, own_key: Callable[[str], str]) -> None:
    """The namespace, label keys and values and annotation keys of a pod's metadata that passed the walk.

    Per entry the value comes first, then the key; `own_key` is the caller's rule for a key the API server
    accepts (the gateway keeps `podgate.io/` for itself). A null value, which the schema allows, is refused.
    """
    namespace = _str(obj.get("namespace"))
    if namespace and (error := dns1123_label_error(namespace)):
        add((*path, "namespace"), f"namespace {error}")
    for field, values in (("labels", True), ("annotations", False)):
        for key, value in _map(obj.get(field)).items():
            where = (*path, field, Key(key))
            if value is None:
                add(where, "value must be a string, got NoneType")
            elif values and (error := label_value_error(value)):
                add(where, error)
            if (error := label_key_error(key)) or (error := own_key(key)):
                add(where, error)


RULES: dict[str, Rule] = {
    CORE + "PodSpec": _pod_spec,
    CORE + "Container": _container,
    CORE + "EphemeralContainer": _container,
    CORE + "ContainerPort": _container_port,
    CORE + "EnvVar": _env_var,
    CORE + "ResourceRequirements": _resources,
    CORE + "Toleration": _toleration,
    CORE + "NodeSelectorRequirement": _requirement("NodeSelectorRequirement"),
    META + "LabelSelectorRequirement": _requirement("LabelSelectorRequirement"),
    CORE + "NodeSelectorTerm": _node_term,
    CORE + "NodeSelector": _node_selector,
    CORE + "PreferredSchedulingTerm": _weight,
    CORE + "WeightedPodAffinityTerm": _weight,
    CORE + "PodAffinityTerm": _pod_affinity_term,
    CORE + "Probe": _probe,
    CORE + "HTTPGetAction": _probe_port,
    CORE + "TCPSocketAction": _probe_port,
    CORE + "GRPCAction": _grpc_port,
    CORE + "SleepAction": _sleep,
    CORE + "Volume": _volume,
    CORE + "VolumeMount": _volume_mount,
}
