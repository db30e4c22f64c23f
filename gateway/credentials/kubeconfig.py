"""Provider for a cluster reached through a kubeconfig: a file, or an env var holding a path or the YAML itself.

Static tokens, token files, client certificates (data or files) and token-returning exec plugins are
supported. The kubeconfig is re-read on each refresh, so a rotated token or file is picked up after
a 401 (`force_refresh`). Nothing here touches the kubernetes client's global default configuration.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from gateway.credentials.base import BearerToken, CredentialError, Endpoint
from gateway.credentials.exec_plugin import ExecPluginError, run_exec_plugin
from gateway.credentials.kubeconfig_file import KubeconfigContext, KubeconfigError, resolve_context
from gateway.credentials.params import Params
from gateway.credentials.provider import CachingProvider

KEYS = frozenset({"path", "envVar", "context"})


class KubeconfigProvider(CachingProvider):
    refresh_margin = 60.0

    def __init__(self, cluster: str, *, path: Path | None = None, inline: str = "", context: str = "") -> None:
        if (path is None) == (not inline):
            raise CredentialError(f"cluster {cluster!r}: give exactly one of a kubeconfig path or inline kubeconfig")
        super().__init__(cluster)
        self._path = path
        self._inline = inline
        self._context_name = context
        self._resolved: KubeconfigContext | None = None

    def __repr__(self) -> str:
        where = str(self._path) if self._path else "<inline>"
        return f"KubeconfigProvider(cluster={self.cluster!r}, kubeconfig={where!r}, context={self._context_name!r})"

    @property
    def namespace(self) -> str:
        return self._resolved.namespace if self._resolved else "default"

    async def token(self, *, force_refresh: bool = False) -> BearerToken | None:
        ctx = self._resolved if self._resolved is not None else await self._load()
        if not (ctx.token or ctx.token_file or ctx.exec):
            return None  # the endpoint authenticates by client certificate
        return await super().token(force_refresh=force_refresh)

    async def _load(self) -> KubeconfigContext:
        self._resolved = await asyncio.to_thread(self._load_sync)
        return self._resolved

    def _load_sync(self) -> KubeconfigContext:
        base_dir = self._path.parent if self._path else Path.cwd()
        where = f"kubeconfig {str(self._path)!r}" if self._path else "inline kubeconfig"
        try:
            text = self._path.read_text() if self._path else self._inline
            doc: Any = yaml.safe_load(text)
        except OSError as exc:
            raise CredentialError(f"cluster {self.cluster!r}: cannot read {where}: {exc.strerror}") from None
        except yaml.YAMLError:
            raise CredentialError(f"cluster {self.cluster!r}: {where} is not valid YAML") from None
        try:
            return resolve_context(doc, self._context_name, base_dir)
        except KubeconfigError as exc:
            raise CredentialError(f"cluster {self.cluster!r}: {where}: {exc}") from None

    async def _fetch_endpoint(self) -> Endpoint:
        ctx = self._resolved or await self._load()
        return await asyncio.to_thread(self._endpoint_sync, ctx)

    def _endpoint_sync(self, ctx: KubeconfigContext) -> Endpoint:
        try:
            return Endpoint(
                server=ctx.server,
                ca_data=ctx.ca_data or _read(ctx.ca_file),
                client_cert_data=ctx.client_cert_data or _read(ctx.client_cert_file),
                client_key_data=ctx.client_key_data or _read(ctx.client_key_file),
                tls_server_name=ctx.tls_server_name,
            )
        except OSError as exc:
            raise CredentialError(
                f"cluster {self.cluster!r}: cannot read a file the kubeconfig names: {exc.filename}: {exc.strerror}"
            ) from None
        except ValueError as exc:
            raise CredentialError(f"cluster {self.cluster!r}: {exc}") from None

    async def _fetch_token(self) -> BearerToken:
        ctx = await self._load()
        if ctx.exec is not None:
            try:
                result = await run_exec_plugin(ctx.exec, cwd=str(self._path.parent) if self._path else None)
            except ExecPluginError as exc:
                raise CredentialError(f"cluster {self.cluster!r}: {exc}") from None
            if not result.token:
                raise CredentialError(
                    f"cluster {self.cluster!r}: exec plugin {ctx.exec.command!r} returned a client certificate; "
                    "only token-returning exec plugins are supported"
                )
            return BearerToken(value=result.token, expires_at=result.expires_at)
        if ctx.token_file is not None:
            try:
                value = (await asyncio.to_thread(ctx.token_file.read_text)).strip()
            except OSError as exc:
                raise CredentialError(f"cluster {self.cluster!r}: cannot read tokenFile: {exc.strerror}") from None
            return BearerToken(value=value)
        return BearerToken(value=ctx.token)

    def _secrets(self) -> tuple[str, ...]:
        ctx = self._resolved
        return (ctx.token, *(ctx.exec.env.values() if ctx.exec else ())) if ctx else ()


def _read(path: Path | None) -> bytes:
    return path.read_bytes() if path is not None else b""


def from_params(params: Params, environ: Mapping[str, str] | None = None) -> KubeconfigProvider:
    """`path`, or `envVar` naming a variable that holds a path or the kubeconfig YAML; optional `context`."""
    params.check_keys(KEYS)
    context = params.get("context")
    if params.get("path") and params.get("envVar"):
        raise params.error("give either 'path' or 'envVar', not both")
    if params.get("path"):
        return KubeconfigProvider(params.cluster, path=Path(params.require("path")).expanduser(), context=context)
    value = params.secret_from_env("envVar", environ if environ is not None else os.environ)
    if "\n" in value or value.lstrip().startswith(("{", "apiVersion")):
        return KubeconfigProvider(params.cluster, inline=value, context=context)
    return KubeconfigProvider(params.cluster, path=Path(value).expanduser(), context=context)
