"""The one small interface every credential provider implements, and the secret-holding values it returns.

A provider answers two questions for one cluster: where is its API server (and how do I trust it, through
which proxy, as whom), and what bearer token do I send right now. The Kubernetes API client calls `token()` before each request
and `token(force_refresh=True)` once after a 401; providers cache and refresh (single flight) themselves.
"""

from __future__ import annotations

import ssl
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote

PROXY_SCHEMES = ("http", "https", "socks5")
# RFC 7230 token characters other than "%": what may stay unescaped in an Impersonate-Extra-<key> name.
_HEADER_SAFE = "!#$&'*+-.^_`|~"


@dataclass(frozen=True, kw_only=True)
class Impersonation:
    """Who requests run as (kubeconfig `as`, `as-uid`, `as-groups`, `as-user-extra`).

    The base identity must hold the `impersonate` verb; the API server then authorizes each request as
    this identity. Groups and extras only exist together with a user, as kube-apiserver requires.
    """

    user: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (key, values), in the kubeconfig's order

    def __post_init__(self) -> None:
        if not self.user:
            raise ValueError("impersonating groups, a uid or extras needs a user (`as`)")

    def headers(self) -> list[tuple[str, str]]:
        """The Impersonate-* headers, one line per group and per extra value (as client-go sends them)."""
        lines = [("Impersonate-User", self.user)]
        lines += [("Impersonate-Uid", self.uid)] if self.uid else []
        lines += [("Impersonate-Group", group) for group in self.groups]
        for key, values in self.extra:
            lines += [(f"Impersonate-Extra-{quote(key, safe=_HEADER_SAFE)}", value) for value in values]
        return lines


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """Where a cluster's API server is and how to trust it. Key material is hidden from repr."""

    server: str  # https://host:port
    ca_data: bytes = b""  # PEM; empty means the system trust store
    client_cert_data: bytes = field(default=b"", repr=False)  # PEM, for kubeconfig users with client certs
    client_key_data: bytes = field(default=b"", repr=False)
    tls_server_name: str = ""
    proxy_url: str = ""  # kubeconfig `proxy-url`; empty: HTTPS_PROXY/NO_PROXY decide
    impersonation: Impersonation | None = None
    expires_at: datetime | None = None  # when the client certificate stops being valid (exec plugins)

    def __post_init__(self) -> None:
        if not self.server.startswith("https://"):
            raise ValueError(f"API server must be an https:// URL, got {self.server!r}")
        if bool(self.client_cert_data) != bool(self.client_key_data):
            raise ValueError("client certificate and key must be given together")
        scheme = self.proxy_url.partition("://")[0]
        if self.proxy_url and scheme not in PROXY_SCHEMES:
            raise ValueError(f"proxy-url scheme {scheme!r} is not one of {list(PROXY_SCHEMES)}")

    def ssl_context(self) -> ssl.SSLContext:
        """A context trusting exactly ca_data (never the process-wide CA environment variables).

        With `tls_server_name`, the context itself names the server for SNI and verification, so every
        path honours it: plain requests, WebSocket upgrades, and tunnels through any kind of proxy.
        """
        cadata = self.ca_data.decode() if self.ca_data else None
        ctx = _named(self.tls_server_name, cadata) if self.tls_server_name else ssl.create_default_context(cadata=cadata)
        if self.client_cert_data:
            # ssl can only load a cert chain from files: write them to private temporary files.
            with tempfile.NamedTemporaryFile("wb") as cert, tempfile.NamedTemporaryFile("wb") as key:
                cert.write(self.client_cert_data)
                key.write(self.client_key_data)
                cert.flush()
                key.flush()
                ctx.load_cert_chain(cert.name, key.name)
        return ctx


class _ServerNameContext(ssl.SSLContext):
    """An SSLContext that verifies (and sends SNI for) one fixed name, whatever host was dialled."""

    server_name: str

    def wrap_bio(self, incoming: Any, outgoing: Any, server_side: bool = False, server_hostname: Any = None,
                 session: Any = None) -> ssl.SSLObject:  # fmt: skip
        return super().wrap_bio(incoming, outgoing, server_side, self.server_name, session)

    def wrap_socket(self, sock: Any, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        return super().wrap_socket(sock, *args, **{**kwargs, "server_hostname": self.server_name})


def _named(server_name: str, cadata: str | None) -> ssl.SSLContext:
    """Like ssl.create_default_context(cadata=...), for a fixed server name."""
    ctx = _ServerNameContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.server_name = server_name
    if cadata:
        ctx.load_verify_locations(cadata=cadata)
    else:
        ctx.load_default_certs()
    return ctx


@dataclass(frozen=True, kw_only=True)
class BearerToken:
    """A token and when it stops being valid. The value never appears in repr or str."""

    value: str = field(repr=False)
    expires_at: datetime | None = None  # None: does not expire (static tokens)

    def __str__(self) -> str:
        return f"BearerToken(expires_at={self.expires_at})"


class CredentialError(Exception):
    """Credentials for a cluster could not be obtained. The message must never contain a secret."""


class CredentialProvider(Protocol):
    """Credentials of one cluster. Implementations hold their own cache; one per cluster, never shared."""

    @property
    def cluster(self) -> str: ...

    async def endpoint(self, *, stale: Endpoint | None = None) -> Endpoint:
        """The API server and its CA (may call a cloud API the first time; cached after).

        `stale`: the caller failed TLS, connecting or authenticating with that endpoint; look it up
        again (a GKE credential rotation moves the IP and CA, AKS `rotate-certs` the CA and client
        certificates), once for all callers that saw the same one, unless that was done moments ago."""
        ...

    async def token(self, *, force_refresh: bool = False) -> BearerToken | None:
        """The bearer token to send now, or None when the endpoint authenticates by client certificate."""
        ...

    async def close(self) -> None: ...
