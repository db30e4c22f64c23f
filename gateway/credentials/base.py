"""The one small interface every credential provider implements, and the secret-holding values it returns.

A provider answers two questions for one cluster: where is its API server (and how do I trust it), and
what bearer token do I send right now. The Kubernetes API client calls `token()` before each request
and `token(force_refresh=True)` once after a 401; providers cache and refresh (single flight) themselves.
"""

from __future__ import annotations

import ssl
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """Where a cluster's API server is and how to trust it. Key material is hidden from repr."""

    server: str  # https://host:port
    ca_data: bytes = b""  # PEM; empty means the system trust store
    client_cert_data: bytes = field(default=b"", repr=False)  # PEM, for kubeconfig users with client certs
    client_key_data: bytes = field(default=b"", repr=False)
    tls_server_name: str = ""

    def __post_init__(self) -> None:
        if not self.server.startswith("https://"):
            raise ValueError(f"API server must be an https:// URL, got {self.server!r}")
        if bool(self.client_cert_data) != bool(self.client_key_data):
            raise ValueError("client certificate and key must be given together")

    def ssl_context(self) -> ssl.SSLContext:
        """A context trusting exactly ca_data (never the process-wide CA environment variables)."""
        ctx = ssl.create_default_context(cadata=self.ca_data.decode() if self.ca_data else None)
        if self.client_cert_data:
            # ssl can only load a cert chain from files: write them to private temporary files.
            with tempfile.NamedTemporaryFile("wb") as cert, tempfile.NamedTemporaryFile("wb") as key:
                cert.write(self.client_cert_data)
                key.write(self.client_key_data)
                cert.flush()
                key.flush()
                ctx.load_cert_chain(cert.name, key.name)
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

    async def endpoint(self) -> Endpoint:
        """The API server and its CA (may call a cloud API the first time; cached after)."""
        ...

    async def token(self, *, force_refresh: bool = False) -> BearerToken | None:
        """The bearer token to send now, or None when the endpoint authenticates by client certificate."""
        ...

    async def close(self) -> None: ...
