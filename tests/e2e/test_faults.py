"""Faults while dispatching: nothing lost, no duplicate pod, regions never violated."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2

from gateway._proto.podgate.v1 import dispatch_pb2, dispatch_pb2_grpc
from gateway.app import Gateway, start_gateway
from gateway.clusters.kubeapi import ClusterClient
from gateway.clusters.kubeapi.retry import DEFAULT_RETRY
from gateway.credentials.base import Endpoint
from gateway.credentials.static import StaticProvider
from gateway.domain import ClusterHealth
from gateway.pods.builder import REQUEST_ID_ANNOTATION
from gateway.sim.cluster import SimWorld
from tests.e2e.conftest import (
    API_PROTOCOLS,
    api_protocol_settings,
    gateway_settings,
    logs,
    pod_request,
    result,
    run_to_end,
    went_over,
)

TICKS = "import time\nfor i in range({n}):\n    print(f'tick {{i}}', flush=True)\n    time.sleep({pause})"


def ticks(n: int, pause: float = 0.1) -> str:
    return TICKS.format(n=n, pause=pause)


def creates(world: SimWorld, cluster: str | None = None) -> int:
    clusters = [world.clusters[cluster]] if cluster else list(world.clusters.values())
    return sum(c.request_counts().get(("create", "pods"), 0) for c in clusters)


def pods_of(world: SimWorld, request_id: str) -> list[tuple[str, str]]:
    """(cluster, pod name) of every pod the request made, on any cluster."""
    return [
        (name, pod["metadata"]["name"])
        for name, cluster in world.clusters.items()
        for pod in cluster.store.list("pods", None)[0]
        if (pod["metadata"].get("annotations") or {}).get(REQUEST_ID_ANNOTATION) == request_id
    ]


@pytest.fixture
async def slow_probe_gateway(world: SimWorld, tmp_path: Path, api_protocol: str) -> AsyncIterator[Gateway]:
    """Health probes far apart: a create meets a dead API server before the health check notices."""
    clusters = {"probe_interval_seconds": 60, **api_protocol_settings(api_protocol)["clusters"]}
    gw = await start_gateway(gateway_settings(tmp_path, {"clusters": clusters}))
    yield gw
    await gw.stop()


async def stub_for(gw: Gateway) -> tuple[grpc.aio.Channel, dispatch_pb2_grpc.DispatchServiceStub]:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{gw.port}")
    return channel, dispatch_pb2_grpc.DispatchServiceStub(channel)


async def run_with_first_choice_down(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld
) -> tuple[str, list[dispatch_pb2.PodEvent]]:
    """A request for two regions whose first-choice cluster goes down just before it is run."""
    request = pod_request("print('hi')", regions=("eu-west-1", "eu-central-1"))
    explained = await stub.ExplainPlacement(dispatch_pb2.ExplainPlacementRequest(pod=request))
    first = explained.decision.cluster
    await world.clusters[first].outage()
    return first, await run_to_end(stub, request)


@API_PROTOCOLS
async def test_cluster_down_at_submit_fails_over_inside_the_allowed_regions(
    slow_probe_gateway: Gateway, world: SimWorld, api_protocol: str
) -> None:
    channel, stub = await stub_for(slow_probe_gateway)
    async with channel:
        first, events = await run_with_first_choice_down(stub, world)
    placed = [e.placed.cluster for e in events if e.WhichOneof("event") == "placed"]
    assert placed[-1] in {"local-eu-gpu", "local-eu-cpu"} - {first}
    assert result(events).phase == dispatch_pb2.POD_PHASE_SUCCEEDED
    assert creates(world, "local-us-gpu") == 0
    assert creates(world) == 1
    assert went_over(world, placed[-1], api_protocol)


async def test_region_is_never_violated_when_its_only_cluster_is_down(
    slow_probe_gateway: Gateway, world: SimWorld
) -> None:
    channel, stub = await stub_for(slow_probe_gateway)
    async with channel:
        await world.clusters["local-eu-gpu"].outage()
        request = pod_request("print('hi')", regions=("eu-west-1",))
        request.placement.timeout.CopyFrom(duration_pb2.Duration(seconds=2))
        events = await run_to_end(stub, request)
    final = result(events)
    assert final.phase == dispatch_pb2.POD_PHASE_FAILED and final.reason == "PlacementFailed"
    assert creates(world) == 0
    assert not [e for e in events if e.WhichOneof("event") == "placed" and e.placed.region != "eu-west-1"]


@API_PROTOCOLS
async def test_api_outage_mid_run_loses_no_log_line(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld, api_protocol: str
) -> None:
    request = pod_request(ticks(25), regions=("eu-central-1",))
    seen: list[dispatch_pb2.PodEvent] = []
    async for r in stub.RunPod(dispatch_pb2.RunPodRequest(pod=request), timeout=60):
        seen.append(r.event)
        if r.event.WhichOneof("event") == "log" and r.event.log.text == "tick 3":
            await world.clusters["local-eu-cpu"].outage()
            await asyncio.sleep(1.0)
            await world.clusters["local-eu-cpu"].restore()
    assert logs(seen) == [f"tick {i}" for i in range(25)]
    assert result(seen).phase == dispatch_pb2.POD_PHASE_SUCCEEDED
    assert creates(world) == 1
    assert went_over(world, "local-eu-cpu", api_protocol)


@API_PROTOCOLS
async def test_a_followed_log_that_ends_cleanly_without_its_tail_after_the_container_ended_loses_no_line(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld, api_protocol: str
) -> None:
    """The follow stream ends normally once the container has ended (after the watch has shown it ended),
    but without its last lines, as an API server's answer does when its connection to the kubelet breaks
    while the tail is on its way: the log's completeness check, a second read once the container has ended,
    fetches the tail. Why that check is never skipped after a stream opened while the container ran:
    docs/decisions/0033-log-completeness-check.md."""
    cluster = world.clusters["local-eu-cpu"]
    cluster.cut_log_tails()
    request = pod_request(ticks(8, pause=0.05), regions=("eu-central-1",))
    seen = await run_to_end(stub, request)
    assert cluster.faults.log_tail_cuts == 0, "the fault cut the follow stream"
    assert logs(seen) == [f"tick {i}" for i in range(8)]
    assert result(seen).phase == dispatch_pb2.POD_PHASE_SUCCEEDED
    assert cluster.request_counts()[("get", "pods/log")] >= 2, "the follow stream, then the completeness check"
    assert went_over(world, "local-eu-cpu", api_protocol)


@API_PROTOCOLS
async def test_a_log_whose_end_the_watch_shows_late_is_read_twice_and_loses_no_line(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld, api_protocol: str
) -> None:
    """The cluster's watches run 1.6 s behind (a busy API server or gateway, a kubelet's late status sync): the
    follow stream ends at the container's exit well before the watch shows that exit. The follower waits for
    the watch, then makes its completeness check: two reads of the log. It used to read again 1 s after the
    stream's end, before the watch showed it, and once more after (three: 2.64 a pod in
    `bench/dispatch.py throughput` at load 8)."""
    cluster = world.clusters["local-eu-cpu"]
    cluster.lag_watches(1.6)
    request = pod_request(ticks(10, pause=0.2), regions=("eu-central-1",))  # runs 2 s: its log opens while it runs
    seen = await run_to_end(stub, request)
    assert logs(seen) == [f"tick {i}" for i in range(10)]
    assert result(seen).phase == dispatch_pb2.POD_PHASE_SUCCEEDED
    assert cluster.request_counts()[("get", "pods/log")] == 2, "the follow stream, then the check after the end"
    assert went_over(world, "local-eu-cpu", api_protocol)


async def test_a_goaway_mid_run_resumes_the_log_on_a_new_connection_losing_and_repeating_no_line(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld
) -> None:
    """The API server sends GOAWAY and closes the HTTP/2 connection its log streams share (a restart, a
    load balancer draining it): each follower resumes from its last line's time on a new connection."""
    cluster = world.clusters["local-eu-cpu"]
    request = pod_request(ticks(25), regions=("eu-central-1",))
    seen: list[dispatch_pb2.PodEvent] = []
    async for r in stub.RunPod(dispatch_pb2.RunPodRequest(pod=request), timeout=60):
        seen.append(r.event)
        if r.event.WhichOneof("event") == "log" and r.event.log.text == "tick 3":
            assert cluster.goaway() >= 1
    assert logs(seen) == [f"tick {i}" for i in range(25)]
    assert result(seen).phase == dispatch_pb2.POD_PHASE_SUCCEEDED
    assert cluster.request_counts()[("get", "pods/log")] >= 2, "the log stream was cut and reopened"
    assert cluster.http2_connections_accepted >= 2


@API_PROTOCOLS
async def test_dropped_watches_lose_nothing(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld, api_protocol: str
) -> None:
    async def keep_dropping() -> None:
        while True:
            await asyncio.sleep(0.2)
            world.clusters["local-eu-cpu"].drop_watches()

    dropper = asyncio.create_task(keep_dropping())
    try:
        events = await run_to_end(stub, pod_request(ticks(15), regions=("eu-central-1",)))
    finally:
        dropper.cancel()
        await asyncio.gather(dropper, return_exceptions=True)
    assert logs(events) == [f"tick {i}" for i in range(15)]
    assert result(events).phase == dispatch_pb2.POD_PHASE_SUCCEEDED
    assert world.clusters["local-eu-cpu"].request_counts()[("watch", "pods")] >= 2, "the watch was dropped and reopened"
    assert went_over(world, "local-eu-cpu", api_protocol)


async def test_client_disconnect_then_reattach_resumes_exactly(stub: dispatch_pb2_grpc.DispatchServiceStub) -> None:
    request = pod_request(ticks(20), request_id="reattach-1")
    call = stub.RunPod(dispatch_pb2.RunPodRequest(pod=request), timeout=60)
    seen = []
    async for r in call:
        seen.append(r.event)
        if r.event.WhichOneof("event") == "log" and r.event.log.text == "tick 5":
            break
    call.cancel()  # the client goes away without cancelling the pod
    await asyncio.sleep(0.5)
    rest = [
        r.event
        async for r in stub.WatchPod(
            dispatch_pb2.WatchPodRequest(request_id="reattach-1", cursor=seen[-1].cursor), timeout=60
        )
    ]
    assert logs(seen + rest) == [f"tick {i}" for i in range(20)]
    assert result(rest).phase == dispatch_pb2.POD_PHASE_SUCCEEDED


async def test_disconnect_policy_cancel_stops_the_pod(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld
) -> None:
    request = pod_request(
        ticks(100),
        request_id="disc-cancel",
        lifecycle=dispatch_pb2.LifecycleOptions(on_disconnect=dispatch_pb2.DISCONNECT_POLICY_CANCEL),
    )
    call = stub.RunPod(dispatch_pb2.RunPodRequest(pod=request), timeout=60)
    async for r in call:
        if r.event.WhichOneof("event") == "log":
            break
    call.cancel()
    events = [r.event async for r in stub.WatchPod(dispatch_pb2.WatchPodRequest(request_id="disc-cancel"), timeout=60)]
    assert result(events).phase == dispatch_pb2.POD_PHASE_CANCELLED
    pod = await stub.GetPod(dispatch_pb2.GetPodRequest(request_id="disc-cancel"))
    remaining = world.clusters[pod.pod.cluster].store.list("pods", None)[0]
    assert all(p["metadata"]["name"] != pod.pod.name or p["metadata"].get("deletionTimestamp") for p in remaining)


async def test_cancel_pod_mid_run(stub: dispatch_pb2_grpc.DispatchServiceStub) -> None:
    request = pod_request(ticks(100), request_id="cancel-1")
    await stub.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=request))
    async for r in stub.WatchPod(dispatch_pb2.WatchPodRequest(request_id="cancel-1"), timeout=60):
        if r.event.WhichOneof("event") == "log":
            break
    cancelled = await stub.CancelPod(dispatch_pb2.CancelPodRequest(request_id="cancel-1", reason="test says stop"))
    assert cancelled.pod.phase == dispatch_pb2.POD_PHASE_CANCELLED
    assert cancelled.pod.result.message == "test says stop"


async def test_keep_pod_leaves_the_pod_and_delete_pod_removes_it(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld
) -> None:
    kept = pod_request(
        "print(1)",
        regions=("eu-central-1",),
        lifecycle=dispatch_pb2.LifecycleOptions(on_finish=dispatch_pb2.ON_FINISH_ACTION_KEEP_POD),
    )
    deleted = pod_request("print(2)", regions=("eu-central-1",))
    await run_to_end(stub, kept)
    await run_to_end(stub, deleted)
    names = {
        p["metadata"]["name"]
        for p in world.clusters["local-eu-cpu"].store.list("pods", None)[0]
        if not p["metadata"].get("deletionTimestamp")
    }
    kept_name = (await stub.GetPod(dispatch_pb2.GetPodRequest(request_id=kept.request_id))).pod.name
    deleted_name = (await stub.GetPod(dispatch_pb2.GetPodRequest(request_id=deleted.request_id))).pod.name
    assert kept_name in names and deleted_name not in names


async def test_no_capacity_now_waits_then_places(stub: dispatch_pb2_grpc.DispatchServiceStub) -> None:
    """local-eu-gpu has 2 GPUs: a third one-GPU pod waits for a free GPU rather than failing or leaving eu-west-1."""
    hold = [pod_request("import time; time.sleep(2)", regions=("eu-west-1",), gpus=1) for _ in range(2)]
    for r in hold:
        await stub.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=r))
    await asyncio.sleep(1.0)
    third = pod_request("print('third')", regions=("eu-west-1",), gpus=1)
    third.placement.timeout.CopyFrom(duration_pb2.Duration(seconds=30))
    explained = await stub.ExplainPlacement(dispatch_pb2.ExplainPlacementRequest(pod=third))
    assert explained.decision.verdicts[0].verdict == dispatch_pb2.VERDICT_NO_CAPACITY
    events = await run_to_end(stub, third)
    assert result(events).phase == dispatch_pb2.POD_PHASE_SUCCEEDED
    assert "third" in logs(events)


@API_PROTOCOLS
async def test_a_log_connection_dropped_silently_is_reopened_and_loses_and_repeats_no_line(
    world: SimWorld, tmp_path: Path, api_protocol: str
) -> None:
    """The log connection goes silent (no FIN, no RST) mid-run: after `streams.log_inactivity_seconds`
    the gateway reopens it from its last line's time and fetches the lines written since; a container
    silent for longer than that is reopened cheaply too, repeating nothing."""
    code = "import time\nfor i in range(30):\n    print(f'tick {i}', flush=True)\n    time.sleep(2.5 if i == 20 else 0.1)"
    config = gateway_settings(tmp_path, {"streams": {"log_inactivity_seconds": 1.0}, **api_protocol_settings(api_protocol)})
    gw = await start_gateway(config)
    channel, stub = await stub_for(gw)
    cluster = world.clusters["local-eu-cpu"]
    seen: list[dispatch_pb2.PodEvent] = []
    try:
        async for r in stub.RunPod(dispatch_pb2.RunPodRequest(pod=pod_request(code, regions=("eu-central-1",))),
                                   timeout=60):  # fmt: skip
            seen.append(r.event)
            if r.event.WhichOneof("event") == "log" and r.event.log.text == "tick 3":
                cluster.silence_log_streams()
    finally:
        await channel.close()
        await gw.stop()
    assert logs(seen) == [f"tick {i}" for i in range(30)]
    assert result(seen).phase == dispatch_pb2.POD_PHASE_SUCCEEDED
    # Reopened after the silencing and during the quiet 2.5 s (a silenced stream is never counted: the
    # simulator records a request when its handler returns, and this one is cancelled when the gateway leaves).
    assert cluster.request_counts()[("get", "pods/log")] >= 2
    assert went_over(world, "local-eu-cpu", api_protocol)


XCOM_42 = "import json; print('hi', flush=True); open('/airflow/xcom/return.json', 'w').write(json.dumps({'n': 42}))"
KEEP = dispatch_pb2.LifecycleOptions(on_finish=dispatch_pb2.ON_FINISH_ACTION_KEEP_POD)  # to count the pods after


async def lost_answer_run(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld, lose: dict[str, int]
) -> tuple[str, dispatch_pb2.PodRequest, list[dispatch_pb2.PodEvent]]:
    """Runs a request whose first-choice cluster carries out its calls `verb` but loses `lose[verb]` answers."""
    request = pod_request(XCOM_42, regions=("eu-west-1", "eu-central-1"), lifecycle=KEEP)
    explained = await stub.ExplainPlacement(dispatch_pb2.ExplainPlacementRequest(pod=request))
    first = explained.decision.cluster
    for verb, count in lose.items():
        world.clusters[first].lose_answers(verb, "pods", count)
    return first, request, await run_to_end(stub, request)


@API_PROTOCOLS
@pytest.mark.parametrize(
    "lost",
    [1, DEFAULT_RETRY.attempts],
    ids=["client-resend-meets-AlreadyExists", "every-attempt-lost-then-read-back"],
)
async def test_a_create_applied_whose_answer_is_lost_makes_one_pod_on_the_first_cluster(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld, lost: int, api_protocol: str
) -> None:
    first, request, events = await lost_answer_run(stub, world, {"create": lost})
    final = result(events)
    assert final.phase == dispatch_pb2.POD_PHASE_SUCCEEDED and final.xcom_json == '{"n": 42}'
    assert logs(events) == ["hi"]
    assert [e.placed.cluster for e in events if e.WhichOneof("event") == "placed"] == [first]
    assert len(pods_of(world, request.request_id)) == 1 and pods_of(world, request.request_id)[0][0] == first
    assert creates(world) == creates(world, first) == min(lost + 1, DEFAULT_RETRY.attempts)
    assert world.clusters[first].faults.lost_answers.total() == 0
    assert went_over(world, first, api_protocol)


@API_PROTOCOLS
async def test_lost_answers_to_the_create_and_its_reads_keep_the_request_pinned_until_it_completes(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld, api_protocol: str
) -> None:
    """Neither the create nor the reads after it are answered: the outcome is unknown, so the gateway stays on
    that cluster and pod name (no failover, no second pod) until a read tells, then follows its pod."""
    attempts = DEFAULT_RETRY.attempts
    # aiohttp itself resends a GET whose connection dropped, so over HTTP/1.1 twice the answers cover every read
    # of one round; over HTTP/2 a lost answer is a reset stream, which only the client's own retries resend.
    gets = attempts if api_protocol == "h2" else 2 * attempts
    first, request, events = await lost_answer_run(stub, world, {"create": attempts, "get": gets})
    final = result(events)
    assert final.phase == dispatch_pb2.POD_PHASE_SUCCEEDED and final.xcom_json == '{"n": 42}'
    unknown = [e.phase.message for e in events if e.WhichOneof("event") == "phase" and e.phase.reason == "CreateFailed"]
    assert unknown and set(unknown) == {
        f"creating the pod on {first} failed; outcome unknown, checking before any failover"
    }
    assert [e.placed.cluster for e in events if e.WhichOneof("event") == "placed"] == [first]
    [(cluster, name)] = pods_of(world, request.request_id)
    assert cluster == first
    assert (await stub.GetPod(dispatch_pb2.GetPodRequest(request_id=request.request_id))).pod.name == name
    assert creates(world) == creates(world, first) == attempts + len(unknown)  # each later round met AlreadyExists
    assert world.clusters[first].faults.lost_answers.total() == 0
    assert went_over(world, first, api_protocol)


@pytest.mark.parametrize("new_address", [False, True], ids=["new-ca", "new-ca-and-address"])
async def test_a_cluster_that_rotated_its_ca_and_address_keeps_taking_pods_without_a_restart(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld, new_address: bool
) -> None:
    """GKE credential rotation (new CA, new IP) or AKS rotate-certs: the gateway re-resolves the endpoint
    after the TLS or connect failure (its cached TLS context trusts the old CA only) and dispatches on."""
    before = await run_to_end(stub, pod_request(ticks(2), regions=("eu-central-1",)))
    assert result(before).phase == dispatch_pb2.POD_PHASE_SUCCEEDED
    await asyncio.sleep(1.1)  # past the provider's endpoint-lookup debounce
    cluster = world.clusters["local-eu-cpu"]
    old_url = cluster.url
    await cluster.rotate_certificates(new_address=new_address)
    assert (cluster.url != old_url) is new_address
    after = await run_to_end(stub, pod_request(ticks(3), regions=("eu-central-1",)))
    assert logs(after) == ["tick 0", "tick 1", "tick 2"]
    assert result(after).phase == dispatch_pb2.POD_PHASE_SUCCEEDED
    assert creates(world, "local-eu-cpu") == 2


async def test_a_pod_over_a_mebibyte_elsewhere_in_the_cluster_does_not_freeze_its_pod_tracking(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld
) -> None:
    """Someone else's 1.5 MiB pod (etcd's limit) arrives on the gateway's cluster-wide pod watch; pods the
    gateway runs there are still followed to their end (the watch used to cut the event and loop)."""
    cluster = world.clusters["local-eu-cpu"]
    endpoint = Endpoint(server=cluster.url, ca_data=cluster.ca_pem)
    blob = {"name": "BLOB", "value": "x" * (3 << 19)}
    huge = {"metadata": {"name": "huge"}, "spec": {"schedulerName": "someone-else",
            "containers": [{"name": "c", "image": "busybox", "env": [blob]}]}}  # fmt: skip
    async with ClusterClient(StaticProvider(cluster.name, endpoint, cluster.admin_token)) as admin:
        await admin.create_pod("default", huge)
    events = await run_to_end(stub, pod_request(ticks(3), regions=("eu-central-1",)))
    assert logs(events) == ["tick 0", "tick 1", "tick 2"]
    assert result(events).phase == dispatch_pb2.POD_PHASE_SUCCEEDED


def create_failures(events: list[dispatch_pb2.PodEvent], cluster: str) -> int:
    return sum(
        1
        for e in events
        if e.WhichOneof("event") == "phase" and e.phase.reason == "CreateFailed" and f" on {cluster} " in e.phase.message
    )


@API_PROTOCOLS
async def test_an_outage_seen_by_any_call_marks_the_cluster_down_and_it_is_not_tried_again(
    slow_probe_gateway: Gateway, world: SimWorld, api_protocol: str
) -> None:
    """Probes a minute apart: the cluster's own watches (or the create) meeting a refused connection mark it
    unreachable at once; the pod fails over, and later pods never try the down cluster."""
    channel, stub = await stub_for(slow_probe_gateway)
    async with channel:
        first, events = await run_with_first_choice_down(stub, world)
        assert result(events).phase == dispatch_pb2.POD_PHASE_SUCCEEDED
        assert [e.placed.cluster for e in events if e.WhichOneof("event") == "placed"][-1] != first
        assert create_failures(events, first) <= 1
        assert slow_probe_gateway.registry.get(first).health.state is ClusterHealth.UNREACHABLE  # not by the probe
        later = await run_to_end(stub, pod_request("print('hi')", regions=("eu-west-1", "eu-central-1")))
    assert result(later).phase == dispatch_pb2.POD_PHASE_SUCCEEDED
    assert first not in [e.placed.cluster for e in later if e.WhichOneof("event") == "placed"]
    assert create_failures(later, first) == 0
    assert all(went_over(world, name, api_protocol) for name in world.clusters if name != first)
