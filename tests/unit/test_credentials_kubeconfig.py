"""Kubeconfig context resolution, ExecCredential parsing and parameter checks (pure logic)."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.credentials.base import CredentialError
from gateway.credentials.exec_plugin import ExecPluginError, exec_info, parse_exec_output, run_exec_plugin
from gateway.credentials.factory import build_provider
from gateway.credentials.kubeconfig_file import ExecConfig, KubeconfigError, resolve_context
from gateway.domain import CredentialsRef

CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n").decode()
V1 = "client.authentication.k8s.io/v1"


def kubeconfig(user: dict[str, Any], cluster: dict[str, Any] | None = None, **ctx: str) -> dict[str, Any]:
    return {
        "clusters": [
            {"name": "c", "cluster": cluster or {"server": "https://10.0.0.1:6443", "certificate-authority-data": CA}}
        ],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u", **ctx}}],
        "current-context": "ctx",
    }


@pytest.mark.parametrize(
    ("user", "check"),
    [
        ({"token": "abc"}, lambda r: r.token == "abc" and r.exec is None),
        ({"tokenFile": "tok"}, lambda r: r.token_file == Path("/kc/tok")),
        ({"tokenFile": "/abs/tok"}, lambda r: r.token_file == Path("/abs/tok")),
        (
            {"client-certificate-data": CA, "client-key-data": CA},
            lambda r: r.client_cert_data.startswith(b"-----BEGIN") and r.client_key_data,
        ),
        ({"client-certificate": "c.crt", "client-key": "c.key"}, lambda r: r.client_key_file == Path("/kc/c.key")),
        (
            {
                "exec": {
                    "apiVersion": V1,
                    "command": "aws",
                    "args": ["eks", "get-token"],
                    "env": [{"name": "A", "value": "1"}],
                }
            },
            lambda r: (
                r.exec.command == "aws" and r.exec.args == ("eks", "get-token") and dict(r.exec.env) == {"A": "1"}
            ),
        ),
    ],
)
def test_users_resolve(user: dict[str, Any], check: Any) -> None:
    resolved = resolve_context(kubeconfig(user, namespace="team-a"), "", Path("/kc"))
    assert resolved.server == "https://10.0.0.1:6443"
    assert resolved.namespace == "team-a"
    assert resolved.ca_data.startswith(b"-----BEGIN")
    assert check(resolved)


@pytest.mark.parametrize(
    ("doc", "context", "message"),
    [
        (kubeconfig({"token": "x"}), "other", "no context named 'other'"),
        ({**kubeconfig({"token": "x"}), "current-context": ""}, "", "no context given"),
        (kubeconfig({"token": "x"}, {"server": "http://10.0.0.1"}), "", "must be an https:// URL"),
        (
            kubeconfig({"token": "x"}, {"server": "https://a", "insecure-skip-tls-verify": True}),
            "",
            "insecure-skip-tls-verify",
        ),
        (
            kubeconfig({"token": "x"}, {"server": "https://a", "certificate-authority-data": "%%%"}),
            "",
            "not valid base64",
        ),
        (kubeconfig({"auth-provider": {"name": "gcp"}}), "", "'gcp' was removed from client-go; use gke-gcloud-auth"),
        (kubeconfig({"auth-provider": {"name": "keystone"}}), "", "'keystone' is not supported; only 'oidc'"),
        (kubeconfig({"auth-provider": {"name": "oidc", "config": {"client-id": "k"}}}), "", "idp-issuer-url"),
        (
            kubeconfig({"auth-provider": {"name": "oidc", "config": {"client-id": "k", "idp-issuer-url": "https://i"}}}),
            "",
            "id-token or config.refresh-token",
        ),
        (kubeconfig({"token": "x", "as-groups": ["g"]}), "", r"needs a user \(`as`\)"),
        (
            kubeconfig({"token": "x"}, {"server": "https://a", "proxy-url": "ftp://SECRETPW@p:1"}),
            "",
            "proxy-url must be one of",
        ),
        (kubeconfig({"username": "a", "password": "SECRETPW"}), "", "basic auth"),
        (kubeconfig({"exec": {"apiVersion": "v0", "command": "x"}}), "", "apiVersion 'v0'"),
        (kubeconfig({"exec": {"apiVersion": V1}}), "", "needs a command"),
        ([1, 2], "", "not a YAML mapping"),
    ],
)
def test_bad_kubeconfigs_are_explained(doc: Any, context: str, message: str) -> None:
    with pytest.raises(KubeconfigError, match=message) as caught:
        resolve_context(doc, context, Path("/kc"))
    assert "SECRETPW" not in str(caught.value)


EXEC = ExecConfig(command="plugin", api_version=V1)


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ({"apiVersion": V1, "kind": "ExecCredential", "status": {"token": "tk"}}, ("tk", None)),
        (
            {
                "apiVersion": V1,
                "kind": "ExecCredential",
                "status": {"token": "tk", "expirationTimestamp": "2030-01-02T03:04:05Z"},
            },
            ("tk", "2030-01-02T03:04:05+00:00"),
        ),
    ],
)
def test_exec_output_parses(output: dict[str, Any], expected: tuple[str, str | None]) -> None:
    result = parse_exec_output(EXEC, json.dumps(output).encode())
    assert (result.token, result.expires_at.isoformat() if result.expires_at else None) == expected
    assert "tk" not in repr(result)


@pytest.mark.parametrize(
    ("stdout", "message"),
    [
        (b"not json", "did not print JSON"),
        (json.dumps({"apiVersion": V1, "kind": "Pod"}).encode(), "did not print an ExecCredential"),
        (json.dumps({"apiVersion": "x", "kind": "ExecCredential", "status": {}}).encode(), "answered apiVersion 'x'"),
        (json.dumps({"apiVersion": V1, "kind": "ExecCredential"}).encode(), "no status"),
        (json.dumps({"apiVersion": V1, "kind": "ExecCredential", "status": {}}).encode(), "neither a token"),
        (
            json.dumps(
                {"apiVersion": V1, "kind": "ExecCredential", "status": {"token": "t", "expirationTimestamp": "soon"}}
            ).encode(),
            "bad expirationTimestamp",
        ),
    ],
)
def test_bad_exec_output_is_explained(stdout: bytes, message: str) -> None:
    with pytest.raises(ExecPluginError, match=message):
        parse_exec_output(EXEC, stdout)


def test_exec_info_carries_cluster_only_when_asked() -> None:
    cluster = {
        "server": "https://a",
        "extensions": [{"name": "client.authentication.k8s.io/exec", "extension": {"k": 1}}],
    }
    plain = json.loads(exec_info(ExecConfig(command="p", api_version=V1, cluster_info=cluster)))
    assert plain == {"apiVersion": V1, "kind": "ExecCredential", "spec": {"interactive": False}}
    full = json.loads(
        exec_info(ExecConfig(command="p", api_version=V1, provide_cluster_info=True, cluster_info=cluster))
    )
    assert full["spec"]["cluster"] == {"server": "https://a", "config": {"k": 1}}


def test_exec_info_carries_the_ca_as_data_even_when_the_kubeconfig_names_a_file() -> None:
    cluster = {"server": "https://a", "certificate-authority": "/etc/ca.pem", "tls-server-name": "api.internal"}
    config = ExecConfig(command="p", api_version=V1, provide_cluster_info=True, cluster_info=cluster)
    sent = json.loads(exec_info(config, b"PEM BYTES"))["spec"]["cluster"]
    assert sent == {
        "server": "https://a",
        "tls-server-name": "api.internal",
        "certificate-authority-data": base64.b64encode(b"PEM BYTES").decode(),
    }


@pytest.mark.parametrize(
    ("source", "params", "message"),
    [
        ("nope", {}, "unknown credentials source 'nope'"),
        ("eks", {"clusterName": "x"}, "need 'region'"),
        ("eks", {"region": "eu-west-1", "bogus": "1"}, r"unknown eks credentials key\(s\) \['bogus'\]"),
        ("gke", {"project": "p"}, "need 'location'"),
        ("kubeconfig", {"path": "/a", "envVar": "B"}, "either 'path' or 'envVar'"),
        ("kubeconfig", {"envVar": "PODGATE_TEST_UNSET_VAR"}, "'PODGATE_TEST_UNSET_VAR' .* is not set"),
        (
            "aks",
            {"server": "https://a", "clientSecretEnv": "PODGATE_TEST_UNSET_VAR", "tenantId": "t", "clientId": "c"},
            "is not set",
        ),
        ("aks", {"server": "https://a", "credential": "magic"}, "credential 'magic' is not one of"),
        ("aks", {"clientId": "c"}, "need 'subscriptionId'"),
        ("in-cluster", {"token": "x"}, "unknown in-cluster credentials key"),
    ],
)
def test_bad_params_are_explained(source: str, params: dict[str, str], message: str) -> None:
    with pytest.raises(CredentialError, match=message):
        build_provider("c1", CredentialsRef(source=source, params=params), environ={})


async def test_a_missing_exec_plugin_names_its_install_hint() -> None:
    user = {"exec": {"apiVersion": V1, "command": "podgate-no-such-plugin", "installHint": "Install it with\n  apt-get install x"}}
    config = resolve_context(kubeconfig(user), "", Path("/kc")).exec
    assert config is not None
    with pytest.raises(ExecPluginError, match="could not start: No such file or directory; Install it with apt-get install x"):
        await run_exec_plugin(config)



def _plugins_seen(pids: Path) -> list[str]:
    return pids.read_text().split() if pids.exists() else []


def _alive(pids: Path) -> list[str]:
    return [pid for pid in _plugins_seen(pids) if Path(f"/proc/{pid}").exists()]


async def test_an_exec_plugin_that_hangs_is_killed_at_its_timeout_and_when_its_caller_goes_away(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    user = {"exec": {"apiVersion": V1, "command": "sh", "args": ["-c", f"echo $$ >> {pids}; exec sleep 60"]}}
    config = resolve_context(kubeconfig(user), "", Path("/kc")).exec
    assert config is not None
    with pytest.raises(ExecPluginError, match=r"exec plugin 'sh' timed out after 0.5s"):
        await run_exec_plugin(config, within=0.5)
    waiting = asyncio.create_task(run_exec_plugin(config))
    deadline = asyncio.get_running_loop().time() + 30  # bounds a failure only
    while asyncio.get_running_loop().time() < deadline:
        if len(_plugins_seen(pids)) == 2:
            break
        await asyncio.sleep(0.05)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert len(_plugins_seen(pids)) == 2
    assert _alive(pids) == []  # both plugins gone, none left sleeping behind the gateway
