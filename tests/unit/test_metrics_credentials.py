"""Credential refreshes and failures are counted per cluster by the token cache every minting provider uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.credentials.base import BearerToken, CredentialError
from gateway.credentials.cache import TokenCache
from gateway.observability import metrics


def refreshes(cluster: str, outcome: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "podgate_credential_refreshes_total", {"cluster": cluster, "outcome": outcome}
    )
    return value or 0.0


async def test_refreshes_and_failures_are_counted() -> None:
    results: list[BearerToken | Exception] = [
        BearerToken(value="t1", expires_at=datetime.now(UTC) + timedelta(hours=1)),
        CredentialError("cluster 'm1': the issuer said no"),
        RuntimeError("an SDK error we did not translate"),
    ]

    async def fetch() -> BearerToken:
        result = results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    cache = TokenCache("m1", fetch, failure_backoff=0.0, min_force_interval=0.0)
    ok, failed = refreshes("m1", "ok"), refreshes("m1", "failure")
    assert (await cache.get()).value == "t1"
    assert (await cache.get()).value == "t1"  # from memory: no fetch, nothing counted
    for _ in range(2):
        with pytest.raises(CredentialError):
            await cache.get(force_refresh=True)
    await cache.close()
    assert refreshes("m1", "ok") == ok + 1
    assert refreshes("m1", "failure") == failed + 2
