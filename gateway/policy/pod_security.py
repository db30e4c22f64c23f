"""The Kubernetes Pod Security Standards (baseline and restricted), checked before a pod leaves the gateway.

Each control follows https://kubernetes.io/docs/concepts/security/pod-security-standards/: the same
restricted fields and allowed values, over containers, initContainers and ephemeralContainers. Checking
here, not only by the cluster's own admission, means a tenant's privileged pod never reaches any
cluster, whatever namespace labels each cluster has, and every problem comes back at once.

Pods in a user namespace (`hostUsers: false`) get the upstream relaxations: any /proc mount type at
baseline, and no running-as-non-root or non-zero uid requirement at restricted.

Where the restricted profile tightens a baseline control (volume types over hostPath, seccomp,
capabilities), the restricted control replaces the baseline one so a field is reported once; when a
tenant is exempt from the restricted control, the baseline one still applies.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from gateway.domain import MANIFEST_FIELD as ROOT
from gateway.errors import FieldViolation, InvalidArgument

CONTAINER_KINDS = ("containers", "initContainers", "ephemeralContainers")


class Level(enum.StrEnum):
    BASELINE = "baseline"
    RESTRICTED = "restricted"


@dataclass(frozen=True, kw_only=True)
class Control:
    id: str  # what tenant exceptions name
    title: str  # the control's name in the PSS document
    level: Level
    replaces: str = ""  # the baseline control this restricted one supersedes


@dataclass(frozen=True, kw_only=True)
class Violation:
    control: str
    field: str
    description: str

    def as_field_violation(self) -> FieldViolation:
        return FieldViolation(self.field, f"{self.description} (Pod Security Standards: {self.control})")


@dataclass(frozen=True, kw_only=True)
class PodSecurityPolicy:
    """A tenant's level and the controls it is exempt from (ids of CONTROLS)."""

    level: Level = Level.BASELINE
    exceptions: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        unknown = sorted(self.exceptions - CONTROLS.keys())
        if unknown:
            raise ValueError(f"unknown Pod Security control(s) {unknown}; known: {', '.join(sorted(CONTROLS))}")


BASELINE_CAPABILITIES = frozenset(
    {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
     "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
)  # fmt: skip
RESTRICTED_ADD_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
SAFE_SYSCTLS = frozenset(
    {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
     "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
     "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
     "net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}
)  # fmt: skip
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
SECCOMP_TYPES = frozenset({"RuntimeDefault", "Localhost"})
APPARMOR_TYPES = frozenset({"RuntimeDefault", "Localhost"})
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
RESTRICTED_VOLUME_TYPES = frozenset(
    {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}
)
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
LIFECYCLE_HOOKS = ("postStart", "preStop")


# --- reading a manifest that may be malformed (the schema walk, pods/pod_schema.py, reports the shape) ----------


_NOTHING: Mapping[str, Any] = MappingProxyType({})


def _obj(value: Any) -> Mapping[str, Any]:
    # `type(...) is dict` first: a decoded manifest's objects are dicts, and the ABC check costs ~10x more;
    # an absent field (None: most of the ~40 a check reads) is answered before it too
    if type(value) is dict:
        return value
    return _NOTHING if value is None or not isinstance(value, Mapping) else value


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


@dataclass(frozen=True, slots=True)
class _Pod:
    metadata: Mapping[str, Any]
    spec: Mapping[str, Any]
    all_containers: tuple[tuple[str, Mapping[str, Any]], ...] = ()  # `containers()`, listed once per check

    @classmethod
    def of(cls, pod: Mapping[str, Any]) -> _Pod:
        spec = _obj(pod.get("spec"))
        listed = tuple(
            (f"{ROOT}.spec.{kind}[{i}]", _obj(c)) for kind in CONTAINER_KINDS for i, c in enumerate(_items(spec.get(kind)))
        )
        return cls(metadata=_obj(pod.get("metadata")), spec=spec, all_containers=listed)

    @property
    def security(self) -> Mapping[str, Any]:
        return _obj(self.spec.get("securityContext"))

    @property
    def user_namespace(self) -> bool:
        """`hostUsers: false`: root in the container is not root on the node (KEP-127 relaxations)."""
        return self.spec.get("hostUsers") is False

    @property
    def windows(self) -> bool:
        return _obj(self.spec.get("os")).get("name") == "windows"

    def containers(self) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """(field path, container) for every container of every kind."""
        return iter(self.all_containers)


def _among(value: Any, allowed: frozenset[str]) -> bool:
    """Membership that a malformed value (a list, a mapping) cannot crash."""
    return isinstance(value, str) and value in allowed


def _csc(c: Mapping[str, Any]) -> Mapping[str, Any]:
    return _obj(c.get("securityContext"))


_POD_SC = f"{ROOT}.spec.securityContext"
Found = Iterator[tuple[str, str]]  # (field, description)


# --- baseline -----------------------------------------------------------------------------


def _host_process(pod: _Pod) -> Found:
    if _obj(pod.security.get("windowsOptions")).get("hostProcess") is True:
        yield f"{_POD_SC}.windowsOptions.hostProcess", "must be false or unset"
    for path, c in pod.containers():
        if _obj(_csc(c).get("windowsOptions")).get("hostProcess") is True:
            yield f"{path}.securityContext.windowsOptions.hostProcess", "must be false or unset"


def _host_namespaces(pod: _Pod) -> Found:
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.spec.get(key) is True:
            yield f"{ROOT}.spec.{key}", "sharing the host's namespaces is not allowed; must be false or unset"


def _privileged(pod: _Pod) -> Found:
    for path, c in pod.containers():
        if _csc(c).get("privileged") is True:
            yield f"{path}.securityContext.privileged", "privileged containers are not allowed; must be false or unset"


def _added_capabilities(c: Mapping[str, Any]) -> list[str]:
    return [str(x) for x in _items(_obj(_csc(c).get("capabilities")).get("add"))]


def _capabilities(pod: _Pod) -> Found:
    for path, c in pod.containers():
        extra = [cap for cap in _added_capabilities(c) if cap not in BASELINE_CAPABILITIES]
        if extra:
            yield (
                f"{path}.securityContext.capabilities.add",
                f"capabilities {extra} are not allowed; allowed: {', '.join(sorted(BASELINE_CAPABILITIES))}",
            )


def _host_path(pod: _Pod) -> Found:
    for i, v in enumerate(_items(pod.spec.get("volumes"))):
        if "hostPath" in _obj(v):
            yield f"{ROOT}.spec.volumes[{i}].hostPath", "hostPath volumes are not allowed"


def _host_ports(pod: _Pod) -> Found:
    for path, c in pod.containers():
        for j, port in enumerate(_items(c.get("ports"))):
            if _obj(port).get("hostPort") not in (None, 0):
                yield f"{path}.ports[{j}].hostPort", "host ports are not allowed; must be 0 or unset"


def _handler_hosts(c: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for probe in PROBES:
        yield probe, _obj(c.get(probe))
    for hook in LIFECYCLE_HOOKS:
        yield f"lifecycle.{hook}", _obj(_obj(c.get("lifecycle")).get(hook))


def _host_probes(pod: _Pod) -> Found:
    for path, c in pod.containers():
        for sub, handler in _handler_hosts(c):
            for action in ("httpGet", "tcpSocket"):
                if _obj(handler.get(action)).get("host") not in (None, ""):
                    yield f"{path}.{sub}.{action}.host", "probes and lifecycle hooks must not name a host"


def _apparmor(pod: _Pod) -> Found:
    allowed = ", ".join(sorted(APPARMOR_TYPES))
    contexts = [(_POD_SC, pod.security)] + [(f"{p}.securityContext", _csc(c)) for p, c in pod.containers()]
    for path, sc in contexts:
        kind = _obj(sc.get("appArmorProfile")).get("type")
        if kind is not None and not _among(kind, APPARMOR_TYPES):
            yield f"{path}.appArmorProfile.type", f"{kind!r} is not allowed; allowed: {allowed} or unset"
    for key, value in _obj(pod.metadata.get("annotations")).items():
        if str(key).startswith(APPARMOR_ANNOTATION) and not (
            value == "runtime/default" or str(value).startswith("localhost/")
        ):
            yield f"{ROOT}.metadata.annotations[{key}]", f"{value!r} is not allowed; runtime/default or localhost/*"


def _selinux(pod: _Pod) -> Found:
    contexts = [(_POD_SC, pod.security)] + [(f"{p}.securityContext", _csc(c)) for p, c in pod.containers()]
    for path, sc in contexts:
        options = _obj(sc.get("seLinuxOptions"))
        kind = options.get("type")
        if kind is not None and not _among(kind, SELINUX_TYPES):
            allowed = ", ".join(sorted(SELINUX_TYPES - {""}))
            yield f"{path}.seLinuxOptions.type", f"{kind!r} is not allowed; allowed: {allowed} or unset"
        for key in ("user", "role"):
            if options.get(key) not in (None, ""):
                yield f"{path}.seLinuxOptions.{key}", "custom SELinux users and roles are not allowed; must be unset"


def _proc_mount(pod: _Pod, *, relax_for_user_namespace: bool) -> Found:
    if relax_for_user_namespace and pod.user_namespace:
        return
    for path, c in pod.containers():
        mount = _csc(c).get("procMount")
        if mount not in (None, "Default"):
            yield f"{path}.securityContext.procMount", f"{mount!r} is not allowed; must be Default or unset"


def _seccomp_type(sc: Mapping[str, Any]) -> Any:
    return _obj(sc.get("seccompProfile")).get("type")


def _seccomp(pod: _Pod) -> Found:
    contexts = [(_POD_SC, pod.security)] + [(f"{p}.securityContext", _csc(c)) for p, c in pod.containers()]
    for path, sc in contexts:
        if _seccomp_type(sc) == "Unconfined":
            yield f"{path}.seccompProfile.type", "Unconfined is not allowed; RuntimeDefault, Localhost or unset"


def _sysctls(pod: _Pod) -> Found:
    for i, s in enumerate(_items(pod.security.get("sysctls"))):
        name = _obj(s).get("name")
        if not _among(name, SAFE_SYSCTLS):
            yield (
                f"{_POD_SC}.sysctls[{i}].name",
                f"sysctl {name!r} is not in the safe set: {', '.join(sorted(SAFE_SYSCTLS))}",
            )


# --- restricted ---------------------------------------------------------------------------


def _volume_types(pod: _Pod) -> Found:
    allowed = ", ".join(sorted(RESTRICTED_VOLUME_TYPES))
    for i, v in enumerate(_items(pod.spec.get("volumes"))):
        for source in sorted(set(_obj(v)) - RESTRICTED_VOLUME_TYPES - {"name"}):
            yield f"{ROOT}.spec.volumes[{i}].{source}", f"volume type {source} is not allowed; allowed: {allowed}"


def _privilege_escalation(pod: _Pod) -> Found:
    if pod.windows:
        return
    for path, c in pod.containers():
        if _csc(c).get("allowPrivilegeEscalation") is not False:
            yield f"{path}.securityContext.allowPrivilegeEscalation", "must be set to false"


def _run_as_non_root(pod: _Pod) -> Found:
    if pod.user_namespace:
        return
    pod_value = pod.security.get("runAsNonRoot")
    if pod_value is False:
        yield f"{_POD_SC}.runAsNonRoot", "must be true or unset"
    for path, c in pod.containers():
        value = _csc(c).get("runAsNonRoot")
        if value is False or (value is None and pod_value is not True):
            yield (
                f"{path}.securityContext.runAsNonRoot",
                "must be true (set it here or in spec.securityContext)",
            )


def _run_as_user(pod: _Pod) -> Found:
    if pod.user_namespace:
        return
    contexts = [(_POD_SC, pod.security)] + [(f"{p}.securityContext", _csc(c)) for p, c in pod.containers()]
    for path, sc in contexts:
        if sc.get("runAsUser") == 0:
            yield f"{path}.runAsUser", "running as user 0 (root) is not allowed; use a non-zero uid or unset"


def _seccomp_restricted(pod: _Pod) -> Found:
    yield from _seccomp(pod)
    if pod.windows:
        return
    pod_set = _among(_seccomp_type(pod.security), SECCOMP_TYPES)
    for path, c in pod.containers():
        if _seccomp_type(_csc(c)) is None and not pod_set:
            yield (
                f"{path}.securityContext.seccompProfile.type",
                "must be RuntimeDefault or Localhost (set it here or in spec.securityContext)",
            )


def _capabilities_restricted(pod: _Pod) -> Found:
    if pod.windows:
        return
    for path, c in pod.containers():
        caps = _obj(_csc(c).get("capabilities"))
        if "ALL" not in [str(x) for x in _items(caps.get("drop"))]:
            yield f"{path}.securityContext.capabilities.drop", "must include ALL"
        extra = [cap for cap in _added_capabilities(c) if cap not in RESTRICTED_ADD_CAPABILITIES]
        if extra:
            yield (
                f"{path}.securityContext.capabilities.add",
                f"capabilities {extra} are not allowed; only NET_BIND_SERVICE",
            )


# --- the table ------------------------------------------------------------------------------

B, R = Level.BASELINE, Level.RESTRICTED
_TABLE: tuple[tuple[Control, Callable[[_Pod], Found]], ...] = (
    (Control(id="host-process", title="HostProcess", level=B), _host_process),
    (Control(id="host-namespaces", title="Host Namespaces", level=B), _host_namespaces),
    (Control(id="privileged", title="Privileged Containers", level=B), _privileged),
    (Control(id="capabilities", title="Capabilities", level=B), _capabilities),
    (Control(id="host-path-volumes", title="HostPath Volumes", level=B), _host_path),
    (Control(id="host-ports", title="Host Ports", level=B), _host_ports),
    (Control(id="host-probes", title="Host Probes / Lifecycle Hooks", level=B), _host_probes),
    (Control(id="apparmor", title="AppArmor", level=B), _apparmor),
    (Control(id="selinux", title="SELinux", level=B), _selinux),
    (Control(id="proc-mount", title="/proc Mount Type", level=B), lambda p: _proc_mount(p, relax_for_user_namespace=True)),
    (Control(id="seccomp", title="Seccomp", level=B), _seccomp),
    (Control(id="sysctls", title="Sysctls", level=B), _sysctls),
    (Control(id="volume-types", title="Volume Types", level=R, replaces="host-path-volumes"), _volume_types),
    (Control(id="privilege-escalation", title="Privilege Escalation", level=R), _privilege_escalation),
    (Control(id="running-as-non-root", title="Running as Non-root", level=R), _run_as_non_root),
    (Control(id="running-as-non-root-user", title="Running as Non-root user", level=R), _run_as_user),
    (Control(id="seccomp-restricted", title="Seccomp (restricted)", level=R, replaces="seccomp"), _seccomp_restricted),
    (Control(id="capabilities-restricted", title="Capabilities (restricted)", level=R, replaces="capabilities"),
     _capabilities_restricted),
    (Control(id="proc-mount-restricted", title="/proc Mount Type (restricted)", level=R, replaces="proc-mount"),
     lambda p: _proc_mount(p, relax_for_user_namespace=False)),
)  # fmt: skip
CONTROLS: Mapping[str, Control] = {c.id: c for c, _ in _TABLE}


def active_controls(policy: PodSecurityPolicy) -> list[Control]:
    """The controls a policy enforces, in document order."""
    wanted = [c for c, _ in _TABLE if c.level is B or policy.level is R]
    wanted = [c for c in wanted if c.id not in policy.exceptions]
    superseded = {c.replaces for c in wanted if c.replaces}
    return [c for c in wanted if c.id not in superseded]


def check_pod(pod: Mapping[str, Any], policy: PodSecurityPolicy = PodSecurityPolicy()) -> list[Violation]:
    """Every violation of the policy's level, each with its field path under `pod.pod_json`."""
    if policy.level is Level.BASELINE and _nothing_baseline_reads(pod):
        return []
    return _check(pod, policy)


# Every field a baseline check reads that can make a violation on its own (`hostUsers` and `os` only relax
# one), where it is read: the pod's spec, each container of every kind, the annotations' AppArmor keys.
BASELINE_SPEC_FIELDS = ("securityContext", "hostNetwork", "hostPID", "hostIPC", "volumes")
BASELINE_CONTAINER_FIELDS = ("securityContext", "ports", *PROBES, "lifecycle")


def _nothing_baseline_reads(pod: Mapping[str, Any]) -> bool:
    """Whether no baseline check can find anything: none of the fields they read is there (absent or null:
    every check reads null as absent). Most pods set none of them: `check_pod` of the throughput bench's pod
    13.0 -> 2.3 us (bench/README.md, helper edge6); a pod with any of them is checked in full.
    tests/unit/test_policy_pod_security.py records what the checks read, so a check reading a new field fails
    there until it is listed here."""
    spec = _obj(pod.get("spec"))
    if any(spec.get(key) is not None for key in BASELINE_SPEC_FIELDS):
        return False
    for kind in CONTAINER_KINDS:
        for c in _items(spec.get(kind)):
            container = _obj(c)
            if any(container.get(key) is not None for key in BASELINE_CONTAINER_FIELDS):
                return False
    annotations = _obj(_obj(pod.get("metadata")).get("annotations"))
    return not any(str(key).startswith(APPARMOR_ANNOTATION) for key in annotations)


def _check(pod: Mapping[str, Any], policy: PodSecurityPolicy) -> list[Violation]:
    view = _Pod.of(pod)
    return [
        Violation(control=control.title, field=field, description=description)
        for control, check in _active_checks(policy)
        for field, description in check(view)
    ]


@functools.lru_cache(maxsize=64)  # a few policies: the tenants' and the open gateway's
def _active_checks(policy: PodSecurityPolicy) -> tuple[tuple[Control, Callable[[_Pod], Found]], ...]:
    """`active_controls` with each control's check, worked out once per policy (a policy is a frozen value)."""
    checks = dict((c.id, check) for c, check in _TABLE)
    return tuple((control, checks[control.id]) for control in active_controls(policy))


def enforce(pod: Mapping[str, Any], policy: PodSecurityPolicy = PodSecurityPolicy()) -> None:
    """InvalidArgument listing every violation, or nothing."""
    violations: Sequence[Violation] = check_pod(pod, policy)
    if violations:
        first = violations[0]
        raise InvalidArgument(
            f"the pod violates the Pod Security Standards ({policy.level}): {len(violations)} problem(s), "
            f"first: {first.field}: {first.description}",
            [v.as_field_violation() for v in violations],
        )
