"""CachingProvider's endpoint: looked up once, again only when a caller reports the current one stale (single
flight for concurrent callers, at most once per interval), never for a report about an older one."""

from __future__ import annotations

import asyncio

from gateway.credentials.base import BearerToken, Endpoint
from gateway.credentials.provider import CachingProvider


class Counting(CachingProvider):
    """A provider whose every lookup returns a new endpoint (a new port each time)."""

    endpoint_refresh_interval = 0.2

    def __init__(self) -> None:
        super().__init__("c")
        self.lookups = 0

    async def _fetch_endpoint(self) -> Endpoint:
        self.lookups += 1
        await asyncio.sleep(0.01)
        return Endpoint(server=f"https://127.0.0.1:{6000 + self.lookups}")

    async def _fetch_token(self) -> BearerToken:
        return BearerToken(value="t")


async def test_concurrent_reports_of_the_same_stale_endpoint_cause_one_lookup() -> None:
    provider = Counting()
    first = await provider.endpoint()
    assert await provider.endpoint() is first and provider.lookups == 1
    await asyncio.sleep(0.25)
    fresh = await asyncio.gather(*(provider.endpoint(stale=first) for _ in range(100)))
    assert provider.lookups == 2 and {e.server for e in fresh} == {"https://127.0.0.1:6002"}
    assert await provider.endpoint(stale=first) is fresh[0]  # a report about the old one: nothing to do
    assert provider.lookups == 2
    await provider.close()


async def test_a_stale_report_within_the_interval_is_not_looked_up_again() -> None:
    provider = Counting()
    first = await provider.endpoint()
    assert await provider.endpoint(stale=first) is first  # just looked up: a persistent failure is not a storm
    await asyncio.sleep(0.25)
    assert (await provider.endpoint(stale=first)).server == "https://127.0.0.1:6002"
    await provider.close()
