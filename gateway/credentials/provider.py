"""The shared skeleton of providers that look an endpoint up once (again when a caller reports it stale)
and mint tokens through a TokenCache."""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Coroutine
from typing import Any, TypeVar

from gateway.credentials.base import BearerToken, CredentialError, Endpoint
from gateway.credentials.cache import TokenCache
from gateway.credentials.params import describe

T = TypeVar("T")
CLOUD_ENDPOINT_REFRESH_SECONDS = 30.0


class CachingProvider(ABC):
    """Endpoint looked up once (retried after a failure), tokens behind a single-flight cache."""

    refresh_margin = 300.0
    # A stale endpoint is looked up again at most this often: a file read for kubeconfigs; providers that
    # ask a cloud API (quota, and a cluster under rotation stays down for minutes anyway) wait longer.
    endpoint_refresh_interval = 1.0

    def __init__(self, cluster: str) -> None:
        self._cluster = cluster
        self._endpoint: Endpoint | None = None
        self._endpoint_at = 0.0  # time.monotonic() of the last lookup
        self._endpoint_lock = asyncio.Lock()
        self._tokens = TokenCache(cluster, self._fetch_token_safely, refresh_margin=self.refresh_margin)

    @property
    def cluster(self) -> str:
        return self._cluster

    @property
    def token_cache(self) -> TokenCache:
        return self._tokens

    async def endpoint(self, *, stale: Endpoint | None = None) -> Endpoint:
        """Single flight: callers reporting the same `stale` endpoint cause one lookup; those reporting
        an endpoint already replaced get the current one."""
        async with self._endpoint_lock:
            if self._endpoint is None or (stale is not None and self._should_refresh(stale)):
                self._endpoint = await self._guard("endpoint lookup", self._fetch_endpoint())
                self._endpoint_at = time.monotonic()
            return self._endpoint

    def _should_refresh(self, stale: Endpoint) -> bool:
        return stale is self._endpoint and time.monotonic() - self._endpoint_at >= self.endpoint_refresh_interval

    async def token(self, *, force_refresh: bool = False) -> BearerToken | None:
        return await self._tokens.get(force_refresh=force_refresh)

    async def close(self) -> None:
        await self._tokens.close()
        await self._close_resources()

    @abstractmethod
    async def _fetch_endpoint(self) -> Endpoint: ...

    @abstractmethod
    async def _fetch_token(self) -> BearerToken: ...

    async def _close_resources(self) -> None:  # noqa: B027 (optional hook)
        """Release SDK clients and sessions."""

    def _secrets(self) -> tuple[str, ...]:
        """Secret values this provider knows, scrubbed from any SDK message it quotes."""
        return ()

    async def _fetch_token_safely(self) -> BearerToken:
        return await self._guard("token refresh", self._fetch_token())

    async def _guard(self, action: str, pending: Coroutine[Any, Any, T]) -> T:
        """Await `pending`, turning any SDK error into a CredentialError that quotes no secret."""
        try:
            return await pending
        except CredentialError:
            raise
        except Exception as exc:
            message = f"cluster {self._cluster!r}: {action} failed: {describe(exc, self._secrets())}"
            raise CredentialError(message) from None
