"""Several `podgate serve` replicas on one PostgreSQL database and one simulated world (docs/decisions/0021).

Real processes (a replica is killed with SIGKILL), real gRPC, a real PostgreSQL server, the simulator
in the test's process: every pod the replicas create is counted there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from gateway._proto.podgate.v1 import dispatch_pb2, dispatch_pb2_grpc
from gateway.client import NotFound
from gateway.client.types import PodPhase
from gateway.policy.identity import new_token
from tests.e2e.conftest import eventually, pod_request
from tests.e2e.replica_world import (
    ResumeCounter,
    Watched,
    clients,
    finish_or_explain,
    follow,
    numbered,
    replica,
    replicas,
    shared_world,
    taken_over,
    virtual_pod,
)
from tests.postgres import PostgresServer, database_name

LINES = 8
# The 100-pod test's lease: at 3 s, renewals on a 2-core machine loaded by other test runs came late and the
# replicas lost their leases to each other over and over while the pods were being submitted.
KILL_LEASE_SECONDS = 5.0


async def submit(address: str, request_id: str, lines: int = LINES, token: str = "") -> None:
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    async with grpc.aio.insecure_channel(address) as channel:
        request = dispatch_pb2.SubmitPodRequest(pod=pod_request(pod_code(request_id, lines), request_id=request_id))
        await dispatch_pb2_grpc.DispatchServiceStub(channel).SubmitPod(request, metadata=metadata, timeout=30)


def pod_code(request_id: str, lines: int = LINES) -> str:
    return (
        "import json, time\n"
        f"for i in range({lines}):\n"
        "    print(f'line {i}', flush=True)\n"
        "    time.sleep(0.7)\n"
        f"open('/airflow/xcom/return.json', 'w').write(json.dumps({{'rid': {request_id!r}}}))\n"
    )


async def watch(addresses: list[str], request_id: str, first: int) -> tuple[list[str], dispatch_pb2.PodResult, int]:
    """Streams from replica `first`; when it dies, resumes from the last cursor on the next one.
    Returns the log lines, the result and how many times it switched replicas."""
    cursor, lines, switches, at = "", [], 0, first
    while True:
        try:
            async with grpc.aio.insecure_channel(addresses[at]) as channel:
                stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
                request = dispatch_pb2.WatchPodRequest(request_id=request_id, cursor=cursor)
                async for response in stub.WatchPod(request, timeout=120):
                    event = response.event
                    cursor = event.cursor
                    kind = event.WhichOneof("event")
                    if kind == "log":
                        lines.append(event.log.text)
                    elif kind == "result":
                        return lines, event.result, switches
        except grpc.aio.AioRpcError as e:
            if e.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            at = (at + 1) % len(addresses)
            switches += 1
            await asyncio.sleep(0.2)


@pytest.fixture
async def database_url(postgres_server: PostgresServer) -> AsyncIterator[str]:
    async with postgres_server.database(database_name()) as url:
        yield url.render_as_string(hide_password=False)


async def test_sigkill_of_one_of_three_replicas_loses_and_repeats_nothing(tmp_path: Path, database_url: str) -> None:
    """100 pods in flight on 3 replicas, request i owned by the replica it was submitted to (i % 3); ten
    clients, each given all three addresses, follow ten requests each, their streams spread over the replicas.
    SIGKILL r0: r1 and r2 take its 34 requests over, and the streams that were on r0 resume on another
    replica from their cursors. Every client reads every line once and the right XCom; one pod per request."""
    pods, lines, seconds = 100, 24, 12.0
    ids = [f"ha-{i:03}" for i in range(pods)]
    resumed = ResumeCounter()
    logging.getLogger("gateway.client.client").addHandler(resumed)
    try:
        async with contextlib.AsyncExitStack() as stack:
            _world, created = await stack.enter_async_context(shared_world(tmp_path, virtual=True))
            started = await replicas(
                stack, tmp_path, database_url, ["r0", "r1", "r2"], clusters=tmp_path / "virtual-clusters.yaml",
                lease=KILL_LEASE_SECONDS,
            )  # fmt: skip
            victim, addresses = started[0][0], [address for _, address in started]
            followers = clients(addresses, 10)
            for client in followers:  # connecting now: by the time they watch, each reaches every replica
                stack.push_async_callback(client.close)
                with contextlib.suppress(NotFound):
                    await client.get_pod("warm-up")
            pacing = asyncio.Semaphore(10)  # a busy minute's arrivals, not 100 in the same millisecond
            await asyncio.gather(
                *(submit_virtual(addresses[i % 3], rid, lines, seconds, pacing) for i, rid in enumerate(ids))
            )
            watched = [Watched() for _ in ids]
            watchers = [
                asyncio.create_task(follow(followers[i % 10], rid, watched[i])) for i, rid in enumerate(ids)
            ]  # fmt: skip
            await eventually(lambda: all(len(w.lines) >= 2 for w in watched), within=60)  # all running, all streaming
            running = {rid for rid, got in zip(ids, watched, strict=True) if len(got.lines) < lines - 4}  # 2 s+ left
            victim.send_signal(signal.SIGKILL)
            await asyncio.to_thread(victim.wait)
            await finish_or_explain(watchers, watched, ids, database_url)
    finally:
        logging.getLogger("gateway.client.client").removeHandler(resumed)
    for request_id, got in zip(ids, watched, strict=True):
        assert got.lines == numbered(lines), (request_id, got.lines)
        assert got.result is not None and got.result.result.phase is PodPhase.SUCCEEDED, (request_id, got.result)
        assert json.loads(got.result.result.xcom_json or "null") == {"rid": request_id}
    assert {rid: created[rid] for rid in ids} == dict.fromkeys(ids, 1)
    # the streams that were on r0 resumed on another replica (round robin put 12 to 34 of them there)
    assert 0 < len(resumed.resumed) <= pods * 2 // 3, resumed.resumed
    # r0's requests still running when it died were taken over (on a loaded machine, the first pods may end
    # before the last start, and r1 and r2 may trade some requests too)
    in_flight = set(ids[0::3]) & running
    assert in_flight and in_flight <= set(taken_over(tmp_path / "r1.log") + taken_over(tmp_path / "r2.log"))


async def submit_virtual(
    address: str, request_id: str, lines: int, seconds: float, pacing: asyncio.Semaphore | None = None
) -> bool:
    async with pacing or contextlib.nullcontext(), grpc.aio.insecure_channel(address) as channel:
        request = dispatch_pb2.SubmitPodRequest(pod=virtual_pod(request_id, lines, seconds))
        reply = await dispatch_pb2_grpc.DispatchServiceStub(channel).SubmitPod(request, timeout=30)
        return bool(reply.created)


async def test_the_same_request_id_at_two_replicas_at_once_makes_one_pod(tmp_path: Path, database_url: str) -> None:
    """Ten request ids, each submitted to both replicas in the same instant (channels connected first, so
    the two submissions race in the database): one record and one pod each, created by one replica, and
    its stream the same complete stream at both."""
    ids, lines = [f"twice-{i}" for i in range(10)], 6
    async with contextlib.AsyncExitStack() as stack:
        _world, created = await stack.enter_async_context(shared_world(tmp_path, virtual=True))
        started = await replicas(
            stack, tmp_path, database_url, ["r0", "r1"], clusters=tmp_path / "virtual-clusters.yaml"
        )
        addresses = [address for _, address in started]
        channels = [await stack.enter_async_context(grpc.aio.insecure_channel(a)) for a in addresses]
        stubs = [dispatch_pb2_grpc.DispatchServiceStub(c) for c in channels]
        for stub in stubs:  # connected and warm: both submissions of an id leave together
            with contextlib.suppress(grpc.aio.AioRpcError):
                await stub.GetPod(dispatch_pb2.GetPodRequest(request_id="warm-up"), timeout=30)
        requests = [dispatch_pb2.SubmitPodRequest(pod=virtual_pod(rid, lines, 2)) for rid in ids]
        answers = await asyncio.gather(*(stub.SubmitPod(r, timeout=30) for r in requests for stub in stubs))
        followers = clients(addresses[:1], 1) + clients(addresses[1:], 1)
        for client in followers:
            stack.push_async_callback(client.close)
        watched = [Watched() for _ in range(2 * len(ids))]
        await asyncio.gather(
            *(follow(client, rid, watched[2 * i + j]) for i, rid in enumerate(ids) for j, client in enumerate(followers))
        )
    for i, rid in enumerate(ids):
        assert sorted(a.created for a in answers[2 * i : 2 * i + 2]) == [False, True], rid
        for got in watched[2 * i : 2 * i + 2]:
            assert got.lines == numbered(lines), (rid, got.lines)
            assert got.result is not None and json.loads(got.result.result.xcom_json or "null") == {"rid": rid}
    assert {rid: created[rid] for rid in ids} == dict.fromkeys(ids, 1)


async def test_a_paused_replica_does_not_act_as_owner_of_what_was_taken_over(
    tmp_path: Path, database_url: str
) -> None:
    """r0 runs four requests and is paused (SIGSTOP) past its lease: r1 takes them over. A cancel of one of
    them waits at r0 while it is stopped, so r0 meets it the moment it wakes (SIGCONT), racing its own
    lease loop: it must pass the cancel to the owner r1 rather than cancel through its stale runner (whose
    write the fence refuses, leaving the pod running). Clients read every line once from r1 and, after the
    wake, from r0."""
    lines, seconds, ids = 30, 15.0, [f"paused-{i}" for i in range(4)]
    async with contextlib.AsyncExitStack() as stack:
        world, created = await stack.enter_async_context(shared_world(tmp_path, virtual=True))
        started = await replicas(stack, tmp_path, database_url, ["r0", "r1"], clusters=tmp_path / "virtual-clusters.yaml")
        (paused, a0), (_, a1) = started
        for request_id in ids:
            await submit_virtual(a0, request_id, lines, seconds)  # all owned by r0
        on_r1, on_r0 = clients([a1], 1)[0], clients([a0], 1)[0]
        stack.push_async_callback(on_r1.close)
        stack.push_async_callback(on_r0.close)
        watched = [Watched() for _ in ids]
        watchers = [asyncio.create_task(follow(on_r1, rid, watched[i])) for i, rid in enumerate(ids)]
        await eventually(lambda: all(len(w.lines) >= 2 for w in watched), within=60)
        paused.send_signal(signal.SIGSTOP)
        taken = await eventually(lambda: set(taken_over(tmp_path / "r1.log")) >= set(ids), within=30)
        cancel = asyncio.create_task(on_r0.cancel_pod(ids[0], "not needed any more"))
        await asyncio.sleep(0.3)  # the cancel waits at r0's door: r0 meets it as soon as it wakes
        paused.send_signal(signal.SIGCONT)  # wakes with its runners mid-way, its lease gone
        cancelled = await cancel
        after_wake = [Watched() for _ in ids[1:]]
        await asyncio.gather(*(follow(on_r0, rid, w) for rid, w in zip(ids[1:], after_wake, strict=True)))
        await finish_or_explain(watchers, watched, ids, database_url)
        assert paused.poll() is None  # it lives on, as a replica without those requests
        pods = [p for c in world.clusters.values() for p in c.store.list("pods", None)[0]]
    assert taken
    assert cancelled.phase is PodPhase.CANCELLED, cancelled
    assert not [p for p in pods if p["metadata"]["name"] == cancelled.name and "deletionTimestamp" not in p["metadata"]]
    assert watched[0].result is not None and watched[0].result.result.phase is PodPhase.CANCELLED
    assert watched[0].lines == numbered(len(watched[0].lines))  # cut short, nothing repeated or skipped
    for request_id, got in [*zip(ids[1:], watched[1:], strict=True), *zip(ids[1:], after_wake, strict=True)]:
        assert got.lines == numbered(lines), (request_id, got.lines)
        assert got.result is not None and json.loads(got.result.result.xcom_json or "null") == {"rid": request_id}
    assert {rid: created[rid] for rid in ids} == dict.fromkeys(ids, 1)
    woke = (tmp_path / "r0.log").read_text()
    assert "stops following 4 request(s)" in woke, woke[-3000:]


async def test_a_tenant_quota_holds_across_replicas(tmp_path: Path, database_url: str) -> None:
    token, hashed = new_token("team-a-token")
    tenants = {
        "tenants": [{"name": "team-a", "clusters": ["*"], "namespaces": ["*"], "max_concurrent_pods": 2}],
        "authentication": {"static_tokens": [{"id": "team-a-token", "tenant": "team-a", "hash": hashed}]},
    }
    async with (
        shared_world(tmp_path) as (_world, created),
        replica(tmp_path, "r0", database_url, tmp_path / "kubeconfigs", tenants) as (_, a0),
        replica(tmp_path, "r1", database_url, tmp_path / "kubeconfigs", tenants) as (_, a1),
    ):
        await submit(a0, "quota-0", 20, token)
        await submit(a1, "quota-1", 20, token)  # one on each replica: neither runs two itself
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await submit(a0, "quota-2", 20, token)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_concurrent_pods" in (caught.value.details() or "")
        assert created["quota-2"] == 0


async def test_sigterm_hands_a_replicas_requests_over_at_once(tmp_path: Path, database_url: str) -> None:
    """With a 120 s lease, only the hand-over (release + NOTIFY) can get r0's requests to r1 in time."""
    lines, ids = 12, [f"handover-{i}" for i in range(3)]
    async with (
        shared_world(tmp_path) as (_world, created),
        replica(tmp_path, "r0", database_url, tmp_path / "kubeconfigs", lease=120) as (leaving, a0),
        replica(tmp_path, "r1", database_url, tmp_path / "kubeconfigs", lease=120) as (_, a1),
    ):
        for request_id in ids:
            await submit(a0, request_id, lines)
        watchers = [asyncio.create_task(watch([a1], rid, 0)) for rid in ids]
        await asyncio.sleep(2)
        leaving.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(leaving.wait, 30) == 0
        outcomes = await asyncio.wait_for(asyncio.gather(*watchers), timeout=60)
    for request_id, (got, final, _) in zip(ids, outcomes, strict=True):
        assert got == [f"line {i}" for i in range(lines)], (request_id, got)
        assert json.loads(final.xcom_json) == {"rid": request_id}
    assert {rid: created[rid] for rid in ids} == dict.fromkeys(ids, 1)
    assert "released its requests" in (tmp_path / "r0.log").read_text()
    assert "took over 3 request(s)" in (tmp_path / "r1.log").read_text()


@pytest.mark.parametrize("owner_killed", [False, True], ids=["owner-alive", "owner-killed"])
async def test_a_cancel_at_a_replica_that_does_not_own_the_request_stops_its_pod(
    tmp_path: Path, database_url: str, owner_killed: bool
) -> None:
    """r0 runs the pod, CancelPod reaches r1. Alive, r0 is told over NOTIFY and cancels; SIGKILLed just as
    the cancel arrives, nobody hears the NOTIFY, but the cancel is stored, and r1 carries it out once it
    claims the request (after r0's lease runs out)."""
    async with (
        shared_world(tmp_path) as (world, created),
        replica(tmp_path, "r0", database_url, tmp_path / "kubeconfigs") as (owner, a0),
        replica(tmp_path, "r1", database_url, tmp_path / "kubeconfigs") as (_, a1),
    ):
        await submit(a0, "cancel-elsewhere", 60)  # owned by r0
        async with grpc.aio.insecure_channel(a1) as channel:
            stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
            async for response in stub.WatchPod(dispatch_pb2.WatchPodRequest(request_id="cancel-elsewhere"), timeout=60):
                if response.event.WhichOneof("event") == "log":
                    break  # running
            if owner_killed:
                owner.send_signal(signal.SIGKILL)
            reply = await stub.CancelPod(
                dispatch_pb2.CancelPodRequest(request_id="cancel-elsewhere", reason="not needed"), timeout=60
            )
        assert reply.pod.phase == dispatch_pb2.POD_PHASE_CANCELLED, reply.pod
        assert (reply.pod.result.reason, reply.pod.result.message) == ("Cancelled", "not needed")
        pods = [p for c in world.clusters.values() for p in c.store.list("pods", None)[0]]
        assert not [p for p in pods if p["metadata"]["name"] == reply.pod.name and "deletionTimestamp" not in p["metadata"]]
    assert created["cancel-elsewhere"] == 1
    assert ("took over 1 request(s)" in (tmp_path / "r1.log").read_text()) is owner_killed
