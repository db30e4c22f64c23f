"""Log streams and exec against the simulator's kubelet (real processes) over HTTPS and WebSocket.

The log tests run on both protocols (`BOTH_PROTOCOLS`): HTTP/2 streams when the simulator offers h2 in ALPN
(as kube-apiserver does), HTTP/1.1 when it offers only that; each checks that its log went the way it names."""

from __future__ import annotations

import asyncio
import gc
import types
from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.clusters import kubeapi as k
from gateway.clusters.kubeapi import ClusterClient, EventType, WatchTarget
from gateway.credentials.base import Endpoint
from gateway.credentials.static import StaticProvider
from gateway.sim.cluster import SimCluster, node_side_available
from gateway.sim.config import NodeSpec, SimClusterSpec

NS = "default"
NODE = NodeSpec(name="n1", allocatable={"cpu": "8", "memory": "16Gi", "pods": "110"})


# The simulator offers h2 (the client then follows logs over HTTP/2) or HTTP/1.1 only (the client falls back).
BOTH_PROTOCOLS = pytest.mark.parametrize("sim", ["h2", "http/1.1"], indirect=True)


@pytest.fixture
async def sim(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[SimCluster]:
    assert node_side_available(), "the simulator's kubelet is needed for logs and exec"
    protocol = getattr(request, "param", "h2")
    spec = SimClusterSpec(name="kube-s", nodes=(NODE,), runtime={"isolation": False}, http2=protocol == "h2")
    cluster = SimCluster(spec, kubeconfig_dir=tmp_path)
    await cluster.start()
    try:
        yield cluster
        if hasattr(request, "param"):  # a log test on both protocols: its logs went the way it names
            assert (cluster.http2_connections_accepted > 0) == (protocol == "h2")
    finally:
        await cluster.stop()


@pytest.fixture
async def api(sim: SimCluster) -> AsyncIterator[ClusterClient]:
    endpoint = Endpoint(server=sim.url, ca_data=sim.ca_pem)
    async with ClusterClient(StaticProvider(sim.name, endpoint, sim.admin_token)) as client:
        yield client


def python_pod(name: str, script: str, *containers: dict[str, Any]) -> dict[str, Any]:
    main = {"name": "main", "image": "python:3.12", "command": ["python3", "-u", "-c", script]}
    return {"metadata": {"name": name}, "spec": {"restartPolicy": "Never", "containers": [main, *containers]}}


async def wait_for(api: ClusterClient, name: str, phases: set[str]) -> dict[str, Any]:
    """The pod once its phase is one of `phases`, followed through a watch."""
    target = WatchTarget(resource=k.PODS, namespace=NS, field_selector=f"metadata.name={name}")
    async with asyncio.timeout(30), aclosing(k.list_then_watch(api, target)) as events:
        async for event in events:
            for obj in event.objects if event.type is EventType.RELISTED else (event.object,):
                if reached(obj.get("status", {}), phases):
                    return obj
    raise AssertionError("unreachable")


def reached(status: dict[str, Any], phases: set[str]) -> bool:
    """In one of `phases`; for Running, with every container started (exec needs its container up)."""
    phase = status.get("phase")
    if phase == "Running" and "Running" in phases:
        return all("running" in c.get("state", {}) for c in status.get("containerStatuses", []))
    return phase in phases


async def collect(lines: AsyncIterator[str]) -> list[str]:
    async with asyncio.timeout(30):
        return [line async for line in lines]


@BOTH_PROTOCOLS
async def test_logs_of_a_finished_pod(api: ClusterClient) -> None:
    await api.create_pod(NS, python_pod("done", "for i in range(5): print('line', i)"))
    await wait_for(api, "done", {"Succeeded"})
    assert await collect(api.stream_logs(NS, "done")) == [f"line {i}" for i in range(5)]
    assert await collect(api.stream_logs(NS, "done", "main", tail_lines=2)) == ["line 3", "line 4"]


@BOTH_PROTOCOLS
async def test_follow_streams_lines_as_they_are_written_and_ends_with_the_container(api: ClusterClient) -> None:
    script = "import time\nfor i in range(4):\n    print('tick', i)\n    time.sleep(0.3)"
    await api.create_pod(NS, python_pod("ticker", script))
    await wait_for(api, "ticker", {"Running", "Succeeded"})
    loop = asyncio.get_running_loop()
    arrivals: list[tuple[float, str]] = []
    async with asyncio.timeout(30):
        async for line in api.stream_logs(NS, "ticker", follow=True):
            arrivals.append((loop.time(), line))
    assert [line for _, line in arrivals] == [f"tick {i}" for i in range(4)]
    assert arrivals[-1][0] - arrivals[0][0] >= 0.5, "lines must arrive live, not all at the end"


@BOTH_PROTOCOLS
async def test_resume_with_timestamps_and_since_time_drops_nothing_new(api: ClusterClient) -> None:
    script = "import time\nfor i in range(6):\n    print('n', i)\n    time.sleep(1.1 if i == 2 else 0.01)"
    await api.create_pod(NS, python_pod("resume", script))
    await wait_for(api, "resume", {"Succeeded"})
    stamped = await collect(api.stream_logs(NS, "resume", timestamps=True))
    times = [datetime.fromisoformat(line.split(" ", 1)[0].replace("Z", "+00:00")) for line in stamped]
    assert [line.split(" ", 1)[1] for line in stamped] == [f"n {i}" for i in range(6)]
    since = times[3].replace(microsecond=0)  # sinceTime has whole seconds, so resumers drop repeats themselves
    assert times[2] < since  # the 1.1 s pause puts line 2 before line 3's whole second
    resumed = await collect(api.stream_logs(NS, "resume", timestamps=True, since_time=since))
    assert resumed == stamped[3:]


@BOTH_PROTOCOLS
async def test_lines_that_arrive_together_come_in_one_batch(api: ClusterClient) -> None:
    await api.create_pod(NS, python_pod("burst", "print('\\n'.join(str(i) for i in range(1000)))"))
    await wait_for(api, "burst", {"Succeeded"})
    async with aclosing(api.stream_log_batches(NS, "burst")) as batches:
        sizes = [len(batch) async for batch in batches]
    assert sum(sizes) == 1000 and len(sizes) < 100


@BOTH_PROTOCOLS
async def test_a_cut_log_stream_raises_api_unreachable(api: ClusterClient, sim: SimCluster) -> None:
    await api.create_pod(
        NS, python_pod("long", "import time\nwhile True:\n    print('x', flush=True)\n    time.sleep(0.1)")
    )
    await wait_for(api, "long", {"Running"})
    stream = api.stream_logs(NS, "long", follow=True)
    with pytest.raises(k.ApiUnreachable):
        async with asyncio.timeout(30), aclosing(stream):
            async for _ in stream:
                await sim.outage()
    await sim.restore()
    await api.delete_pod(NS, "long", grace_seconds=0)


@BOTH_PROTOCOLS
async def test_logs_of_an_unknown_container_are_bad_request(api: ClusterClient) -> None:
    await api.create_pod(NS, python_pod("one", "print(1)"))
    await wait_for(api, "one", {"Succeeded"})
    with pytest.raises(k.BadRequest, match="nope"):
        await collect(api.stream_logs(NS, "one", "nope"))


@pytest.mark.parametrize("protocols", [k.request.EXEC_PROTOCOLS, ("v4.channel.k8s.io",)], ids=["v5", "v4-fallback"])
async def test_exec_returns_exit_code_stdout_and_stderr(api: ClusterClient, protocols: tuple[str, ...]) -> None:
    sleeper = {"name": "side", "image": "busybox", "command": ["sh", "-c", "sleep 30"]}
    await api.create_pod(NS, python_pod("ex", "import time; time.sleep(30)", sleeper))
    await wait_for(api, "ex", {"Running"})
    result = await api.exec(NS, "ex", "side", ["sh", "-c", "echo out; echo err >&2; exit 3"], protocols=protocols)
    assert result == (3, b"out\n", b"err\n")
    ok = await api.exec(NS, "ex", "main", ["python3", "-c", "print('{\"v\": 42}', end='')"], protocols=protocols)
    assert ok == k.ExecResult(0, b'{"v": 42}', b"")
    await api.delete_pod(NS, "ex", grace_seconds=0)


async def test_exec_in_a_missing_pod_is_not_found(api: ClusterClient) -> None:
    with pytest.raises(k.NotFound):
        await api.exec(NS, "ghost", "main", ["true"])


@BOTH_PROTOCOLS
async def test_a_silent_followed_log_raises_stream_silent_after_its_inactivity_limit(sim: SimCluster) -> None:
    endpoint = Endpoint(server=sim.url, ca_data=sim.ca_pem)
    provider = StaticProvider(sim.name, endpoint, sim.admin_token)
    async with ClusterClient(provider, timeouts=k.Timeouts(log_inactivity=0.5)) as api:
        await api.create_pod(NS, python_pod("quiet", "import time\nprint('hello')\ntime.sleep(30)"))
        await wait_for(api, "quiet", {"Running"})
        seen: list[str] = []
        with pytest.raises(k.StreamSilent, match=r"no data for 0\.5s"):
            async with asyncio.timeout(10):
                async for line in api.stream_logs(NS, "quiet", follow=True):
                    seen.append(line)
        assert seen == ["hello"]
        await api.delete_pod(NS, "quiet", grace_seconds=0)


SIM_CODE = str(Path(__file__).resolve().parents[2] / "gateway" / "sim")


def _holds(value: object, marker: str) -> bool:
    if isinstance(value, bytes | bytearray):
        return marker.encode() in value
    if isinstance(value, str):
        return marker in value
    if isinstance(value, list | tuple):
        return any(_holds(item, marker) for item in value)
    return False


def generators_holding(marker: str) -> list[str]:
    """The gateway's suspended async generators (any level of the log path) whose frames still hold `marker`'s
    line; the simulator's own, serving the log in this process, are not the gateway's memory."""
    found = []
    for obj in gc.get_objects():
        if isinstance(obj, types.AsyncGeneratorType) and obj.ag_frame is not None and SIM_CODE not in obj.ag_code.co_filename:
            found += [f"{obj.ag_code.co_qualname}:{name}" for name, v in obj.ag_frame.f_locals.items() if _holds(v, marker)]
    return found


@BOTH_PROTOCOLS
async def test_a_followed_log_gone_quiet_holds_nothing_of_its_last_line(api: ClusterClient) -> None:
    """Thousands of followed logs are mostly silent, for hours; a line can be 16 KiB: no level of the log path
    (the body's chunks, the line splitter's batches, the decoded lines) may keep the last one until the next."""
    marker = "quiet-marker-"
    script = f"import time\nprint({marker!r} + 'x' * 12000, flush=True)\ntime.sleep(30)"
    await api.create_pod(NS, python_pod("quiet", script))
    await wait_for(api, "quiet", {"Running"})
    lines = api.stream_logs(NS, "quiet", follow=True, timestamps=True)
    async with aclosing(lines):
        async with asyncio.timeout(30):  # bounds a failure only
            line = await anext(lines)
        assert marker in line
        del line
        waiting = asyncio.create_task(anext(lines))  # the stream open and silent: every level waits for more
        try:
            await asyncio.sleep(0.3)
            assert not waiting.done()
            assert generators_holding(marker) == []
        finally:
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)
    await api.delete_pod(NS, "quiet", grace_seconds=0)
