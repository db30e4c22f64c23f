"""Per-cluster bearer-token cache with single-flight refresh ahead of expiry.

Every provider that mints tokens (EKS, GKE, AKS, exec plugins) puts its fetch function behind one of
these, so the policy lives in one place: a fresh token is served from memory; a token close to its
expiry is still served while exactly one background task fetches its successor; a missing or
expired token makes callers wait on that one task. 100 concurrent callers cause one fetch, and a
401-driven `force_refresh` joins a refresh already in flight instead of starting another.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from gateway.credentials.base import BearerToken, CredentialError
from gateway.observability import logging as logcontext
from gateway.observability import metrics

log = logging.getLogger(__name__)

Fetch = Callable[[], Awaitable[BearerToken]]
Clock = Callable[[], float]


def _epoch(moment: datetime) -> float:
    if moment.tzinfo is None:  # SDKs (google-auth) hand out naive UTC datetimes
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class TokenCache:
    """Holds one cluster's current token and the single task that may be refreshing it.

    `refresh_margin` is how long before expiry the successor is fetched, capped at a quarter of the
    token's lifetime so short-lived tokens are not refreshed continuously. A token with less than
    a tenth of the margin left is no longer served. After a failed fetch, callers get the same
    error for `failure_backoff` seconds (doubling up to 30 s) instead of hammering the issuer.
    """

    def __init__(
        self,
        cluster: str,
        fetch: Fetch,
        *,
        refresh_margin: float = 300.0,
        min_force_interval: float = 1.0,
        failure_backoff: float = 1.0,
        clock: Clock = time.time,
    ) -> None:
        self._cluster = cluster
        self._fetch = fetch
        self._margin = refresh_margin
        self._min_force_interval = min_force_interval
        self._base_backoff = failure_backoff
        self._clock = clock
        self._token: BearerToken | None = None
        self._fetched_at = 0.0
        self._inflight: asyncio.Task[BearerToken] | None = None
        self._failure: CredentialError | None = None
        self._failed_until = 0.0
        self._backoff = failure_backoff
        self._closed = False
        self.refreshes = 0  # completed fetch attempts, for tests and metrics

    async def get(self, *, force_refresh: bool = False) -> BearerToken:
        if self._closed:
            raise CredentialError(f"credentials of cluster {self._cluster!r} are closed")
        now = self._clock()
        token = self._token
        if self._inflight is not None and (force_refresh or not self._usable(token, now)):
            return await asyncio.shield(self._inflight)
        backing_off = self._failure is not None and now < self._failed_until
        if backing_off and (force_refresh or not self._usable(token, now)):
            raise CredentialError(str(self._failure))
        if force_refresh:
            if token is not None and now - self._fetched_at < self._min_force_interval:
                return token  # fetched just now: a burst of 401s needs one refresh, not one each
            return await self._refresh()
        if token is not None and self._fresh(token, now):
            return token
        if token is not None and self._usable(token, now):
            if self._inflight is None and now >= self._failed_until:
                self._start_refresh()
            return token
        return await self._refresh()

    async def close(self) -> None:
        self._closed = True
        task, self._inflight = self._inflight, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _lifetime_margin(self, token: BearerToken) -> float:
        assert token.expires_at is not None
        lifetime = max(0.0, _epoch(token.expires_at) - self._fetched_at)
        return min(self._margin, lifetime / 4)

    def _fresh(self, token: BearerToken, now: float) -> bool:
        if token.expires_at is None:
            return True
        return now < _epoch(token.expires_at) - self._lifetime_margin(token)

    def _usable(self, token: BearerToken | None, now: float) -> bool:
        if token is None:
            return False
        if token.expires_at is None:
            return True
        return now < _epoch(token.expires_at) - self._lifetime_margin(token) / 10

    async def _refresh(self) -> BearerToken:
        if self._inflight is None:
            self._start_refresh()
        assert self._inflight is not None
        return await asyncio.shield(self._inflight)

    def _start_refresh(self) -> None:
        task = logcontext.background(self._run_fetch(), name=f"token-refresh:{self._cluster}", cluster=self._cluster)
        task.add_done_callback(_consume_exception)
        self._inflight = task

    async def _run_fetch(self) -> BearerToken:
        try:
            token = await self._fetch()
        except CredentialError as exc:
            self._record_failure(exc)
            raise
        except Exception as exc:  # an SDK error we did not translate: never let its text through
            error = CredentialError(f"cluster {self._cluster!r}: the token fetch raised {type(exc).__name__}")
            self._record_failure(error)
            raise error from None
        finally:
            self._inflight = None
            self.refreshes += 1
        metrics.CREDENTIAL_REFRESHES.labels(cluster=self._cluster, outcome="ok").inc()
        self._token = token
        self._fetched_at = self._clock()
        self._failure = None
        self._failed_until = 0.0
        self._backoff = self._base_backoff
        return token

    def _record_failure(self, error: CredentialError) -> None:
        log.warning("token refresh failed: %s", error)
        metrics.CREDENTIAL_REFRESHES.labels(cluster=self._cluster, outcome="failure").inc()
        self._failure = error
        self._failed_until = self._clock() + self._backoff
        self._backoff = min(self._backoff * 2, 30.0)


def _consume_exception(task: asyncio.Task[BearerToken]) -> None:
    """A background refresh's failure is logged and recorded; mark it retrieved for asyncio."""
    if not task.cancelled():
        task.exception()
