"""Resolving one context of a kubeconfig document into what a provider needs (pure: no file reads).

File references (`certificate-authority`, `client-key`, `tokenFile`, ...) are resolved against the
kubeconfig's directory but not opened here: the provider reads them, so this module stays testable.
Supported users: token, tokenFile, client certificates, exec plugins, `auth-provider: oidc`, each
optionally impersonating another identity (`as`, `as-uid`, `as-groups`, `as-user-extra`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gateway.credentials.base import PROXY_SCHEMES, Impersonation

EXEC_API_VERSIONS = frozenset({"client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"})


class KubeconfigError(ValueError):
    """The kubeconfig is malformed or asks for something we do not support; never quotes a secret."""


@dataclass(frozen=True, kw_only=True)
class ExecConfig:
    command: str
    api_version: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict, repr=False)  # may carry secrets
    provide_cluster_info: bool = False
    cluster_info: Mapping[str, Any] = field(default_factory=dict, repr=False)
    install_hint: str = ""  # shown when the command cannot be started, as kubectl shows it


@dataclass(frozen=True, kw_only=True)
class OidcConfig:
    """`auth-provider: {name: oidc}`: an id-token, refreshed with the refresh token at the issuer."""

    issuer: str
    client_id: str
    client_secret: str = field(default="", repr=False)
    id_token: str = field(default="", repr=False)
    refresh_token: str = field(default="", repr=False)
    ca_data: bytes = b""  # idp-certificate-authority-data; empty and no ca_file: the system trust store
    ca_file: Path | None = None


@dataclass(frozen=True, kw_only=True)
class KubeconfigContext:
    """One context, resolved: cluster connection data and the user's way of authenticating."""

    context: str
    server: str
    namespace: str = "default"
    ca_data: bytes = b""
    ca_file: Path | None = None
    tls_server_name: str = ""
    client_cert_data: bytes = field(default=b"", repr=False)
    client_key_data: bytes = field(default=b"", repr=False)
    client_cert_file: Path | None = None
    client_key_file: Path | None = None
    token: str = field(default="", repr=False)
    token_file: Path | None = None
    exec: ExecConfig | None = None
    oidc: OidcConfig | None = None
    proxy_url: str = ""
    impersonation: Impersonation | None = None

    @property
    def bearer(self) -> bool:
        """Whether requests carry a bearer token (otherwise the client certificate authenticates)."""
        return bool(self.token or self.token_file or self.exec or self.oidc)


def _named(doc: Mapping[str, Any], kind: str, name: str) -> Mapping[str, Any]:
    for item in doc.get(kind) or ():
        if isinstance(item, Mapping) and item.get("name") == name:
            body = item.get(kind[:-1])
            return body if isinstance(body, Mapping) else {}
    raise KubeconfigError(f"kubeconfig has no {kind[:-1]} named {name!r}")


def _b64(value: object, what: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise KubeconfigError(f"{what} is not valid base64") from None


def _path(value: object, base_dir: Path) -> Path | None:
    if not value:
        return None
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else base_dir / path


def _exec_config(user: Mapping[str, Any], cluster: Mapping[str, Any]) -> ExecConfig | None:
    spec = user.get("exec")
    if not spec:
        return None
    if not isinstance(spec, Mapping) or not spec.get("command"):
        raise KubeconfigError("user.exec needs a command")
    api_version = str(spec.get("apiVersion", ""))
    if api_version not in EXEC_API_VERSIONS:
        raise KubeconfigError(f"user.exec apiVersion {api_version!r} is not one of {sorted(EXEC_API_VERSIONS)}")
    env = {str(e["name"]): str(e["value"]) for e in spec.get("env") or () if isinstance(e, Mapping) and "name" in e}
    return ExecConfig(
        command=str(spec["command"]),
        api_version=api_version,
        args=tuple(str(a) for a in spec.get("args") or ()),
        env=env,
        provide_cluster_info=bool(spec.get("provideClusterInfo")),
        cluster_info=dict(cluster),
        install_hint=" ".join(str(spec.get("installHint") or "").split())[:300],
    )


_REMOVED_PROVIDERS = {
    "gcp": "gke-gcloud-auth-plugin (exec)",
    "azure": "kubelogin (exec)",
}


def _oidc_config(user: Mapping[str, Any], base_dir: Path) -> OidcConfig | None:
    provider = user.get("auth-provider")
    if not provider:
        return None
    name = str(provider.get("name", "")) if isinstance(provider, Mapping) else ""
    if name in _REMOVED_PROVIDERS:
        raise KubeconfigError(f"user.auth-provider {name!r} was removed from client-go; use {_REMOVED_PROVIDERS[name]}")
    if name != "oidc":
        raise KubeconfigError(f"user.auth-provider {name!r} is not supported; only 'oidc' is")
    cfg = provider.get("config") or {}
    if not isinstance(cfg, Mapping) or not cfg.get("idp-issuer-url") or not cfg.get("client-id"):
        raise KubeconfigError("auth-provider oidc needs config.idp-issuer-url and config.client-id")
    if not (cfg.get("id-token") or cfg.get("refresh-token")):
        raise KubeconfigError("auth-provider oidc needs config.id-token or config.refresh-token")
    issuer = str(cfg["idp-issuer-url"])
    if urlsplit(issuer).scheme != "https":
        raise KubeconfigError(f"auth-provider oidc idp-issuer-url must be https://, got {issuer!r}")
    ca_data = cfg.get("idp-certificate-authority-data")
    return OidcConfig(
        issuer=issuer,
        client_id=str(cfg["client-id"]),
        client_secret=str(cfg.get("client-secret") or ""),
        id_token=str(cfg.get("id-token") or ""),
        refresh_token=str(cfg.get("refresh-token") or ""),
        ca_data=_b64(ca_data, "idp-certificate-authority-data") if ca_data else b"",
        ca_file=_path(cfg.get("idp-certificate-authority"), base_dir),
    )


def _impersonation(user: Mapping[str, Any]) -> Impersonation | None:
    groups = tuple(str(g) for g in user.get("as-groups") or ())
    raw_extra = user.get("as-user-extra") or {}
    if not isinstance(raw_extra, Mapping):
        raise KubeconfigError("user.as-user-extra must map keys to lists of values")
    extra = tuple((str(k), tuple(str(v) for v in (vs if isinstance(vs, list) else [vs]))) for k, vs in raw_extra.items())
    as_user, uid = str(user.get("as") or ""), str(user.get("as-uid") or "")
    if not (as_user or uid or groups or extra):
        return None
    try:
        return Impersonation(user=as_user, uid=uid, groups=groups, extra=extra)
    except ValueError as exc:
        raise KubeconfigError(f"user: {exc}") from None


def _proxy_url(cluster: Mapping[str, Any]) -> str:
    url = str(cluster.get("proxy-url") or "")
    parts = urlsplit(url)
    if url and (parts.scheme not in PROXY_SCHEMES or not parts.hostname):
        raise KubeconfigError(f"cluster proxy-url must be one of {list(PROXY_SCHEMES)}://host:port")
    return url


def _check_user(user: Mapping[str, Any]) -> None:
    if user.get("username") or user.get("password"):
        raise KubeconfigError("basic auth (username/password) is not supported; use a token, certificate or exec")


def resolve_context(doc: Mapping[str, Any], context: str, base_dir: Path) -> KubeconfigContext:
    """The named context (or current-context when empty) of a parsed kubeconfig document."""
    if not isinstance(doc, Mapping):
        raise KubeconfigError("kubeconfig is not a YAML mapping")
    name = context or str(doc.get("current-context") or "")
    if not name:
        raise KubeconfigError("no context given and the kubeconfig has no current-context")
    ctx = _named(doc, "contexts", name)
    cluster = _named(doc, "clusters", str(ctx.get("cluster", "")))
    user = _named(doc, "users", str(ctx.get("user", ""))) if ctx.get("user") else {}
    _check_user(user)
    server = str(cluster.get("server", ""))
    if not server.startswith("https://"):
        raise KubeconfigError(f"context {name!r}: cluster server must be an https:// URL, got {server!r}")
    if cluster.get("insecure-skip-tls-verify"):
        raise KubeconfigError(f"context {name!r}: insecure-skip-tls-verify is refused; give the cluster's CA")
    return KubeconfigContext(
        context=name,
        server=server,
        namespace=str(ctx.get("namespace") or "default"),
        ca_data=_b64(cluster["certificate-authority-data"], "certificate-authority-data")
        if cluster.get("certificate-authority-data")
        else b"",
        ca_file=_path(cluster.get("certificate-authority"), base_dir),
        tls_server_name=str(cluster.get("tls-server-name") or ""),
        client_cert_data=_b64(user["client-certificate-data"], "client-certificate-data")
        if user.get("client-certificate-data")
        else b"",
        client_key_data=_b64(user["client-key-data"], "client-key-data") if user.get("client-key-data") else b"",
        client_cert_file=_path(user.get("client-certificate"), base_dir),
        client_key_file=_path(user.get("client-key"), base_dir),
        token=str(user.get("token") or ""),
        token_file=_path(user.get("tokenFile"), base_dir),
        exec=_exec_config(user, cluster),
        oidc=_oidc_config(user, base_dir),
        proxy_url=_proxy_url(cluster),
        impersonation=_impersonation(user),
    )
