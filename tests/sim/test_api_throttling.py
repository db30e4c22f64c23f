"""The simulator's throttling (gateway/sim/faults.py): a kube-apiserver's max-in-flight limit on short requests,
429s with Retry-After for the next requests of one kind, and the peaks in flight that benches and tests read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateway.sim.cluster import SimWorld
from gateway.sim.config import NodeSpec, SimClusterSpec, SimConfig
from gateway.sim.errors import TooManyRequests
from gateway.sim.faults import Faults

SPEC = SimClusterSpec(name="busy", nodes=(NodeSpec("n1"),))


def test_short_requests_over_the_limit_are_refused_and_long_running_ones_are_not_counted() -> None:
    faults = Faults(max_in_flight=2, retry_after=3)
    with faults.serving("list", "events", ""), faults.serving("get", "pods", ""):
        with faults.serving("list", "events", "") as refused:
            assert isinstance(refused, TooManyRequests) and refused.retry_after == 3
            assert faults.in_flight[("list", "events")] == 1  # a refused request is not counted
        with faults.serving("watch", "pods", ""), faults.serving("get", "pods/log", "log"):
            assert faults.short_in_flight == 2
    assert (faults.peak("list", "events"), faults.peak("get", "pods"), faults.peak("watch", "pods")) == (1, 1, 1)
    assert faults.peak_short_in_flight == 2 and faults.short_in_flight == 0
    with faults.serving("list", "events", ""):
        faults.reset_counters()
        assert faults.peak("list", "events") == 1 and faults.peak("get", "pods") == 0  # from what is served now
    faults.configure(max_in_flight=0)
    with faults.serving("a", "x", ""), faults.serving("b", "x", ""), faults.serving("c", "x", ""):
        assert faults.short_in_flight == 3  # no limit


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[SimWorld]:
    async with SimWorld(SimConfig((SPEC,)), kubeconfig_dir=tmp_path, node_side=False) as running:
        yield running


async def test_throttled_requests_are_answered_429_with_retry_after_then_served(world: SimWorld) -> None:
    cluster = world.clusters["busy"]
    cluster.set_faults(retry_after=2)
    cluster.throttle_requests("list", "events", 2)
    connector = aiohttp.TCPConnector(ssl=cluster.ssl_context())
    headers = {"Authorization": f"Bearer {cluster.admin_token}"}
    async with aiohttp.ClientSession(cluster.url, connector=connector, headers=headers) as http:
        assert (await http.get("/api/v1/namespaces/default/pods")).status == 200  # another kind: served
        for _ in range(2):
            response = await http.get("/api/v1/namespaces/default/events")
            assert (response.status, response.headers.get("Retry-After")) == (429, "2")
            assert (await response.json())["reason"] == "TooManyRequests"
        assert (await http.get("/api/v1/namespaces/default/events")).status == 200
    snapshot = cluster.faults.snapshot()
    assert snapshot["answered429"] == 2
    assert {"verb": "list", "resource": "events", "peak": 1} in snapshot["peaks"]
    async with aiohttp.ClientSession(world.control.url) as ctl:
        auth = {"Authorization": f"Bearer {world.control.token}"}
        response = await ctl.patch("/clusters/busy/faults", json={"maxInFlight": 40}, headers=auth)
        assert (await response.json())["maxInFlight"] == 40
        bad = await ctl.patch("/clusters/busy/faults", json={"maxInFlight": -1}, headers=auth)
        assert bad.status == 400
    assert cluster.faults.max_in_flight == 40


async def test_short_requests_beyond_max_in_flight_are_answered_429_while_a_watch_is_not_counted(world: SimWorld) -> None:
    """Four lists at once against a limit of two, each held 2 s (latency, counted in flight from arrival)."""
    cluster = world.clusters["busy"]
    connector = aiohttp.TCPConnector(ssl=cluster.ssl_context())
    headers = {"Authorization": f"Bearer {cluster.admin_token}"}
    async with aiohttp.ClientSession(cluster.url, connector=connector, headers=headers) as http:
        watch = await http.get("/api/v1/namespaces/default/pods", params={"watch": "1"})  # long-running: not counted
        cluster.set_faults(max_in_flight=2, latency=2.0)
        answers = await asyncio.gather(*(http.get("/api/v1/namespaces/default/events") for _ in range(4)))
        watch.close()
    assert sorted(a.status for a in answers) == [200, 200, 429, 429]
    assert cluster.faults.peak("list", "events") == 2 and cluster.faults.peak_short_in_flight == 2
