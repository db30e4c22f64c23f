"""The database stopped for 10 s under two replicas while pods run (docs/decisions/0021): a PostgreSQL server
of the test's own, really stopped (fast shutdown: transactions under way rolled back, connections closed,
new ones refused) and started again on the same port and data."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import grpc

from gateway._proto.podgate.v1 import dispatch_pb2, dispatch_pb2_grpc
from gateway.client.types import PodPhase
from tests.e2e.conftest import eventually
from tests.e2e.replica_world import (
    Watched,
    clients,
    finish_or_explain,
    follow,
    log_entries,
    numbered,
    overlapping,
    ownerships,
    replicas,
    shared_world,
    virtual_pod,
)
from tests.postgres import stoppable_server

OUTAGE_SECONDS = 10.0


async def test_the_database_stopped_for_10_s_loses_and_repeats_nothing(tmp_path: Path) -> None:
    """Both replicas lose their leases during the outage (3 s) and stop following; once the server is back
    they take new leases and claim the requests again. Every client reads each line once and the right
    XCom, one pod per request, and the replicas' logs show no request held by two leases at once."""
    lines, seconds, ids = 40, 20.0, [f"outage-{i}" for i in range(8)]
    async with contextlib.AsyncExitStack() as stack:
        server = await stack.enter_async_context(stoppable_server())
        url = (await server.create_database("podgate")).render_as_string(hide_password=False)
        _world, created = await stack.enter_async_context(shared_world(tmp_path, virtual=True))
        started = await replicas(stack, tmp_path, url, ["r0", "r1"], clusters=tmp_path / "virtual-clusters.yaml")
        addresses = [address for _, address in started]
        for i, request_id in enumerate(ids):  # request i owned by replica i % 2
            async with grpc.aio.insecure_channel(addresses[i % 2]) as channel:
                request = dispatch_pb2.SubmitPodRequest(pod=virtual_pod(request_id, lines, seconds))
                await dispatch_pb2_grpc.DispatchServiceStub(channel).SubmitPod(request, timeout=30)
        submitted_at = datetime.now(UTC)
        followers = clients(addresses, 2)
        for client in followers:
            stack.push_async_callback(client.close)
        watched = [Watched() for _ in ids]
        watchers = [asyncio.create_task(follow(followers[i % 2], rid, watched[i])) for i, rid in enumerate(ids)]
        await eventually(lambda: all(len(w.lines) >= 3 for w in watched), within=60)
        await server.stop()
        await asyncio.sleep(OUTAGE_SECONDS)
        await server.start()
        await finish_or_explain(watchers, watched, ids, url)
    for request_id, got in zip(ids, watched, strict=True):
        assert got.lines == numbered(lines), (request_id, got.lines)
        assert got.result is not None and got.result.result.phase is PodPhase.SUCCEEDED, (request_id, got.result)
        assert json.loads(got.result.result.xcom_json or "null") == {"rid": request_id}
    assert {rid: created[rid] for rid in ids} == dict.fromkeys(ids, 1)
    holds = [
        hold
        for i, name in enumerate(("r0", "r1"))
        for hold in ownerships(tmp_path / f"{name}.log", submitted=ids[i::2], submitted_at=submitted_at)
    ]
    assert not overlapping(holds), overlapping(holds)
    lost = [entry for name in ("r0", "r1") for entry in log_entries(tmp_path / f"{name}.log")
            if re.match(r"replica \S+ stops following", entry.get("message", ""))]  # fmt: skip
    assert {rid for entry in lost for rid in entry["request_ids"]} == set(ids), lost  # both lost all
    taken = {rid for hold in holds if hold.start is not None for rid in [hold.request_id]}
    assert taken == set(ids)  # and every request was claimed again after the outage
