"""A provider with a fixed endpoint and token: for tests and for clusters reached with a static token.

The full providers (kubeconfig, in-cluster, clouds) live beside this one; this is the minimal one the
Kubernetes API client's tests need, kept deliberately small.
"""

from __future__ import annotations

from gateway.credentials.base import BearerToken, Endpoint


class StaticProvider:
    """Always the same endpoint and token; `force_refresh` re-reads nothing. Counts token requests."""

    def __init__(self, cluster: str, endpoint: Endpoint, token: str | None = None) -> None:
        self._cluster = cluster
        self._endpoint = endpoint
        self._token = None if token is None else BearerToken(value=token)
        self.refreshes = 0

    def __repr__(self) -> str:
        return f"StaticProvider(cluster={self._cluster!r}, server={self._endpoint.server!r})"

    @property
    def cluster(self) -> str:
        return self._cluster

    async def endpoint(self, *, stale: Endpoint | None = None) -> Endpoint:
        return self._endpoint

    async def token(self, *, force_refresh: bool = False) -> BearerToken | None:
        self.refreshes += force_refresh
        return self._token

    async def close(self) -> None:
        return None
