"""Provider for a cluster reached through a kubeconfig: a file, a KUBECONFIG-style list of files, or an env
var holding a path, a path list or the YAML itself.

Static tokens, token files, client certificates (data or files), exec plugins (returning a token, a
client certificate, or both; re-run when what they returned expires) and `auth-provider: oidc`
(refreshed at the issuer) are supported, as are `proxy-url` and impersonation. The kubeconfig is
re-read on each refresh, so a rotated token or file is picked up after a 401 (`force_refresh`).
Nothing is ever written back to the user's files (see README, "Kubeconfigs"). Nothing here touches the
kubernetes client's global default configuration.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from gateway.credentials import oidc
from gateway.credentials.base import BearerToken, CredentialError, Endpoint
from gateway.credentials.exec_plugin import ExecCredential, ExecPluginError, run_exec_plugin
from gateway.credentials.kubeconfig_file import KubeconfigContext, KubeconfigError, resolve_context
from gateway.credentials.kubeconfig_merge import absolutize, merge, split_path_list
from gateway.credentials.params import Params
from gateway.credentials.provider import CachingProvider

KEYS = frozenset({"path", "envVar", "context"})
ID_TOKEN_SKEW = timedelta(seconds=10)  # an id-token this close to expiry is refreshed first, as client-go does


class KubeconfigProvider(CachingProvider):
    refresh_margin = 60.0

    def __init__(
        self, cluster: str, *, path: Path | Sequence[Path] | None = None, inline: str = "", context: str = ""
    ) -> None:
        paths = (path,) if isinstance(path, Path) else tuple(path or ())
        if bool(paths) == bool(inline):
            raise CredentialError(f"cluster {cluster!r}: give exactly one of a kubeconfig path or inline kubeconfig")
        super().__init__(cluster)
        self._paths = paths
        self._inline = inline
        self._context_name = context
        self._resolved: KubeconfigContext | None = None
        self._exec_credential: ExecCredential | None = None
        self._cert_endpoint: tuple[ExecCredential, Endpoint, Endpoint] | None = None  # (answer, base, certified)
        self._oidc_seen: tuple[str, str] = ("", "")  # (id-token, refresh-token) as last read from the file
        self._oidc_id_token = ""  # the file's id-token, until it has been served once
        self._oidc_refresh = ""  # the refresh token to use next (the issuer may have rotated it)

    def __repr__(self) -> str:
        where = ":".join(map(str, self._paths)) if self._paths else "<inline>"
        return f"KubeconfigProvider(cluster={self.cluster!r}, kubeconfig={where!r}, context={self._context_name!r})"

    @property
    def namespace(self) -> str:
        return self._resolved.namespace if self._resolved else "default"

    async def endpoint(self, *, stale: Endpoint | None = None) -> Endpoint:
        """The cluster's endpoint; with an exec plugin that returns a client certificate, the one
        carrying the current certificate (a new Endpoint once the plugin has been re-run). A stale one
        re-reads the kubeconfig and the files it names (a rotated CA or client certificate)."""
        if stale is not None and self._cert_endpoint is not None and stale is self._cert_endpoint[2]:
            stale = self._cert_endpoint[1]  # the certified copy stands for the endpoint it was made from
        base = await super().endpoint(stale=stale)
        ctx = self._resolved or await self._load()
        if ctx.exec is None:
            return base
        await self._tokens.get()  # runs the plugin when its last answer expired (single flight)
        result = self._exec_credential
        if result is None or not result.client_cert_data:
            return base
        if self._cert_endpoint is None or self._cert_endpoint[0] is not result or self._cert_endpoint[1] is not base:
            certified = replace(
                base, client_cert_data=result.client_cert_data, client_key_data=result.client_key_data,
                expires_at=result.expires_at,
            )  # fmt: skip
            self._cert_endpoint = (result, base, certified)
        return self._cert_endpoint[2]

    async def token(self, *, force_refresh: bool = False) -> BearerToken | None:
        ctx = self._resolved if self._resolved is not None else await self._load()
        if not ctx.bearer:
            return None  # the endpoint authenticates by client certificate
        token = await super().token(force_refresh=force_refresh)
        return token if token is not None and token.value else None  # an exec plugin may return only a cert

    async def _load(self) -> KubeconfigContext:
        self._resolved = await asyncio.to_thread(self._load_sync)
        return self._resolved

    def _where(self) -> str:
        if not self._paths:
            return "inline kubeconfig"
        return f"kubeconfig {':'.join(map(str, self._paths))!r}"

    def _documents(self) -> list[Any]:
        """Each kubeconfig document with its relative paths made absolute. In a list, missing files are
        skipped, as client-go skips them; a single named file must exist."""
        if not self._paths:
            return [absolutize(_mapping(yaml.safe_load(self._inline)), Path.cwd())]
        present = [p for p in self._paths if len(self._paths) == 1 or p.exists()]
        if not present:
            raise FileNotFoundError(2, "none of the listed files exists", str(self._paths[0]))
        return [absolutize(_mapping(yaml.safe_load(p.read_text())), p.parent) for p in present]

    def _load_sync(self) -> KubeconfigContext:
        where = self._where()
        try:
            doc = merge(self._documents())
        except OSError as exc:
            raise CredentialError(f"cluster {self.cluster!r}: cannot read {where}: {exc.strerror}") from None
        except yaml.YAMLError:
            raise CredentialError(f"cluster {self.cluster!r}: {where} is not valid YAML") from None
        try:
            return resolve_context(doc, self._context_name, Path.cwd())
        except KubeconfigError as exc:
            raise CredentialError(f"cluster {self.cluster!r}: {where}: {exc}") from None

    async def _fetch_endpoint(self) -> Endpoint:
        ctx = await self._load()  # the first lookup, or a stale endpoint: the file may have changed
        return await asyncio.to_thread(self._endpoint_sync, ctx)

    def _endpoint_sync(self, ctx: KubeconfigContext) -> Endpoint:
        try:
            return Endpoint(
                server=ctx.server,
                ca_data=ctx.ca_data or _read(ctx.ca_file),
                client_cert_data=ctx.client_cert_data or _read(ctx.client_cert_file),
                client_key_data=ctx.client_key_data or _read(ctx.client_key_file),
                tls_server_name=ctx.tls_server_name,
                proxy_url=ctx.proxy_url,
                impersonation=ctx.impersonation,
            )
        except OSError as exc:
            raise CredentialError(self._unreadable(exc)) from None
        except ValueError as exc:
            raise CredentialError(f"cluster {self.cluster!r}: {exc}") from None

    def _unreadable(self, exc: OSError) -> str:
        return f"cluster {self.cluster!r}: cannot read a file the kubeconfig names: {exc.filename}: {exc.strerror}"

    async def _fetch_token(self) -> BearerToken:
        ctx = await self._load()
        if ctx.exec is not None:
            return await self._exec_token(ctx)
        if ctx.oidc is not None:
            return await self._oidc_token(ctx)
        if ctx.token_file is not None:
            try:
                value = (await asyncio.to_thread(ctx.token_file.read_text)).strip()
            except OSError as exc:
                raise CredentialError(f"cluster {self.cluster!r}: cannot read tokenFile: {exc.strerror}") from None
            return BearerToken(value=value)
        return BearerToken(value=ctx.token)

    async def _exec_token(self, ctx: KubeconfigContext) -> BearerToken:
        """Runs the plugin; its client certificate (if any) is served by `endpoint()`, its token here."""
        assert ctx.exec is not None
        try:
            ca_data = ctx.ca_data or await asyncio.to_thread(_read, ctx.ca_file)
        except OSError as exc:
            raise CredentialError(self._unreadable(exc)) from None
        cwd = str(self._paths[0].parent) if self._paths else None
        try:
            result = await run_exec_plugin(ctx.exec, cwd=cwd, ca_data=ca_data if ctx.exec.provide_cluster_info else b"")
        except ExecPluginError as exc:
            raise CredentialError(f"cluster {self.cluster!r}: {exc}") from None
        self._exec_credential = result
        return BearerToken(value=result.token, expires_at=result.expires_at)

    async def _oidc_token(self, ctx: KubeconfigContext) -> BearerToken:
        """The file's id-token while it is fresh and not yet refused; then refreshed ones, kept in memory."""
        config = ctx.oidc
        assert config is not None
        if (config.id_token, config.refresh_token) != self._oidc_seen:  # the file changed (kubectl refreshed)
            self._oidc_seen = (config.id_token, config.refresh_token)
            self._oidc_id_token, self._oidc_refresh = config.id_token, config.refresh_token
        id_token, self._oidc_id_token = self._oidc_id_token, ""
        expiry = _usable_until(id_token) if id_token else None
        if id_token and (expiry is None or expiry > datetime.now(UTC)):
            return BearerToken(value=id_token, expires_at=expiry)
        if not self._oidc_refresh:
            raise CredentialError(
                f"cluster {self.cluster!r}: the oidc id-token has expired and the kubeconfig has no refresh-token"
            )
        try:
            ca_data = config.ca_data or await asyncio.to_thread(_read, config.ca_file)
            refreshed = await oidc.refresh(config, self._oidc_refresh, ca_data=ca_data, environ=os.environ)
        except OSError as exc:
            raise CredentialError(self._unreadable(exc)) from None
        except oidc.OidcError as exc:
            raise CredentialError(f"cluster {self.cluster!r}: oidc refresh failed: {exc}") from None
        self._oidc_refresh = refreshed.refresh_token or self._oidc_refresh
        return BearerToken(value=refreshed.id_token, expires_at=_usable_until(refreshed.id_token))

    def _secrets(self) -> tuple[str, ...]:
        ctx = self._resolved
        if ctx is None:
            return ()
        oidc_secrets = (ctx.oidc.client_secret, ctx.oidc.refresh_token, ctx.oidc.id_token) if ctx.oidc else ()
        return (ctx.token, *(ctx.exec.env.values() if ctx.exec else ()), *oidc_secrets, self._oidc_refresh)


def _usable_until(id_token: str) -> datetime | None:
    """When an id-token stops being sent: ID_TOKEN_SKEW before its `exp`, as client-go decides."""
    expiry = oidc.token_expiry(id_token)
    return expiry - ID_TOKEN_SKEW if expiry is not None else None


def _mapping(doc: Any) -> Any:
    return doc if doc is not None else {}


def _read(path: Path | None) -> bytes:
    return path.read_bytes() if path is not None else b""


def from_params(params: Params, environ: Mapping[str, str] | None = None) -> KubeconfigProvider:
    """`path`, or `envVar` naming a variable that holds a path, a KUBECONFIG-style path list (`a:b`, merged
    as client-go merges them) or the kubeconfig YAML; optional `context`."""
    params.check_keys(KEYS)
    context = params.get("context")
    if params.get("path") and params.get("envVar"):
        raise params.error("give either 'path' or 'envVar', not both")
    if params.get("path"):
        return KubeconfigProvider(params.cluster, path=Path(params.require("path")).expanduser(), context=context)
    value = params.secret_from_env("envVar", environ if environ is not None else os.environ)
    if "\n" in value or value.lstrip().startswith(("{", "apiVersion")):
        return KubeconfigProvider(params.cluster, inline=value, context=context)
    paths = split_path_list(value)
    if not paths:
        raise params.error(f"environment variable {params.get('envVar')!r} names no kubeconfig file")
    return KubeconfigProvider(params.cluster, path=paths, context=context)
