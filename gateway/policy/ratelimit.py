"""Per-tenant submission rate limits: token buckets on an injected clock (pure; tests step the clock).

A bucket holds up to `burst` tokens and refills at `per_second`; a submission takes one. When the
bucket is empty the caller is told how long until one token is back: the RetryInfo delay of
RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gateway.errors import ResourceExhausted
from gateway.policy.tenants import RateLimit

Clock = Callable[[], float]  # monotonic seconds, e.g. time.monotonic


@dataclass(slots=True)
class TokenBucket:
    rate: float  # tokens per second, > 0
    burst: int  # capacity, >= 1
    tokens: float
    updated: float

    @classmethod
    def full(cls, limit: RateLimit, now: float) -> TokenBucket:
        burst = max(1, limit.burst)
        return cls(rate=limit.per_second, burst=burst, tokens=float(burst), updated=now)

    def take(self, now: float) -> float:
        """Takes one token: 0.0 when granted, else the seconds until one is available (nothing taken)."""
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(float(self.burst), self.tokens + elapsed * self.rate)
        self.updated = max(self.updated, now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    """One bucket per tenant, created on first use; a changed limit (config reload) starts a fresh bucket.

    Memory is bounded by the number of configured tenants: callers pass only authenticated tenants.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[RateLimit, TokenBucket]] = {}

    def retry_after(self, tenant: str, limit: RateLimit) -> float:
        """0.0 when the submission may go ahead (a token is taken), else the seconds to wait."""
        if limit.per_second <= 0:
            return 0.0
        now = self._clock()
        held = self._buckets.get(tenant)
        if held is None or held[0] != limit:
            held = (limit, TokenBucket.full(limit, now))
            self._buckets[tenant] = held
        return held[1].take(now)

    def check(self, tenant: str, limit: RateLimit) -> None:
        """Raises ResourceExhausted with the retry delay when the tenant is over its rate."""
        wait = self.retry_after(tenant, limit)
        if wait > 0:
            raise ResourceExhausted(
                f"tenant {tenant!r} is over its submission rate ({limit.per_second:g}/s, burst {max(1, limit.burst)}); "
                f"retry in {wait:.2f}s",
                retry_after_seconds=wait,
            )

    def forget(self, keep: set[str]) -> None:
        """Drops buckets of tenants no longer configured (after a reload)."""
        for name in set(self._buckets) - keep:
            del self._buckets[name]
