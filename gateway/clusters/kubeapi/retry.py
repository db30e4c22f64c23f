"""When to try a failed call again, and after how long: pure functions of the error, the attempt and a
random draw the caller makes (so the same inputs always give the same answer, and tests pin the draw).

Every wait is "full jitter" (uniform over [0, backoff ceiling]): after an API-server blip, thousands of
watches, log followers and calls that failed in the same second must not come back in the same second.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gateway.clusters.kubeapi.errors import ApiUnreachable, KubeError, ServerError, TooManyRequests

NOT_RETRIED_5XX = frozenset({501})  # Not Implemented will not become implemented

Draw = Callable[[], float]  # a uniform draw from [0, 1]: random.random in service, a constant in tests


def full_jitter(ceiling: float, draw: float) -> float:
    """A wait spread uniformly over [0, ceiling] by `draw` in [0, 1] (AWS "Exponential Backoff and
    Jitter", 2015: full jitter spreads a herd best for the least total wait)."""
    if not 0.0 <= draw <= 1.0:
        raise ValueError(f"draw must be within [0, 1], got {draw}")
    return ceiling * draw


def backoff_delay(backoff: Sequence[float], failures: int, draw: float) -> float:
    """The jittered wait after `failures` consecutive failures (from 1); past its end the last ceiling repeats."""
    if failures < 1 or not backoff:
        raise ValueError(f"need failures >= 1 and a backoff, got {failures} and {tuple(backoff)}")
    return full_jitter(backoff[min(failures, len(backoff)) - 1], draw)


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """`backoff[i]` is the wait after failed attempt i+1; so a call makes at most len(backoff)+1 attempts."""

    backoff: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 4.0)
    max_retry_after: float = 30.0  # a server asking for longer is answered with an error instead
    # No retry would start later than this after the first attempt: a caller with somewhere else to go
    # (a create that can fail over) gets its answer in bounded time, however the backoff adds up.
    budget: float = 10.0

    def __post_init__(self) -> None:
        if any(delay < 0 for delay in self.backoff):
            raise ValueError(f"backoff delays must be >= 0, got {self.backoff}")

    @property
    def attempts(self) -> int:
        return len(self.backoff) + 1


DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(backoff=())


@dataclass(frozen=True, kw_only=True)
class RetryDecision:
    retry: bool
    delay: float = 0.0
    why: str = ""


def decide(policy: RetryPolicy, error: KubeError, attempt: int, *, draw: float, elapsed: float = 0.0) -> RetryDecision:
    """See `_decide`; and no retry that would start past the policy's time budget (`elapsed` seconds since
    the first attempt), but for a 429, whose wait the server chose (bounded by max_retry_after)."""
    decision = _decide(policy, error, attempt, draw=draw)
    if decision.retry and not isinstance(error, TooManyRequests) and elapsed + decision.delay > policy.budget:
        return RetryDecision(retry=False, why=f"gave up after {elapsed:.1f}s (budget {policy.budget:.0f}s)")
    return decision


def _decide(policy: RetryPolicy, error: KubeError, attempt: int, *, draw: float) -> RetryDecision:
    """After failed attempt number `attempt` (from 1): retry, and after how many seconds?

    Retried: unreachable, 5xx (but 501), 429. Never: other 4xx. The wait is the attempt's backoff
    jittered by `draw`; a 429 waits its Retry-After plus that (at least what the server asks, and not
    all clients at the same instant: APF answers every throttled client with the same Retry-After).
    """
    if attempt >= policy.attempts:
        return RetryDecision(retry=False, why=f"gave up after {attempt} attempts")
    delay = backoff_delay(policy.backoff, attempt, draw)
    if isinstance(error, TooManyRequests):
        asked = error.retry_after or 0.0
        if asked > policy.max_retry_after:
            return RetryDecision(
                retry=False, why=f"server asks to wait {asked:.0f}s, over {policy.max_retry_after:.0f}s"
            )
        return RetryDecision(retry=True, delay=asked + delay, why="throttled (429)")
    if isinstance(error, ServerError) and error.status not in NOT_RETRIED_5XX:
        return RetryDecision(retry=True, delay=delay, why=f"server error {error.status}")
    if isinstance(error, ApiUnreachable):
        return RetryDecision(retry=True, delay=delay, why="unreachable")
    return RetryDecision(retry=False, why="not retryable")
