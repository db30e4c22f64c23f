"""Pod Security Standards: each control, both levels, every container kind, exceptions, all violations at once."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import InvalidArgument
from gateway.policy import pod_security as ps
from gateway.policy.pod_security import CONTROLS, Level, PodSecurityPolicy, active_controls, check_pod, enforce

BASELINE = PodSecurityPolicy()
RESTRICTED = PodSecurityPolicy(level=Level.RESTRICTED)
C0 = "pod.pod_json.spec.containers[0]"
SC = "pod.pod_json.spec.securityContext"

PLAIN: dict[str, Any] = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "main", "image": "python:3.12"}]}}
HARDENED_SC = {
    "allowPrivilegeEscalation": False,
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
    "capabilities": {"drop": ["ALL"]},
}
HARDENED: dict[str, Any] = {
    "metadata": {"name": "p"},
    "spec": {"containers": [{"name": "main", "image": "python:3.12", "securityContext": HARDENED_SC}]},
}


def pod(base: dict[str, Any] = PLAIN, *, spec: dict[str, Any] | None = None, container: dict[str, Any] | None = None,
        sc: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """`base` with spec keys, main-container keys, main-container securityContext keys, metadata keys merged in."""
    p = copy.deepcopy(base)
    p["spec"].update(spec or {})
    main = p["spec"]["containers"][0]
    main.update(container or {})
    if sc is not None:
        main["securityContext"] = {**main.get("securityContext", {}), **sc}
    p["metadata"].update(metadata or {})
    return p


def fields(p: dict[str, Any], policy: PodSecurityPolicy) -> list[str]:
    return [v.field for v in check_pod(p, policy)]


# (case id, pod, the violating fields at baseline: the same fields are violations at restricted too)
BASELINE_CASES = [
    ("host-network", pod(spec={"hostNetwork": True}), ["pod.pod_json.spec.hostNetwork"]),
    ("host-pid", pod(spec={"hostPID": True}), ["pod.pod_json.spec.hostPID"]),
    ("host-ipc", pod(spec={"hostIPC": True}), ["pod.pod_json.spec.hostIPC"]),
    ("host-namespaces-false-ok", pod(spec={"hostNetwork": False, "hostPID": False, "hostIPC": False}), []),
    ("privileged", pod(sc={"privileged": True}), [f"{C0}.securityContext.privileged"]),
    ("privileged-false-ok", pod(sc={"privileged": False}), []),
    ("privileged-init", pod(spec={"initContainers": [{"name": "i", "securityContext": {"privileged": True}}]}),
     ["pod.pod_json.spec.initContainers[0].securityContext.privileged"]),
    ("privileged-ephemeral", pod(spec={"ephemeralContainers": [{"name": "e", "securityContext": {"privileged": True}}]}),
     ["pod.pod_json.spec.ephemeralContainers[0].securityContext.privileged"]),
    ("cap-sys-admin", pod(sc={"capabilities": {"add": ["SYS_ADMIN"]}}), [f"{C0}.securityContext.capabilities.add"]),
    ("cap-net-admin", pod(sc={"capabilities": {"add": ["CHOWN", "NET_ADMIN"]}}),
     [f"{C0}.securityContext.capabilities.add"]),
    ("host-path", pod(spec={"volumes": [{"name": "v", "emptyDir": {}}, {"name": "h", "hostPath": {"path": "/"}}]}),
     ["pod.pod_json.spec.volumes[1].hostPath"]),
    ("host-port", pod(container={"ports": [{"containerPort": 80}, {"containerPort": 81, "hostPort": 8081}]}),
     [f"{C0}.ports[1].hostPort"]),
    ("host-port-zero-ok", pod(container={"ports": [{"containerPort": 80, "hostPort": 0}]}), []),
    ("host-port-init", pod(spec={"initContainers": [{"name": "i", "ports": [{"containerPort": 1, "hostPort": 1}]}]}),
     ["pod.pod_json.spec.initContainers[0].ports[0].hostPort"]),
    ("probe-http-host", pod(container={"livenessProbe": {"httpGet": {"port": 80, "host": "10.0.0.1"}}}),
     [f"{C0}.livenessProbe.httpGet.host"]),
    ("probe-tcp-host", pod(container={"readinessProbe": {"tcpSocket": {"port": 80, "host": "169.254.169.254"}}}),
     [f"{C0}.readinessProbe.tcpSocket.host"]),
    ("probe-startup-host", pod(container={"startupProbe": {"httpGet": {"port": 80, "host": "x"}}}),
     [f"{C0}.startupProbe.httpGet.host"]),
    ("lifecycle-host", pod(container={"lifecycle": {"preStop": {"httpGet": {"port": 80, "host": "x"}}}}),
     [f"{C0}.lifecycle.preStop.httpGet.host"]),
    ("probe-empty-host-ok", pod(container={"livenessProbe": {"httpGet": {"port": 80, "host": ""}}}), []),
    ("apparmor-unconfined", pod(sc={"appArmorProfile": {"type": "Unconfined"}}),
     [f"{C0}.securityContext.appArmorProfile.type"]),
    ("apparmor-pod-unconfined", pod(spec={"securityContext": {"appArmorProfile": {"type": "Unconfined"}}}),
     [f"{SC}.appArmorProfile.type"]),
    ("apparmor-localhost-ok", pod(sc={"appArmorProfile": {"type": "Localhost", "localhostProfile": "k8s"}}), []),
    ("apparmor-annotation", pod(metadata={"annotations": {"container.apparmor.security.beta.kubernetes.io/main": "unconfined"}}),
     ["pod.pod_json.metadata.annotations[container.apparmor.security.beta.kubernetes.io/main]"]),
    ("apparmor-annotation-ok", pod(metadata={"annotations": {"container.apparmor.security.beta.kubernetes.io/main": "localhost/p"}}), []),
    ("selinux-type", pod(sc={"seLinuxOptions": {"type": "spc_t"}}), [f"{C0}.securityContext.seLinuxOptions.type"]),
    ("selinux-user-role", pod(spec={"securityContext": {"seLinuxOptions": {"user": "system_u", "role": "object_r"}}}),
     [f"{SC}.seLinuxOptions.user", f"{SC}.seLinuxOptions.role"]),
    ("selinux-ok", pod(sc={"seLinuxOptions": {"type": "container_init_t", "level": "s0:c123,c456"}}), []),
    ("proc-mount", pod(sc={"procMount": "Unmasked"}), [f"{C0}.securityContext.procMount"]),
    ("proc-mount-default-ok", pod(sc={"procMount": "Default"}), []),
    ("seccomp-unconfined", pod(sc={"seccompProfile": {"type": "Unconfined"}}),
     [f"{C0}.securityContext.seccompProfile.type"]),
    ("seccomp-pod-unconfined", pod(spec={"securityContext": {"seccompProfile": {"type": "Unconfined"}}}),
     [f"{SC}.seccompProfile.type"]),
    ("sysctl-unsafe", pod(spec={"securityContext": {"sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "1"},
                                                                {"name": "kernel.msgmax", "value": "1"}]}}),
     [f"{SC}.sysctls[1].name"]),
    ("sysctl-safe-ok", pod(spec={"securityContext": {"sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "1 2"}]}}), []),
    ("host-process", pod(sc={"windowsOptions": {"hostProcess": True}}), [f"{C0}.securityContext.windowsOptions.hostProcess"]),
    ("host-process-pod", pod(spec={"securityContext": {"windowsOptions": {"hostProcess": True}}}),
     [f"{SC}.windowsOptions.hostProcess"]),
]  # fmt: skip


@pytest.mark.parametrize(("case", "manifest", "expected"), BASELINE_CASES, ids=[c[0] for c in BASELINE_CASES])
def test_baseline_controls(case: str, manifest: dict[str, Any], expected: list[str]) -> None:
    assert fields(manifest, BASELINE) == expected


@pytest.mark.parametrize(("case", "manifest", "expected"), BASELINE_CASES, ids=[c[0] for c in BASELINE_CASES])
def test_restricted_includes_baseline(case: str, manifest: dict[str, Any], expected: list[str]) -> None:
    """A hardened pod with the same change: restricted reports exactly the baseline violations."""
    hardened = copy.deepcopy(manifest)
    hardened["spec"]["securityContext"] = {**manifest["spec"].get("securityContext", {}), "runAsNonRoot": True}
    for kind in ("containers", "initContainers", "ephemeralContainers"):
        for c in hardened["spec"].get(kind, []):
            own = c.get("securityContext", {})
            c["securityContext"] = {
                **HARDENED_SC,
                **own,
                "capabilities": {"drop": ["ALL"], **own.get("capabilities", {})},
            }
    if case.startswith("cap-"):  # restricted allows fewer: both capabilities fail, reported once
        assert fields(hardened, RESTRICTED) == expected
        return
    assert fields(hardened, RESTRICTED) == expected


RESTRICTED_CASES = [
    ("hardened-ok", HARDENED, []),
    ("plain", PLAIN, [f"{C0}.securityContext.allowPrivilegeEscalation", f"{C0}.securityContext.runAsNonRoot",
                      f"{C0}.securityContext.seccompProfile.type", f"{C0}.securityContext.capabilities.drop"]),
    ("escalation-true", pod(HARDENED, sc={"allowPrivilegeEscalation": True}),
     [f"{C0}.securityContext.allowPrivilegeEscalation"]),
    ("non-root-false", pod(HARDENED, sc={"runAsNonRoot": False}), [f"{C0}.securityContext.runAsNonRoot"]),
    ("non-root-at-pod-level-ok", pod(HARDENED, spec={"securityContext": {"runAsNonRoot": True}}, sc={"runAsNonRoot": None}), []),
    ("non-root-pod-false", pod(HARDENED, spec={"securityContext": {"runAsNonRoot": False}}), [f"{SC}.runAsNonRoot"]),
    ("run-as-user-0", pod(HARDENED, sc={"runAsUser": 0}), [f"{C0}.securityContext.runAsUser"]),
    ("run-as-user-pod-0", pod(HARDENED, spec={"securityContext": {"runAsUser": 0}}), [f"{SC}.runAsUser"]),
    ("run-as-user-1000-ok", pod(HARDENED, sc={"runAsUser": 1000}), []),
    ("seccomp-pod-level-ok", pod(HARDENED, spec={"securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "p"}}},
                                 sc={"seccompProfile": None}), []),
    ("seccomp-missing", pod(HARDENED, sc={"seccompProfile": None}), [f"{C0}.securityContext.seccompProfile.type"]),
    ("seccomp-unconfined-once", pod(HARDENED, sc={"seccompProfile": {"type": "Unconfined"}}),
     [f"{C0}.securityContext.seccompProfile.type"]),
    ("drop-missing-all", pod(HARDENED, sc={"capabilities": {"drop": ["NET_RAW"]}}), [f"{C0}.securityContext.capabilities.drop"]),
    ("add-net-bind-ok", pod(HARDENED, sc={"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}), []),
    ("add-chown", pod(HARDENED, sc={"capabilities": {"drop": ["ALL"], "add": ["CHOWN"]}}), [f"{C0}.securityContext.capabilities.add"]),
    ("volume-nfs", pod(HARDENED, spec={"volumes": [{"name": "n", "nfs": {"server": "s", "path": "/"}}]}),
     ["pod.pod_json.spec.volumes[0].nfs"]),
    ("volume-host-path-once", pod(HARDENED, spec={"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}),
     ["pod.pod_json.spec.volumes[0].hostPath"]),
    ("volumes-core-ok", pod(HARDENED, spec={"volumes": [{"name": t, t: {}} for t in ("configMap", "csi", "downwardAPI", "emptyDir",
                                                                                   "ephemeral", "persistentVolumeClaim", "projected", "secret")]}), []),
    ("volume-no-source-ok", pod(HARDENED, spec={"volumes": [{"name": "defaults-to-emptyDir"}]}), []),
    ("init-not-hardened", pod(HARDENED, spec={"initContainers": [{"name": "i", "securityContext": HARDENED_SC | {"allowPrivilegeEscalation": True}}]}),
     ["pod.pod_json.spec.initContainers[0].securityContext.allowPrivilegeEscalation"]),
    ("ephemeral-not-hardened", pod(HARDENED, spec={"ephemeralContainers": [{"name": "e"}]}),
     [f"pod.pod_json.spec.ephemeralContainers[0].securityContext.{f}"
      for f in ("allowPrivilegeEscalation", "runAsNonRoot", "seccompProfile.type", "capabilities.drop")]),
    ("windows-linux-only-controls", pod(PLAIN, spec={"os": {"name": "windows"}, "securityContext": {"runAsNonRoot": True}}), []),
    ("user-namespace-may-run-as-root", pod(HARDENED, spec={"hostUsers": False}, sc={"runAsNonRoot": False, "runAsUser": 0}), []),
    ("user-namespace-still-hardened", pod(PLAIN, spec={"hostUsers": False}),
     [f"{C0}.securityContext.allowPrivilegeEscalation", f"{C0}.securityContext.seccompProfile.type",
      f"{C0}.securityContext.capabilities.drop"]),
    ("proc-mount-user-namespace", pod(HARDENED, spec={"hostUsers": False}, sc={"procMount": "Unmasked"}),
     [f"{C0}.securityContext.procMount"]),
]  # fmt: skip


@pytest.mark.parametrize(("case", "manifest", "expected"), RESTRICTED_CASES, ids=[c[0] for c in RESTRICTED_CASES])
def test_restricted_controls(case: str, manifest: dict[str, Any], expected: list[str]) -> None:
    cleaned = copy.deepcopy(manifest)
    for c in cleaned["spec"]["containers"]:
        c["securityContext"] = {k: v for k, v in c.get("securityContext", {}).items() if v is not None}
    assert fields(cleaned, RESTRICTED) == expected


def test_restricted_checks_are_not_baseline() -> None:
    assert fields(PLAIN, BASELINE) == []


def test_baseline_relaxes_proc_mount_in_a_user_namespace() -> None:
    assert fields(pod(spec={"hostUsers": False}, sc={"procMount": "Unmasked"}), BASELINE) == []


def test_every_violation_at_once_names_its_control() -> None:
    bad = pod(
        spec={"hostNetwork": True, "volumes": [{"name": "h", "hostPath": {"path": "/"}}]}, sc={"privileged": True}
    )
    violations = check_pod(bad, BASELINE)
    assert [(v.control, v.field) for v in violations] == [
        ("Host Namespaces", "pod.pod_json.spec.hostNetwork"),
        ("Privileged Containers", f"{C0}.securityContext.privileged"),
        ("HostPath Volumes", "pod.pod_json.spec.volumes[0].hostPath"),
    ]
    with pytest.raises(InvalidArgument) as e:
        enforce(bad, BASELINE)
    assert [v.field for v in e.value.violations] == [v.field for v in violations]
    assert "Pod Security Standards: Privileged Containers" in e.value.violations[1].description


@pytest.mark.parametrize(
    ("exceptions", "manifest", "expected"),
    [
        ({"privileged"}, pod(sc={"privileged": True}), []),
        ({"host-path-volumes"}, pod(spec={"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}), []),
        (
            {"host-namespaces"},
            pod(spec={"hostPID": True}, sc={"privileged": True}),
            [f"{C0}.securityContext.privileged"],
        ),
        ({"sysctls"}, pod(spec={"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}}), []),
    ],
)
def test_baseline_exceptions(exceptions: set[str], manifest: dict[str, Any], expected: list[str]) -> None:
    assert fields(manifest, PodSecurityPolicy(exceptions=frozenset(exceptions))) == expected


@pytest.mark.parametrize(
    ("exceptions", "manifest", "expected"),
    [
        # exempt from restricted volume types: hostPath is still forbidden by the baseline control
        ({"volume-types"}, pod(HARDENED, spec={"volumes": [{"name": "n", "nfs": {}}, {"name": "h", "hostPath": {}}]}),
         ["pod.pod_json.spec.volumes[1].hostPath"]),
        ({"volume-types", "host-path-volumes"}, pod(HARDENED, spec={"volumes": [{"name": "h", "hostPath": {}}]}), []),
        ({"capabilities-restricted"}, pod(HARDENED, sc={"capabilities": {"add": ["CHOWN"]}}), []),
        ({"capabilities-restricted"}, pod(HARDENED, sc={"capabilities": {"add": ["SYS_ADMIN"]}}),
         [f"{C0}.securityContext.capabilities.add"]),
        ({"seccomp-restricted"}, pod(HARDENED, sc={"seccompProfile": {"type": "Unconfined"}}),
         [f"{C0}.securityContext.seccompProfile.type"]),
        ({"running-as-non-root"}, pod(HARDENED, sc={"runAsNonRoot": False}), []),
        ({"privilege-escalation"}, pod(HARDENED, sc={"allowPrivilegeEscalation": True}), []),
    ],
)  # fmt: skip
def test_restricted_exceptions(exceptions: set[str], manifest: dict[str, Any], expected: list[str]) -> None:
    assert fields(manifest, PodSecurityPolicy(level=Level.RESTRICTED, exceptions=frozenset(exceptions))) == expected


def test_unknown_exception_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown Pod Security control.*'no-such'.*host-namespaces"):
        PodSecurityPolicy(exceptions=frozenset({"no-such"}))


def test_active_controls_per_level() -> None:
    baseline = {c.id for c in active_controls(BASELINE)}
    restricted = {c.id for c in active_controls(RESTRICTED)}
    assert "volume-types" not in baseline and "host-path-volumes" in baseline
    assert "host-path-volumes" not in restricted and "volume-types" in restricted
    assert restricted | {"host-path-volumes", "seccomp", "capabilities", "proc-mount"} == set(CONTROLS)


@pytest.mark.parametrize(
    "manifest",
    [{}, {"spec": None}, {"spec": {"containers": "x"}}, {"spec": {"containers": [None, 3]}},
     {"spec": {"volumes": [None], "securityContext": []}}, {"metadata": {"annotations": None}}],
)  # fmt: skip
def test_malformed_manifests_do_not_crash(manifest: dict[str, Any]) -> None:
    assert check_pod(manifest, BASELINE) == []


# --- the baseline's shortcut for a pod that sets none of the fields its checks read ----------------------------


class _Reads(dict[str, Any]):
    """A manifest object that records which of its keys are read."""

    def __init__(self, seen: set[str], items: dict[str, Any]) -> None:
        super().__init__(items)
        self.seen = seen

    def get(self, key: str, default: Any = None) -> Any:
        self.seen.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self.seen.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.seen.add(str(key))
        return super().__contains__(key)


def test_the_baseline_checks_read_no_field_the_shortcut_does_not_look_at() -> None:
    """Every check run in full on a pod with every container kind: the keys each level of the manifest is
    asked for. A check that starts reading another field fails here until `_nothing_baseline_reads` looks
    at it too (else a pod setting only that field would skip the check)."""
    top: set[str] = set()
    spec_keys: set[str] = set()
    container_keys: set[str] = set()
    metadata_keys: set[str] = set()
    containers = {kind: [_Reads(container_keys, {"name": kind})] for kind in ps.CONTAINER_KINDS}
    manifest = _Reads(
        top,
        {
            "metadata": _Reads(metadata_keys, {"annotations": {"a": "b"}}),
            "spec": _Reads(spec_keys, dict(containers)),
        },
    )
    for policy in (BASELINE, PodSecurityPolicy(exceptions=frozenset({"privileged"}))):
        assert ps._check(manifest, policy) == []
    assert top <= {"spec", "metadata"}
    assert metadata_keys <= {"annotations"}
    assert spec_keys - set(ps.CONTAINER_KINDS) <= {*ps.BASELINE_SPEC_FIELDS, "hostUsers", "os"}  # two relax only
    assert container_keys <= set(ps.BASELINE_CONTAINER_FIELDS)


def _fields_with(pool: list[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(pool), st.sampled_from(VALUES), max_size=3)


# Values for any of the fields: absent-like, malformed, and each kind of violation the baseline names.
VALUES: list[Any] = [
    None, True, False, 0, 8080, "", "x", [], {}, [None],
    {"privileged": True}, {"capabilities": {"add": ["SYS_ADMIN"]}}, {"procMount": "Unmasked"},
    {"seccompProfile": {"type": "Unconfined"}}, {"appArmorProfile": {"type": "Unconfined"}},
    {"seLinuxOptions": {"user": "u"}}, {"windowsOptions": {"hostProcess": True}},
    {"sysctls": [{"name": "kernel.msgmax"}]}, [{"name": "h", "hostPath": {"path": "/"}}],
    [{"containerPort": 1, "hostPort": 1}], {"httpGet": {"port": 1, "host": "h"}},
    {"preStop": {"tcpSocket": {"port": 1, "host": "h"}}},
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    spec=_fields_with(
        ["securityContext", "hostNetwork", "hostPID", "hostIPC", "volumes", "hostUsers", "os", "tolerations"]
    ),
    container=_fields_with(
        ["securityContext", "ports", "livenessProbe", "readinessProbe", "startupProbe", "lifecycle", "image", "env"]
    ),
    kind=st.sampled_from(ps.CONTAINER_KINDS),
    annotation=st.sampled_from([None, "a", f"{ps.APPARMOR_ANNOTATION}main", "container.apparmor"]),
    value=st.sampled_from(["unconfined", "runtime/default", "localhost/p"]),
    exceptions=st.sets(st.sampled_from([c.id for c in active_controls(BASELINE)]), max_size=2),
)
def test_the_baseline_with_its_shortcut_finds_what_the_full_checks_find(
    spec: dict[str, Any], container: dict[str, Any], kind: str, annotation: str | None, value: str,
    exceptions: set[str],
) -> None:  # fmt: skip
    manifest = pod(spec={**spec, kind: [{"name": "c", **container}]})
    if annotation is not None:
        manifest["metadata"]["annotations"] = {annotation: value}
    policy = PodSecurityPolicy(exceptions=frozenset(exceptions))
    assert check_pod(manifest, policy) == ps._check(manifest, policy)


def test_the_shortcut_is_taken_only_where_nothing_is_set() -> None:
    assert ps._nothing_baseline_reads(PLAIN)
    assert ps._nothing_baseline_reads(pod(spec={"volumes": None}, container={"ports": None}))  # null is absent
    assert not ps._nothing_baseline_reads(pod(spec={"volumes": []}))
    assert not ps._nothing_baseline_reads(pod(container={"lifecycle": {}}))
    assert not ps._nothing_baseline_reads(pod(metadata={"annotations": {f"{ps.APPARMOR_ANNOTATION}main": "x"}}))
