"""Settings reach every reader: the placement strategy the file names, and limits after a reload.

Both were bugs of the five-type configuration: `placement.strategy: bin-packing` was parsed but never
passed to placement, and the runner clipped log lines with the limits it got at start.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from gateway._proto.podgate.v1 import common_pb2, dispatch_pb2, dispatch_pb2_grpc
from gateway.app import Gateway, start_gateway
from gateway.placement.scoring import STRATEGIES
from gateway.sim.cluster import SimWorld
from tests.e2e.conftest import gateway_settings, virtual_world

CLIPPED = "[... clipped by the gateway]"


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[SimWorld]:
    async with virtual_world(tmp_path) as w:
        yield w


def pod(*, log_lines: str = "", padding: int = 0) -> dispatch_pb2.PodRequest:
    """A CPU pod any local cluster can take; `padding` bytes of annotation grow its manifest."""
    annotations = {"sim.podgate.io/duration": "0"}
    if log_lines:
        annotations["sim.podgate.io/log-lines"] = log_lines
    if padding:
        annotations["padding"] = "x" * padding
    container = {"name": "base", "image": "busybox", "command": ["true"],
                 "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}  # fmt: skip
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "reach", "annotations": annotations},
            "spec": {"containers": [container]}}  # fmt: skip
    return dispatch_pb2.PodRequest(
        request_id=f"reach-{uuid.uuid4().hex[:12]}",
        pod_json=json.dumps(body),
        placement=common_pb2.Placement(),
        xcom=dispatch_pb2.XcomOptions(mode=dispatch_pb2.XCOM_MODE_DISABLED),
    )


async def run(gateway: Gateway, request: dispatch_pb2.PodRequest) -> list[dispatch_pb2.PodEvent]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
        return [r.event async for r in stub.RunPod(dispatch_pb2.RunPodRequest(pod=request), timeout=60)]


async def placed_by(world: SimWorld, tmp_path: Path, strategy: str) -> tuple[str, str, str]:
    """(explained cluster, its reason, cluster the pod ran on) of a gateway whose file says `strategy`."""
    settings = gateway_settings(tmp_path, {"placement": {"strategy": strategy}})
    gateway = await start_gateway(settings)
    try:
        assert gateway.problems == []
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
            explained = await stub.ExplainPlacement(dispatch_pb2.ExplainPlacementRequest(pod=pod()), timeout=30)
        events = await run(gateway, pod())
    finally:
        await gateway.stop()
    (placed,) = [e.placed.cluster for e in events if e.WhichOneof("event") == "placed"]
    return explained.decision.cluster, explained.decision.reason, placed


async def test_the_placement_strategy_of_the_settings_decides_where_pods_go(world: SimWorld, tmp_path: Path) -> None:
    outcomes = {strategy: await placed_by(world, tmp_path, strategy) for strategy in STRATEGIES}
    for strategy, (explained, reason, placed) in outcomes.items():
        assert f"({strategy})" in reason, reason
        assert placed == explained, (strategy, outcomes)
    assert outcomes["least-loaded"][0] != outcomes["bin-packing"][0], outcomes


def log_texts(events: list[dispatch_pb2.PodEvent]) -> list[str]:
    return [e.log.text for e in events if e.WhichOneof("event") == "log"]


async def refused_code(gateway: Gateway, request: dispatch_pb2.PodRequest) -> Any:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await run(gateway, request)
    return caught.value.code()


async def test_reloaded_limits_reach_validation_and_log_clipping_alike(world: SimWorld, tmp_path: Path) -> None:
    long_line = "é" * 3000  # 6000 bytes
    settings = gateway_settings(tmp_path)
    gateway = await start_gateway(settings)
    try:
        assert log_texts(await run(gateway, pod(log_lines=long_line + "\n"))) == [long_line]
        assert (await run(gateway, pod(padding=100_000)))[-1].result.phase == dispatch_pb2.POD_PHASE_SUCCEEDED

        tighter = replace(settings.limits, log_line_bytes=1024, manifest_bytes=64 * 1024)
        assert gateway.reload(replace(settings, limits=tighter)) == []

        assert await refused_code(gateway, pod(padding=100_000)) == grpc.StatusCode.INVALID_ARGUMENT
        (clipped,) = log_texts(await run(gateway, pod(log_lines=long_line + "\n")))
        assert clipped.endswith(CLIPPED) and len(clipped.encode()) <= 1024
    finally:
        await gateway.stop()


def _synchronous(conn: Any) -> int:
    return int(conn.exec_driver_sql("PRAGMA synchronous").scalar())


@pytest.mark.parametrize(("setting", "pragma"), [("normal", 1), ("full", 2)])
async def test_sqlite_synchronous_of_the_settings_is_on_every_store_connection(
    world: SimWorld, tmp_path: Path, setting: str, pragma: int
) -> None:
    """`database.sqlite_synchronous` reaches SQLite: read back from the writer's connection and a read
    connection of the gateway's store (SQLite's answer: 1 NORMAL, 2 FULL), and shown where the store is
    described at start (docs/decisions/0032)."""
    settings = gateway_settings(tmp_path, {"database": {"sqlite_synchronous": setting}})
    assert f"synchronous={setting}" in settings.database.describe()
    gateway = await start_gateway(settings)
    try:
        engines = gateway.store._engines
        assert await engines.writer.run(_synchronous) == pragma
        async with engines.reading() as conn:
            assert await conn.run_sync(_synchronous) == pragma
    finally:
        await gateway.stop()
