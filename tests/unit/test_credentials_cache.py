"""TokenCache policy: single flight, refresh ahead of expiry, force refresh, failure backoff, no secret leaks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from gateway.credentials.base import BearerToken, CredentialError
from gateway.credentials.cache import TokenCache
from gateway.credentials.eks import TOKEN_VALIDITY, EksProvider


class Issuer:
    """Issues numbered tokens valid for `lifetime` seconds of the fake clock; counts fetches."""

    def __init__(self, lifetime: float = 100.0) -> None:
        self.now = 1_000.0
        self.lifetime = lifetime
        self.fetches = 0
        self.fail_with: Exception | None = None
        self.gate = asyncio.Event()
        self.gate.set()

    def clock(self) -> float:
        return self.now

    async def fetch(self) -> BearerToken:
        self.fetches += 1
        await self.gate.wait()
        await asyncio.sleep(0)
        if self.fail_with is not None:
            raise self.fail_with
        return BearerToken(value=f"t{self.fetches}", expires_at=datetime.fromtimestamp(self.now + self.lifetime, UTC))

    def cache(self, **kwargs: float) -> TokenCache:
        return TokenCache("c1", self.fetch, clock=self.clock, refresh_margin=kwargs.pop("margin", 20.0), **kwargs)


async def test_hundred_concurrent_callers_cause_one_fetch() -> None:
    issuer = Issuer()
    cache = issuer.cache()
    issuer.gate.clear()
    waiters = [asyncio.create_task(cache.get()) for _ in range(100)]
    await asyncio.sleep(0.01)
    issuer.gate.set()
    tokens = await asyncio.gather(*waiters)
    assert {t.value for t in tokens} == {"t1"}
    assert issuer.fetches == 1


@pytest.mark.parametrize(
    ("advance", "served", "fetches_after"),
    [
        (0.0, "t1", 1),  # fresh: from memory
        (79.0, "t1", 1),  # margin is min(20, 100/4) = 20: still fresh at 79 s
        (85.0, "t1", 2),  # in the margin: old token served, one background refresh
        (99.0, "t2", 2),  # past the usable point (2 s before expiry): wait for the successor
        (150.0, "t2", 2),  # expired
    ],
)
async def test_refresh_ahead_of_expiry(advance: float, served: str, fetches_after: int) -> None:
    issuer = Issuer()
    cache = issuer.cache()
    await cache.get()
    issuer.now += advance
    assert (await cache.get()).value == served
    await asyncio.sleep(0.01)  # let a background refresh finish
    assert issuer.fetches == fetches_after
    await cache.close()


async def test_background_refresh_is_single_flight_and_replaces_the_token() -> None:
    issuer = Issuer()
    cache = issuer.cache()
    await cache.get()
    issuer.now += 85
    issuer.gate.clear()
    served = await asyncio.gather(*(cache.get() for _ in range(100)))
    assert {t.value for t in served} == {"t1"}
    issuer.gate.set()
    await asyncio.sleep(0.01)
    assert (await cache.get()).value == "t2"
    assert issuer.fetches == 2


async def test_short_lifetime_scales_the_margin() -> None:
    issuer = Issuer(lifetime=4.0)
    cache = issuer.cache(margin=300.0)
    await cache.get()
    issuer.now += 2.0  # margin is 4/4 = 1 s: still fresh
    assert (await cache.get()).value == "t1"
    assert issuer.fetches == 1


async def test_force_refresh_after_a_401_is_single_flight() -> None:
    issuer = Issuer()
    cache = issuer.cache(min_force_interval=2.0)
    await cache.get()
    assert (await cache.get(force_refresh=True)).value == "t1"  # fetched just now: not again
    issuer.now += 3
    issuer.gate.clear()
    forced = [asyncio.create_task(cache.get(force_refresh=True)) for _ in range(100)]
    await asyncio.sleep(0.01)
    issuer.gate.set()
    assert {t.value for t in await asyncio.gather(*forced)} == {"t2"}
    assert issuer.fetches == 2


async def test_failure_is_shared_then_backed_off_then_retried() -> None:
    issuer = Issuer()
    issuer.fail_with = CredentialError("cluster 'c1': token endpoint refused the client")
    cache = issuer.cache(failure_backoff=5.0)
    results = await asyncio.gather(*(cache.get() for _ in range(10)), return_exceptions=True)
    assert all(isinstance(r, CredentialError) for r in results)
    assert issuer.fetches == 1
    with pytest.raises(CredentialError, match="refused the client"):
        await cache.get()
    assert issuer.fetches == 1  # within the backoff: no new attempt
    issuer.now += 6
    issuer.fail_with = None
    assert (await cache.get()).value == "t2"


async def test_untranslated_sdk_error_never_reaches_the_message(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    issuer = Issuer()
    issuer.fail_with = RuntimeError("secret=CANARY-cache-9f3a")
    cache = issuer.cache()
    with pytest.raises(CredentialError) as caught:
        await cache.get()
    assert "CANARY" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert "CANARY" not in caplog.text
    assert "RuntimeError" in str(caught.value)


async def test_static_tokens_are_never_refreshed() -> None:
    fetches = 0

    async def fetch() -> BearerToken:
        nonlocal fetches
        fetches += 1
        return BearerToken(value="static")

    cache = TokenCache("c1", fetch)
    for _ in range(5):
        assert (await cache.get()).value == "static"
    assert fetches == 1
    assert "static" not in repr(await cache.get())


async def test_close_cancels_an_inflight_refresh_and_refuses_more() -> None:
    issuer = Issuer()
    cache = issuer.cache()
    issuer.gate.clear()
    waiter = asyncio.create_task(cache.get())
    await asyncio.sleep(0.01)
    await cache.close()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    with pytest.raises(CredentialError, match="closed"):
        await cache.get()


@pytest.mark.parametrize(("minutes", "refetched"), [(13.9, False), (14.1, True)])
async def test_eks_tokens_are_refreshed_at_14_of_their_15_minutes(minutes: float, refetched: bool) -> None:
    issuer = Issuer(lifetime=TOKEN_VALIDITY.total_seconds())
    cache = issuer.cache(margin=EksProvider.refresh_margin)
    await cache.get()
    issuer.now += minutes * 60
    assert (await cache.get()).value == "t1"  # still valid: served while the successor is fetched
    await asyncio.sleep(0.01)
    assert (issuer.fetches == 2) is refetched
    await cache.close()
