"""Token buckets on a stepped clock: burst, refill, the retry delay, per-tenant isolation, reloads."""

from __future__ import annotations

import pytest

from gateway.errors import ResourceExhausted
from gateway.policy.ratelimit import RateLimiter
from gateway.policy.tenants import RateLimit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("limit", "steps", "expected"),
    [
        # (time advance before each attempt) -> retry_after of each attempt
        (RateLimit(per_second=1, burst=3), [0, 0, 0, 0], [0, 0, 0, 1.0]),
        (RateLimit(per_second=2, burst=1), [0, 0, 0.25, 0.25], [0, 0.5, 0.25, 0]),
        (RateLimit(per_second=0.5, burst=1), [0, 1, 1], [0, 1.0, 0]),
        (RateLimit(per_second=10, burst=2), [0, 0, 0, 10, 0, 0], [0, 0, 0.1, 0, 0, 0.1]),  # refill caps at burst
        (RateLimit(per_second=0, burst=1), [0, 0, 0], [0, 0, 0]),  # unlimited
        (RateLimit(per_second=1, burst=0), [0, 0], [0, 1.0]),  # burst at least 1
    ],
)
def test_bucket(limit: RateLimit, steps: list[float], expected: list[float]) -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    got = []
    for step in steps:
        clock.now += step
        got.append(round(limiter.retry_after("t", limit), 6))
    assert got == expected


def test_tenants_have_their_own_buckets_and_a_denial_takes_no_token() -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    limit = RateLimit(per_second=1, burst=1)
    assert limiter.retry_after("a", limit) == 0
    assert limiter.retry_after("b", limit) == 0
    assert limiter.retry_after("a", limit) == 1.0
    clock.now += 0.5
    assert limiter.retry_after("a", limit) == 0.5  # the refused attempt above did not cost a token
    clock.now += 0.5
    assert limiter.retry_after("a", limit) == 0


def test_check_raises_resource_exhausted_with_retry_info() -> None:
    limiter = RateLimiter(Clock())
    limit = RateLimit(per_second=4, burst=1)
    limiter.check("ml", limit)
    with pytest.raises(ResourceExhausted, match=r"tenant 'ml' is over its submission rate \(4/s, burst 1\)") as e:
        limiter.check("ml", limit)
    assert e.value.retry_after_seconds == pytest.approx(0.25)


def test_a_changed_limit_starts_a_fresh_bucket_and_forget_drops_old_tenants() -> None:
    limiter = RateLimiter(Clock())
    assert limiter.retry_after("t", RateLimit(per_second=1, burst=1)) == 0
    assert limiter.retry_after("t", RateLimit(per_second=1, burst=1)) > 0
    assert limiter.retry_after("t", RateLimit(per_second=1, burst=5)) == 0
    limiter.forget(keep=set())
    assert limiter.retry_after("t", RateLimit(per_second=1, burst=5)) == 0


def test_a_clock_going_backwards_refills_nothing() -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    limit = RateLimit(per_second=1, burst=1)
    limiter.retry_after("t", limit)
    clock.now -= 50
    assert limiter.retry_after("t", limit) == 1.0
