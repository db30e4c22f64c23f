"""Cluster registration files: parsing, per-cluster errors, duplicates, secrets refused, references resolved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.clusters.files import (
    ClusterFileError,
    LoadResult,
    check_credentials,
    check_spec,
    load_files,
    parse_document,
    parse_taint,
    resolve,
)
from gateway.domain import ClusterSpec, CredentialsRef, Taint, TaintEffect
from gateway.errors import InvalidArgument

ROOT = Path(__file__).resolve().parents[2]


def doc(*clusters: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "podgate.io/v1", "kind": "ClusterList", "clusters": list(clusters)}


def entry(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "c1", "provider": "sim", "region": "eu-west-1", "credentials": {"sim": {}}}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def test_local_yaml_loads() -> None:
    result = load_files([ROOT / "clusters" / "local.yaml"], check=None)
    assert result.ok
    assert [s.name for s in result.clusters] == ["local-eu-gpu", "local-eu-cpu", "local-us-gpu"]
    eu = result.clusters[0]
    assert eu == ClusterSpec(
        name="local-eu-gpu",
        provider="sim",
        credentials=CredentialsRef(source="sim"),
        region="eu-west-1",
        zone="eu-west-1a",
        labels={"env": "local", "tier": "dev", "accelerator": "nvidia"},
        allowed_namespaces=frozenset({"default", "airflow"}),
        max_concurrent_pods=50,
        weight=100,
        source=str(ROOT / "clusters" / "local.yaml"),
    )


@pytest.mark.parametrize(
    ("fields", "check"),
    [
        (
            {},
            lambda s: s.allowed_namespaces == frozenset({"default"}) and s.weight == 100 and s.max_concurrent_pods == 0,
        ),
        ({"allowedNamespaces": []}, lambda s: s.allowed_namespaces == frozenset({"default"})),
        ({"allowedNamespaces": ["*"]}, lambda s: s.allowed_namespaces == frozenset({"*"})),
        (
            {"taints": ["gpu=scarce:NoSelect", "spot:PreferNoSelect"]},
            lambda s: (
                s.taints == (Taint(key="gpu", value="scarce"), Taint(key="spot", effect=TaintEffect.PREFER_NO_SELECT))
            ),
        ),
        (
            {"taints": [{"key": "gpu", "value": "scarce", "effect": "NoSelect"}, {"key": "x"}]},
            lambda s: s.taints == (Taint(key="gpu", value="scarce"), Taint(key="x")),
        ),
        (
            {"provider": "kubeconfig", "credentials": {"kubeconfig": {"path": "~/.kube/config", "context": "prod"}}},
            lambda s: (
                s.credentials
                == CredentialsRef(source="kubeconfig", params={"path": "~/.kube/config", "context": "prod"})
            ),
        ),
        (
            {"provider": "kubeconfig", "credentials": {"kubeconfig": {"envVar": "PROD_KUBECONFIG"}}},
            lambda s: s.credentials.params == {"envVar": "PROD_KUBECONFIG"},
        ),
        (
            {"provider": "in-cluster", "credentials": {"inCluster": {"tokenDir": "/var/run/t"}}},
            lambda s: s.credentials == CredentialsRef(source="in-cluster", params={"tokenDir": "/var/run/t"}),
        ),
        (
            {"provider": "in-cluster", "credentials": ...},
            lambda s: s.credentials == CredentialsRef(source="in-cluster"),
        ),
        ({"credentials": ...}, lambda s: s.credentials == CredentialsRef(source="sim")),
        ({"credentials": {"sim": None}}, lambda s: s.credentials == CredentialsRef(source="sim")),
        (
            {
                "provider": "eks",
                "credentials": {
                    "eks": {
                        "clusterName": "prod",
                        "region": "eu-west-1",
                        "roleArn": "arn:aws:iam::1:role/x",
                        "profile": "p",
                        "eksEndpointUrl": "http://127.0.0.1:1",
                        "stsEndpointUrl": "http://127.0.0.1:2",
                    }
                },
            },
            lambda s: s.credentials.source == "eks" and len(s.credentials.params) == 6,
        ),
        (
            {
                "provider": "gke",
                "credentials": {
                    "gke": {"project": "p", "location": "europe-west1", "clusterName": "c", "keyFile": "/k.json"}
                },
            },
            lambda s: s.credentials.source == "gke",
        ),
        (
            {
                "provider": "aks",
                "credentials": {
                    "aks": {
                        "subscriptionId": "s",
                        "resourceGroup": "rg",
                        "clusterName": "c",
                        "tenantId": "t",
                        "clientId": "i",
                        "clientSecretEnv": "AKS_SECRET",
                    }
                },
            },
            lambda s: s.credentials.params["clientSecretEnv"] == "AKS_SECRET",
        ),
        ({"weight": 1}, lambda s: s.weight == 1),
        ({"weight": 1000, "maxConcurrentPods": 7}, lambda s: (s.weight, s.max_concurrent_pods) == (1000, 7)),
        (
            {"labels": {"example.com/team": "ml", "gpu": "nvidia-a100"}},
            lambda s: s.labels == {"example.com/team": "ml", "gpu": "nvidia-a100"},
        ),
        ({"sim": {"nodes": [{"name": "n1"}]}}, lambda s: s.name == "c1"),
        ({"issuedServer": "https://k8s.example.com"}, lambda s: s.issued_server == "https://k8s.example.com"),
        (
            {"issuedServer": "https://rancher.example.com:8443/k8s/clusters/c-m-42"},  # a path, as Rancher's proxy
            lambda s: s.issued_server.endswith("/k8s/clusters/c-m-42"),
        ),
        ({}, lambda s: s.issued_server == ""),
    ],
)
def test_valid_entries(fields: dict[str, Any], check: Any) -> None:
    result = parse_document(doc(entry(**fields)), source="f.yaml")
    assert result.errors == ()
    assert check(result.clusters[0])
    assert result.clusters[0].source == "f.yaml"


def expected_label(fields: dict[str, Any]) -> str:
    """Errors name the cluster, or its position when it has no usable name."""
    if "name" not in fields:
        return "c1"
    name = fields["name"]
    return name if isinstance(name, str) and name else "#0"


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"name": "Bad_Name"}, "name", "is not a DNS-1123 label"),
        ({"name": ...}, "name", "required"),
        ({"name": 5}, "name", "must be a string, got int 5 (quote it in YAML)"),
        (
            {"provider": "openshift"},
            "provider",
            "unknown provider 'openshift'; one of aks, eks, gke, in-cluster, kubeconfig, sim",
        ),
        ({"region": ...}, "region", "required"),
        ({"region": ""}, "region", "required: the cluster's region"),
        ({"zone": "eu west"}, "zone", "label value 'eu west'"),
        ({"labels": {"bad key": "x"}}, "labels[bad key]", "label key 'bad key'"),
        ({"labels": {"tier": "not ok"}}, "labels[tier]", "label value 'not ok'"),
        ({"labels": {"gpu": True}}, "labels[gpu]", "keys and values must be strings, got True"),
        ({"labels": ["a"]}, "labels", "must be a mapping"),
        ({"taints": ["gpu=scarce"]}, "taints[0]", "is not key=value:Effect or key:Effect"),
        (
            {"taints": ["gpu=scarce:NoSchedule"]},
            "taints[0]",
            "taint effect 'NoSchedule' must be NoSelect or PreferNoSelect",
        ),
        (
            {"taints": [{"key": "bad key", "effect": "NoSelect"}]},
            "taints[0]",
            "taint bad key:NoSelect: label key 'bad key'",
        ),
        ({"taints": [5]}, "taints[0]", "must be a string key=value:Effect or a mapping"),
        ({"taints": "gpu:NoSelect"}, "taints", "must be a list"),
        ({"allowedNamespaces": ["Team"]}, "allowedNamespaces", "namespace 'Team' is not a DNS-1123 label"),
        ({"allowedNamespaces": "default"}, "allowedNamespaces", "must be a list of namespace names"),
        ({"maxConcurrentPods": -1}, "maxConcurrentPods", "must be 0 (unlimited) or more"),
        ({"maxConcurrentPods": "ten"}, "maxConcurrentPods", "must be an integer"),
        ({"weight": 0}, "weight", "must be between 1 and 1000, got 0"),
        ({"weight": 1001}, "weight", "must be between 1 and 1000"),
        ({"weight": True}, "weight", "must be an integer"),
        ({"regoin": "eu"}, "regoin", "unknown field; did you mean 'region'?"),
        ({"provider": "eks", "credentials": ...}, "credentials", "must be a mapping with exactly one source"),
        ({"credentials": {"sim": {}, "kubeconfig": {}}}, "credentials", "exactly one source"),
        ({"credentials": {"vault": {"path": "x"}}}, "credentials", "unknown credentials source 'vault'"),
        ({"credentials": {"kubeconfig": "path"}}, "credentials.kubeconfig", "must be a mapping of parameters"),
        (
            {"credentials": {"kubeconfig": {"context": "x"}}},
            "credentials.kubeconfig",
            "need exactly one of path or envVar",
        ),
        (
            {"credentials": {"kubeconfig": {"path": "a", "envVar": "B"}}},
            "credentials.kubeconfig",
            "need exactly one of path or envVar",
        ),
        (
            {"credentials": {"kubeconfig": {"envVar": "not a var name"}}},
            "credentials.kubeconfig.envVar",
            "must name an environment variable",
        ),
        ({"credentials": {"kubeconfig": {"path": 5}}}, "credentials.kubeconfig.path", "must be a string, got int"),
        (
            {"credentials": {"kubeconfig": {"path": "a", "server": "https://x"}}},
            "credentials.kubeconfig.server",
            "unknown kubeconfig credentials key; allowed: context, envVar, path",
        ),
        ({"credentials": {"eks": {"clusterName": "c"}}}, "credentials.eks.region", "required for eks credentials"),
        ({"credentials": {"gke": {"project": "p"}}}, "credentials.gke.location", "required for gke credentials"),
        (
            {"credentials": {"eks": {"clusterName": "c", "region": "\t "}}},
            "credentials.eks.region",
            "required for eks credentials",
        ),
        (
            {"credentials": {"aks": {"clientSecretEnv": "s3cr3t-value-with-dashes"}}},
            "credentials.aks.clientSecretEnv",
            "must name an environment variable",
        ),
        ({"issuedServer": "http://k8s.example.com"}, "issuedServer", "must be an https URL of the API server"),
        ({"issuedServer": "k8s.example.com:6443"}, "issuedServer", "must be an https URL"),
        ({"issuedServer": "https://k8s.example.com/?x=1"}, "issuedServer", "must be an https URL"),
        ({"issuedServer": "https://user@k8s.example.com"}, "issuedServer", "must be an https URL"),
        ({"issuedServer": "https://k8s.example.com:99999"}, "issuedServer", "is not a URL"),
        ({"issuedServer": "https://" + "a" * 2048}, "issuedServer", "at most 2048 characters"),
        ({"issuedServer": 6443}, "issuedServer", "must be a string"),
    ],
)
def test_invalid_entries_name_file_cluster_and_field(fields: dict[str, Any], field: str, fragment: str) -> None:
    result = parse_document(doc(entry(**fields)), source="clusters/prod.yaml")
    assert result.clusters == ()
    assert [e.field for e in result.errors] == [field]
    error = result.errors[0]
    assert fragment in error.message
    assert error.file == "clusters/prod.yaml"
    assert error.cluster == expected_label(fields)


SECRET = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0"


@pytest.mark.parametrize(
    ("source", "key"),
    [
        ("kubeconfig", "token"),
        ("kubeconfig", "password"),
        ("aks", "clientSecret"),
        ("eks", "secretAccessKey"),
        ("gke", "privateKey"),
        ("kubeconfig", "client-key-data"),
        ("inCluster", "bearerToken"),
        ("aks", "apiKey"),
    ],
)
def test_inline_secrets_are_refused_and_never_echoed(source: str, key: str) -> None:
    result = parse_document(doc(entry(credentials={source: {key: SECRET}})), source="f.yaml")
    assert result.clusters == ()
    messages = [str(e) for e in result.errors]
    assert any(f"credentials.{source}.{key}" in m and "looks like an inline secret" in m for m in messages)
    assert not any(SECRET in m for m in messages)


def test_one_bad_cluster_does_not_stop_the_others() -> None:
    result = parse_document(
        doc(entry(name="good-1"), entry(name="bad", weight=0, provider="nope"), entry(name="good-2"), "not a mapping"),
        source="f.yaml",
    )
    assert [s.name for s in result.clusters] == ["good-1", "good-2"]
    assert [(e.cluster, e.field) for e in result.errors] == [("bad", "provider"), ("bad", "weight"), ("#3", "")]
    assert (
        str(result.errors[0])
        == "f.yaml: cluster bad, field provider: unknown provider 'nope'; one of aks, eks, gke, in-cluster, kubeconfig, sim"
    )


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ([], "must be a mapping with apiVersion, kind and clusters"),
        ({"apiVersion": "v1", "kind": "ClusterList", "clusters": []}, "apiVersion must be podgate.io/v1, got 'v1'"),
        ({"apiVersion": "podgate.io/v1", "kind": "Pod"}, "kind must be ClusterList or Cluster, got 'Pod'"),
        ({"apiVersion": "podgate.io/v1", "kind": "ClusterList", "clusters": {"a": 1}}, "needs a list under clusters:"),
        ({"apiVersion": "podgate.io/v1", "kind": "ClusterList"}, "needs a list under clusters:"),
    ],
)
def test_document_errors(data: Any, fragment: str) -> None:
    result = parse_document(data, source="f.yaml")
    assert result.clusters == ()
    assert [(e.file, e.cluster) for e in result.errors] == [("f.yaml", "")]
    assert fragment in result.errors[0].message


def test_kind_cluster_holds_one_cluster() -> None:
    data = {"apiVersion": "podgate.io/v1", "kind": "Cluster", **entry(name="solo")}
    result = parse_document(data, source="f.yaml")
    assert [s.name for s in result.clusters] == ["solo"]


def test_duplicates_within_and_across_files_refuse_the_later_one(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        yaml.safe_dump(doc(entry(name="x"), entry(name="y"), entry(name="x", region="us-east-1")))
    )
    (tmp_path / "b.yml").write_text(yaml.safe_dump(doc(entry(name="y", region="us-east-1"), entry(name="z"))))
    (tmp_path / "ignored.txt").write_text("not yaml: [")
    result = load_files([tmp_path], check=None)
    assert [(s.name, s.region, Path(s.source).name) for s in result.clusters] == [
        ("x", "eu-west-1", "a.yaml"),
        ("y", "eu-west-1", "a.yaml"),
        ("z", "eu-west-1", "b.yml"),
    ]
    assert [(Path(e.file).name, e.cluster, e.field) for e in result.errors] == [
        ("a.yaml", "x", "name"),
        ("b.yml", "y", "name"),
    ]
    assert "duplicate cluster name 'x'" in result.errors[0].message


def test_names_taken_elsewhere_are_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(doc(entry(name="taken"), entry(name="free"))))
    result = load_files([path], taken={"taken"}, check=None)
    assert [s.name for s in result.clusters] == ["free"]
    assert [e.cluster for e in result.errors] == ["taken"]


def test_multiple_documents_and_unreadable_files(tmp_path: Path) -> None:
    multi = tmp_path / "multi.yaml"
    multi.write_text(
        yaml.safe_dump(doc(entry(name="one"))) + "---\n" + yaml.safe_dump(doc(entry(name="two"))) + "---\n"
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text("clusters: [unclosed\n")
    result = load_files([multi, broken, tmp_path / "missing.yaml"], check=None)
    assert [s.name for s in result.clusters] == ["one", "two"]
    assert [Path(e.file).name for e in result.errors] == ["broken.yaml", "missing.yaml"]
    assert all(e.message.startswith("cannot read: ") for e in result.errors)


def spec(source: str, **params: str) -> ClusterSpec:
    return ClusterSpec(
        name="c",
        provider=source if source != "in-cluster" else "in-cluster",
        credentials=CredentialsRef(source=source, params=params),
        region="r",
    )


@pytest.mark.parametrize(
    ("cluster", "environ", "files", "problems"),
    [
        (spec("kubeconfig", path="/etc/kc"), {}, {"/etc/kc"}, []),
        (
            spec("kubeconfig", path="/etc/kc"),
            {},
            set(),
            [("credentials.kubeconfig.path", "file '/etc/kc' does not exist or is not a file")],
        ),
        (spec("kubeconfig", envVar="KC"), {"KC": "/x"}, set(), []),
        (
            spec("kubeconfig", envVar="KC"),
            {},
            set(),
            [("credentials.kubeconfig.envVar", "environment variable 'KC' is not set or empty")],
        ),
        (
            spec("kubeconfig", envVar="KC"),
            {"KC": ""},
            set(),
            [("credentials.kubeconfig.envVar", "environment variable 'KC' is not set or empty")],
        ),
        (spec("aks", clientSecretEnv="S", caFile="/ca"), {"S": "x"}, {"/ca"}, []),
        (
            spec("aks", clientSecretEnv="S", caFile="/ca"),
            {},
            set(),
            [
                ("credentials.aks.clientSecretEnv", "environment variable 'S' is not set or empty"),
                ("credentials.aks.caFile", "file '/ca' does not exist or is not a file"),
            ],
        ),
        (
            spec("gke", keyFile="/k.json", project="p", location="l"),
            {},
            set(),
            [("credentials.gke.keyFile", "file '/k.json' does not exist or is not a file")],
        ),
        (spec("in-cluster", tokenDir="/t"), {}, {"/t/token"}, []),
        (
            spec("in-cluster"),
            {},
            set(),
            [
                (
                    "credentials.inCluster.tokenDir",
                    "no service account token at '/var/run/secrets/kubernetes.io/serviceaccount/token' (not running in a pod?)",
                )
            ],
        ),
        (spec("sim"), {}, set(), []),
        (spec("eks", region="eu-west-1", profile="p"), {}, set(), []),
    ],
)
def test_check_credentials_uses_the_injected_environment_and_files(
    cluster: ClusterSpec, environ: dict[str, str], files: set[str], problems: list[tuple[str, str]]
) -> None:
    assert check_credentials(cluster, environ=environ, is_file=files.__contains__) == problems


def test_resolve_moves_unresolvable_clusters_to_errors() -> None:
    good, bad = (
        spec("sim"),
        ClusterSpec(
            name="b",
            provider="kubeconfig",
            credentials=CredentialsRef(source="kubeconfig", params={"envVar": "NOPE"}),
            region="r",
            source="f.yaml",
        ),
    )
    result = resolve(
        LoadResult(clusters=(good, bad)), lambda s: check_credentials(s, environ={}, is_file=lambda _: False)
    )
    assert result.clusters == (good,)
    assert result.errors == (
        ClusterFileError(
            "f.yaml", "b", "credentials.kubeconfig.envVar", "environment variable 'NOPE' is not set or empty"
        ),
    )


def test_load_files_resolves_with_the_real_environment_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text("apiVersion: v1\n")
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump(
            doc(
                entry(name="by-file", provider="kubeconfig", credentials={"kubeconfig": {"path": str(kubeconfig)}}),
                entry(name="by-env", provider="kubeconfig", credentials={"kubeconfig": {"envVar": "PODGATE_TEST_KC"}}),
                entry(
                    name="missing", provider="kubeconfig", credentials={"kubeconfig": {"path": str(tmp_path / "nope")}}
                ),
            )
        )
    )
    monkeypatch.setenv("PODGATE_TEST_KC", str(kubeconfig))
    result = load_files([path])
    assert [s.name for s in result.clusters] == ["by-file", "by-env"]
    assert [e.cluster for e in result.errors] == ["missing"]


@pytest.mark.parametrize(
    ("raw", "taint"),
    [
        ("gpu=scarce:NoSelect", Taint(key="gpu", value="scarce")),
        ("gpu:PreferNoSelect", Taint(key="gpu", effect=TaintEffect.PREFER_NO_SELECT)),
        ("gpu=:NoSelect", Taint(key="gpu")),
        ({"key": "a", "effect": "PreferNoSelect"}, Taint(key="a", effect=TaintEffect.PREFER_NO_SELECT)),
    ],
)
def test_parse_taint(raw: Any, taint: Taint) -> None:
    assert parse_taint(raw) == taint


def test_check_spec_for_api_registrations() -> None:
    check_spec(spec("sim"))
    bad = ClusterSpec(
        name="Bad",
        provider="x",
        credentials=CredentialsRef(source="kubeconfig", params={"token": SECRET}),
        region="",
        weight=0,
        allowed_namespaces=frozenset({"A"}),
    )
    with pytest.raises(InvalidArgument) as caught:
        check_spec(bad)
    assert [v.field for v in caught.value.violations] == [
        "cluster.name",
        "cluster.provider",
        "cluster.region",
        "cluster.allowed_namespaces",
        "cluster.weight",
        "cluster.credentials.kubeconfig.token",
        "cluster.credentials.kubeconfig",
    ]
    assert SECRET not in str(caught.value) + "".join(v.description for v in caught.value.violations)
