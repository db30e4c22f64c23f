"""deploy/: every Kustomize target renders with the kubectl from PyPI, every object validates against the
Kubernetes schemas of kubectl's version, the security settings hold, and what the manifests feed the gateway
(cluster files, tenants, flags, RBAC for kubeconfig issuing) is what the gateway accepts."""

from __future__ import annotations

import argparse
import functools
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway import cli
from gateway.clusters import files
from gateway.credentials.issuing import ROLE_RULES
from gateway.settings import Settings, load_settings
from tests.conftest import BIN, ROOT, clean_env

DEPLOY = ROOT / "deploy"
TARGETS = ["base", "overlays/eks", "overlays/gke", "overlays/aks"]
GATEWAY_UID = 10001

Doc = dict[str, Any]


@functools.cache
def kubernetes_version() -> str:
    """The schema version matching the kubectl that renders (its minor, patch 0)."""
    out = subprocess.run(
        [str(BIN / "kubectl"), "version", "--client", "-o", "json"],
        env=clean_env(), capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    client = json.loads(out.stdout)["clientVersion"]
    return f"{client['major']}.{client['minor'].rstrip('+')}.0"


@functools.cache
def render(target: str) -> tuple[Doc, ...]:
    out = subprocess.run(
        [str(BIN / "kubectl"), "kustomize", str(DEPLOY / target)],
        env=clean_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def one(docs: tuple[Doc, ...], kind: str, name: str = "podgate") -> Doc:
    """The object of that kind and name (a generated ConfigMap's name carries a content hash suffix)."""
    found = [d for d in docs if d["kind"] == kind and re.fullmatch(rf"{name}(-[a-z0-9]{{10}})?", d["metadata"]["name"])]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod_spec(docs: tuple[Doc, ...]) -> Doc:
    spec: Doc = one(docs, "Deployment")["spec"]["template"]["spec"]
    return spec


def gateway_container(docs: tuple[Doc, ...]) -> Doc:
    (container,) = pod_spec(docs)["containers"]
    return dict(container)


@pytest.mark.parametrize("target", TARGETS)
def test_renders_and_validates_against_the_kubernetes_schemas(target: str) -> None:
    docs = render(target)
    kinds = {d["kind"] for d in docs}
    assert {
        "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ConfigMap",
        "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy",
    } <= kinds  # fmt: skip
    assert "Secret" not in kinds, "Secrets are referenced, never shipped"
    for doc in docs:
        kubernetes_validate.validate(doc, kubernetes_version(), strict=True)


def test_an_invalid_object_is_caught_by_the_schema_check() -> None:
    broken = json.loads(json.dumps(one(render("base"), "Deployment")))
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = "yes"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_version(), strict=True)


@pytest.mark.parametrize("target", TARGETS)
def test_the_gateway_runs_locked_down(target: str) -> None:
    docs = render(target)
    spec = pod_spec(docs)
    pod_security = spec["securityContext"]
    assert pod_security["runAsNonRoot"] is True and pod_security["runAsUser"] == GATEWAY_UID
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
    container = gateway_container(docs)
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == GATEWAY_UID
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security.get("privileged", False) is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert "add" not in security["capabilities"]
    assert not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert not any("hostPath" in v for v in volumes.values())
    writable = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"] if not m.get("readOnly")}
    assert set(writable) == {"/var/lib/podgate", "/home/podgate", "/tmp"}
    assert "emptyDir" in writable["/var/lib/podgate"]  # the store is PostgreSQL: no volume a replica owns
    assert "emptyDir" in writable["/home/podgate"] and "emptyDir" in writable["/tmp"]
    assert volumes["tls"]["secret"]["secretName"] == "podgate-tls"
    namespace = one(docs, "Namespace", "podgate")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("target", TARGETS)
def test_probes_use_grpc_health_and_ports_agree(target: str, tmp_path: Path) -> None:
    docs = render(target)
    container = gateway_container(docs)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["grpc"]["port"] == ports["health"], probe
    settings = load_config_map(docs, tmp_path)
    assert settings.server.listen.endswith(f":{ports['grpc']}")
    assert settings.server.health_listen.endswith(f":{ports['health']}")
    assert settings.metrics.listen.endswith(f":{ports['metrics']}")
    assert settings.logging.format == "json"
    service = one(docs, "Service")
    assert {p["targetPort"] for p in service["spec"]["ports"]} == {"grpc", "metrics"}
    policy = one(docs, "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress"]
    assert sorted(p["port"] for rule in policy["ingress"] for p in rule["ports"]) == ["grpc", "metrics"]
    assert all(rule["from"] and all("namespaceSelector" in f for f in rule["from"]) for rule in policy["ingress"])
    selector = one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]
    assert selector.items() <= one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"].items()


def test_deployment_flags_are_podgate_serve_flags() -> None:
    args = gateway_container(render("base"))["args"]
    assert args[0] == "serve"
    known = {opt for action in _serve_parser()._actions for opt in action.option_strings}
    used = {arg.split("=", 1)[0] for arg in args[1:]}
    assert used <= known, f"not flags of podgate serve: {sorted(used - known)}"
    _serve_parser().parse_args(args[1:])  # the values parse too (choices such as --log-format)


def _serve_parser() -> argparse.ArgumentParser:
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser: argparse.ArgumentParser = sub.choices["serve"]
    return parser


@pytest.mark.parametrize(
    ("target", "annotations", "pod_labels"),
    [
        ("overlays/eks", {"eks.amazonaws.com/role-arn": r"arn:aws:iam::\d{12}:role/.+"}, {}),
        ("overlays/gke", {"iam.gke.io/gcp-service-account": r".+@.+\.iam\.gserviceaccount\.com"}, {}),
        (
            "overlays/aks",
            {"azure.workload.identity/client-id": r"[0-9a-f-]{36}"},
            {"azure.workload.identity/use": "true"},
        ),
    ],
)
def test_overlays_bind_the_cloud_workload_identity(
    target: str, annotations: dict[str, str], pod_labels: dict[str, str]
) -> None:
    docs = render(target)
    account = one(docs, "ServiceAccount")["metadata"].get("annotations", {})
    for key, pattern in annotations.items():
        assert re.fullmatch(pattern, account.get(key, "")), (key, account)
    labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert pod_labels.items() <= labels.items()
    assert one(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "podgate"
    others = {"eks.amazonaws.com/role-arn", "iam.gke.io/gcp-service-account", "azure.workload.identity/client-id"}
    assert not (others - annotations.keys()) & account.keys(), "one cloud's identity per overlay"


def _cluster_files(docs: tuple[Doc, ...]) -> dict[str, str]:
    data: dict[str, str] = one(docs, "ConfigMap", "podgate-clusters")["data"]
    return data


@pytest.mark.parametrize(
    ("target", "providers"),
    [
        ("base", {"in-cluster"}),
        ("overlays/eks", {"in-cluster", "eks"}),
        ("overlays/gke", {"in-cluster", "gke"}),
        ("overlays/aks", {"in-cluster", "aks"}),
    ],
)
def test_cluster_files_load(target: str, providers: set[str]) -> None:
    loaded = [
        files.parse_document(yaml.safe_load(text), source=name) for name, text in _cluster_files(render(target)).items()
    ]
    assert all(result.ok for result in loaded), [e for result in loaded for e in result.errors]
    assert {c.provider for result in loaded for c in result.clusters} == providers


def mounts(docs: tuple[Doc, ...]) -> dict[str, Doc]:
    """Mount path -> volume of the gateway container."""
    volumes = {v["name"]: v for v in pod_spec(docs)["volumes"]}
    return {m["mountPath"]: volumes[m["name"]] for m in gateway_container(docs)["volumeMounts"]}


def load_config_map(docs: tuple[Doc, ...], tmp_path: Path) -> Settings:
    """The gateway's own loader reads the rendered config ConfigMap, as the pod would see it mounted."""
    (flag,) = [a for a in gateway_container(docs)["args"] if a.startswith("--config=")]
    path = PurePosixPath(flag.removeprefix("--config="))
    assert (
        mounts(docs)[str(path.parent)]["configMap"]["name"]
        == one(docs, "ConfigMap", "podgate-config")["metadata"]["name"]
    )
    for name, text in one(docs, "ConfigMap", "podgate-config")["data"].items():
        (tmp_path / name).write_text(text)
    return load_settings(tmp_path / path.name, env={})


def test_the_config_loads_and_names_what_is_mounted(tmp_path: Path) -> None:
    docs = render("base")
    settings = load_config_map(docs, tmp_path)
    mounted = mounts(docs)

    def volume_of(path: Path | None) -> Doc:
        assert path is not None
        return next(v for m, v in mounted.items() if path.is_relative_to(m))

    assert settings.tls.enabled and not settings.server.listen.startswith("127.")
    assert settings.tls.client_ca_file is None, "OIDC callers carry no client certificate"
    for tls_file in (settings.tls.cert_file, settings.tls.key_file):
        assert volume_of(tls_file)["secret"]["secretName"] == "podgate-tls"
    (clusters,) = settings.clusters.files
    assert volume_of(clusters)["configMap"]["name"] == one(docs, "ConfigMap", "podgate-clusters")["metadata"]["name"]
    assert "emptyDir" in volume_of(settings.server.state_dir)  # per-replica files; the store is PostgreSQL
    assert settings.tenants_file is not None and set(settings.tenants.tenants) == {"platform", "data-eng"}
    assert settings.authentication.oidc is not None and settings.authentication.static_tokens == ()
    assert settings.audit.sink == "-", "the root filesystem is read-only: audit lines go to standard output"


def _rules(docs: tuple[Doc, ...]) -> Iterator[tuple[str, Doc]]:
    for doc in docs:
        if doc["kind"] in ("Role", "ClusterRole"):
            for rule in doc["rules"]:
                yield doc["kind"], rule


def _allowed(docs: tuple[Doc, ...], namespace: str, group: str, resource: str, verb: str) -> bool:
    """What the gateway's ServiceAccount may do in namespace, from the rendered roles and bindings."""
    bound = {
        (d["roleRef"]["kind"], d["roleRef"]["name"], d["metadata"].get("namespace", ""))
        for d in docs
        if d["kind"] in ("RoleBinding", "ClusterRoleBinding")
        and {"kind": "ServiceAccount", "name": "podgate", "namespace": "podgate"} in d["subjects"]
    }
    for doc in docs:
        if doc["kind"] not in ("Role", "ClusterRole"):
            continue
        scope = doc["metadata"].get("namespace", "")
        if (doc["kind"], doc["metadata"]["name"], scope) not in bound or (scope and scope != namespace):
            continue
        for rule in doc["rules"]:
            if group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]:
                return True
    return False


def test_rbac_is_least_privilege() -> None:
    docs = render("base")
    for kind, rule in _rules(docs):
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
        assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), rule
        if kind == "ClusterRole":
            assert set(rule["verbs"]) <= {"get", "list", "watch"}, f"cluster-wide writes: {rule}"
            assert "secrets" not in rule["resources"]
    for verb in ("update", "patch"):
        assert not _allowed(docs, "podgate-jobs", "", "pods", verb)
    assert not _allowed(docs, "default", "", "pods", "create"), "dispatch only into allowed namespaces"
    assert not _allowed(docs, "podgate-jobs", "", "secrets", "list")


@pytest.mark.parametrize(("group", "resource", "verb"), [
    ("", "nodes", "watch"),
    ("", "pods", "watch"),
    ("", "events", "watch"),
    ("", "pods", "create"),
    ("", "pods", "delete"),
    ("", "pods/log", "get"),
    ("", "pods/exec", "create"),
    ("", "serviceaccounts", "create"),
    ("", "serviceaccounts", "update"),
    ("", "serviceaccounts/token", "create"),
    ("", "secrets", "create"),
    ("", "secrets", "delete"),
    ("rbac.authorization.k8s.io", "roles", "create"),
    ("rbac.authorization.k8s.io", "rolebindings", "delete"),
])  # fmt: skip
def test_rbac_grants_what_the_gateway_does(group: str, resource: str, verb: str) -> None:
    assert _allowed(render("base"), "podgate-jobs", group, resource, verb)


def test_rbac_holds_every_permission_an_issued_kubeconfig_grants() -> None:
    """Kubernetes refuses a Role granting more than its creator holds: the gateway must hold all of it."""
    docs = render("base")
    for rules in ROLE_RULES.values():
        for rule in rules:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        assert _allowed(docs, "podgate-jobs", group, resource, verb), (group, resource, verb)


def test_the_in_cluster_target_may_dispatch_into_its_allowed_namespaces() -> None:
    docs = render("base")
    (home,) = files.parse_document(yaml.safe_load(_cluster_files(docs)["home.yaml"]), source="home.yaml").clusters
    for namespace in home.allowed_namespaces:
        assert _allowed(docs, namespace, "", "pods", "create"), namespace
        assert one(docs, "Namespace", namespace)


@pytest.mark.parametrize("target", TARGETS)
def test_replicas_share_postgresql_and_survive_a_node_or_a_drain(target: str, tmp_path: Path) -> None:
    """Issue 13: 3 replicas, the database URL from a Secret, a PDB that keeps 2 serving, spread over nodes,
    ready only when the health listener says so."""
    docs = render(target)
    deployment = one(docs, "Deployment")["spec"]
    assert deployment["replicas"] == 3
    assert deployment["strategy"]["type"] == "RollingUpdate"
    assert deployment["strategy"]["rollingUpdate"]["maxUnavailable"] == 1
    env = {e["name"]: e for e in gateway_container(docs).get("env", [])}
    assert env["PODGATE_DATABASE_URL"]["valueFrom"] == {"secretKeyRef": {"name": "podgate-database", "key": "url"}}
    assert "value" not in env["PODGATE_DATABASE_URL"]
    settings = load_config_map(docs, tmp_path)
    assert not settings.database.url  # never in the ConfigMap: the Secret sets it
    assert "PersistentVolumeClaim" not in {d["kind"] for d in docs}
    budget = one(docs, "PodDisruptionBudget")["spec"]
    assert budget.get("maxUnavailable") == 1 or budget.get("minAvailable") == 2
    (term,) = pod_spec(docs)["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"].items() <= labels.items()
    ports = {p["name"]: p["containerPort"] for p in gateway_container(docs)["ports"]}
    assert gateway_container(docs)["readinessProbe"]["grpc"]["port"] == ports["health"]
    headless = one(docs, "Service", "podgate-headless")["spec"]  # dns:///podgate-headless... lists the replicas
    assert headless["clusterIP"] == "None" and headless["selector"].items() <= labels.items()
    assert [p["targetPort"] for p in headless["ports"]] == ["grpc"]
