"""When to try a failed call again, and after how long: a pure function of the error and the attempt."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.clusters.kubeapi.errors import ApiUnreachable, KubeError, ServerError, TooManyRequests

NOT_RETRIED_5XX = frozenset({501})  # Not Implemented will not become implemented


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """`backoff[i]` is the wait after failed attempt i+1; so a call makes at most len(backoff)+1 attempts."""

    backoff: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 4.0)
    max_retry_after: float = 30.0  # a server asking for longer is answered with an error instead

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


def decide(policy: RetryPolicy, error: KubeError, attempt: int) -> RetryDecision:
    """After failed attempt number `attempt` (from 1): retry, and after how many seconds?

    Retried: unreachable, 5xx (but 501), 429 (waiting at least its Retry-After). Never: other 4xx.
    """
    if attempt >= policy.attempts:
        return RetryDecision(retry=False, why=f"gave up after {attempt} attempts")
    delay = policy.backoff[attempt - 1]
    if isinstance(error, TooManyRequests):
        wait = max(delay, error.retry_after or 0.0)
        if wait > policy.max_retry_after:
            return RetryDecision(
                retry=False, why=f"server asks to wait {wait:.0f}s, over {policy.max_retry_after:.0f}s"
            )
        return RetryDecision(retry=True, delay=wait, why="throttled (429)")
    if isinstance(error, ServerError) and error.status not in NOT_RETRIED_5XX:
        return RetryDecision(retry=True, delay=delay, why=f"server error {error.status}")
    if isinstance(error, ApiUnreachable):
        return RetryDecision(retry=True, delay=delay, why="unreachable")
    return RetryDecision(retry=False, why="not retryable")
