"""A burst of pods meeting one slow connection attempt to their only cluster: each is served by a fresh attempt,
not failed back to its caller (docs/decisions/0044-cluster-down-on-consecutive-attempts.md)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
from google.protobuf import duration_pb2

from gateway._proto.podgate.v1 import dispatch_pb2, dispatch_pb2_grpc
from gateway.app import start_gateway
from gateway.domain import ClusterHealth
from gateway.sim.cluster import SimWorld
from tests.e2e.conftest import API_PROTOCOLS, api_protocol_settings, gateway_settings, merged, pod_request, result
from tests.e2e.conftest import run_to_end as run

CLUSTER, REGION = "local-eu-gpu", "eu-west-1"  # the region's only cluster: nowhere to fail over to
BURST = 12


@API_PROTOCOLS
async def test_a_burst_whose_connection_attempt_times_out_is_served_by_a_fresh_attempt(
    world: SimWorld, tmp_path: Path, api_protocol: str
) -> None:
    """The API server answers no ClientHello of the next connection (too busy): every create of the burst that
    waited on that attempt failed with it, the first failure marked the cluster down at once, a cluster known to
    be down is not retried, and each request failed PlacementFailed with its placement time spent. Now the
    failure is one piece of evidence; the client's retry makes a fresh attempt and every pod runs, once."""
    raw = merged(api_protocol_settings(api_protocol), {"clusters": {"probe_interval_seconds": 60}})
    gateway = await start_gateway(gateway_settings(tmp_path, raw))
    sim = world.clusters[CLUSTER]
    try:
        await gateway.registry.get(CLUSTER).wait_synced()
        sim.stall_handshakes(1)
        sim.goaway()  # HTTP/2: the gateway's connection goes, and its next one is the one held back
        requests = [pod_request("print('hi')", regions=(REGION,)) for _ in range(BURST)]
        for request in requests:
            request.placement.timeout.CopyFrom(duration_pb2.Duration(seconds=2))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
            outcomes = await asyncio.gather(*(run(stub, request) for request in requests))
        assert sim.faults.stalled_handshakes == 0  # a connection attempt met the stalled handshake
        assert [result(events).phase for events in outcomes] == [dispatch_pb2.POD_PHASE_SUCCEEDED] * BURST, [
            result(events).message for events in outcomes
        ]
        assert gateway.registry.get(CLUSTER).health.state is ClusterHealth.HEALTHY
    finally:
        await gateway.stop()
    assert sim.request_counts().get(("create", "pods")) == BURST  # a create each: no pod made twice
