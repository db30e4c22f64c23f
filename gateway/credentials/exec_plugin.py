"""Running a kubeconfig exec credential plugin (client.authentication.k8s.io ExecCredential protocol).

We run the plugin ourselves, asynchronously, rather than through the kubernetes client's blocking
ExecProvider, so a slow plugin (`aws eks get-token`, `kubelogin`) never blocks the event loop and
its expirationTimestamp feeds our own TokenCache.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.credentials.kubeconfig_file import ExecConfig
from gateway.credentials.params import scrub

EXEC_TIMEOUT_SECONDS = 60.0


class ExecPluginError(Exception):
    """The plugin failed or answered something unusable; the message quotes no secret."""


@dataclass(frozen=True, kw_only=True)
class ExecCredential:
    token: str = field(default="", repr=False)
    client_cert_data: bytes = field(default=b"", repr=False)
    client_key_data: bytes = field(default=b"", repr=False)
    expires_at: datetime | None = None


# The kubeconfig cluster keys an ExecCredential's spec.cluster carries (client.authentication.k8s.io Cluster).
_CLUSTER_KEYS = ("server", "tls-server-name", "insecure-skip-tls-verify", "proxy-url", "disable-compression")
EXEC_EXTENSION = "client.authentication.k8s.io/exec"


def exec_info(config: ExecConfig, ca_data: bytes = b"") -> str:
    """The KUBERNETES_EXEC_INFO value handed to the plugin.

    `ca_data` is the cluster's CA (PEM) however the kubeconfig gave it: the plugin always gets
    `certificate-authority-data`, never a path it may not be able to resolve.
    """
    spec: dict[str, Any] = {"interactive": False}
    if config.provide_cluster_info:
        cluster = {k: config.cluster_info[k] for k in _CLUSTER_KEYS if k in config.cluster_info}
        if ca_data:
            cluster["certificate-authority-data"] = base64.b64encode(ca_data).decode()
        for ext in config.cluster_info.get("extensions") or ():
            if isinstance(ext, Mapping) and ext.get("name") == EXEC_EXTENSION:
                cluster["config"] = ext.get("extension")
        spec["cluster"] = cluster
    return json.dumps({"apiVersion": config.api_version, "kind": "ExecCredential", "spec": spec})


def parse_exec_output(config: ExecConfig, stdout: bytes) -> ExecCredential:
    """Validate the plugin's ExecCredential answer (pure)."""
    try:
        doc = json.loads(stdout)
    except ValueError:
        raise ExecPluginError(f"exec plugin {config.command!r} did not print JSON") from None
    if not isinstance(doc, dict) or doc.get("kind") != "ExecCredential":
        raise ExecPluginError(f"exec plugin {config.command!r} did not print an ExecCredential")
    if doc.get("apiVersion") != config.api_version:
        raise ExecPluginError(
            f"exec plugin {config.command!r} answered apiVersion {doc.get('apiVersion')!r}, expected {config.api_version!r}"
        )
    status = doc.get("status")
    if not isinstance(status, dict):
        raise ExecPluginError(f"exec plugin {config.command!r} answered no status")
    token = str(status.get("token") or "")
    cert = str(status.get("clientCertificateData") or "").encode()
    key = str(status.get("clientKeyData") or "").encode()
    if not token and not (cert and key):
        raise ExecPluginError(f"exec plugin {config.command!r} returned neither a token nor a client certificate")
    expiry = status.get("expirationTimestamp")
    try:
        expires_at = datetime.fromisoformat(str(expiry).replace("Z", "+00:00")) if expiry else None
    except ValueError:
        raise ExecPluginError(f"exec plugin {config.command!r} returned a bad expirationTimestamp") from None
    return ExecCredential(token=token, client_cert_data=cert, client_key_data=key, expires_at=expires_at)


async def run_exec_plugin(
    config: ExecConfig, *, cwd: str | None = None, ca_data: bytes = b"", within: float = EXEC_TIMEOUT_SECONDS
) -> ExecCredential:
    """Runs the plugin as client-go does; a plugin that outlives `within` seconds, or a caller that goes away, kills it."""
    env = {**os.environ, **config.env, "KUBERNETES_EXEC_INFO": exec_info(config, ca_data)}
    try:
        proc = await asyncio.create_subprocess_exec(
            config.command,
            *config.args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=cwd,
        )
    except OSError as exc:
        hint = f"; {config.install_hint}" if config.install_hint else ""
        raise ExecPluginError(f"exec plugin {config.command!r} could not start: {exc.strerror}{hint}") from None
    try:
        async with asyncio.timeout(within):  # not wait_for: on 3.11 it can swallow a cancel
            stdout, stderr = await proc.communicate()
    except TimeoutError:
        raise ExecPluginError(f"exec plugin {config.command!r} timed out after {within:g}s") from None
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        detail = scrub(stderr.decode(errors="replace").strip(), tuple(config.env.values()), limit=200)
        raise ExecPluginError(f"exec plugin {config.command!r} exited with code {proc.returncode}: {detail}")
    return parse_exec_output(config, stdout)
