"""`podgate serve` (what `make run` starts) serves health over gRPC and stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import podgate_serve


async def test_serve_answers_health_and_stops_on_sigterm(tmp_path: Path) -> None:
    with podgate_serve(tmp_path) as served:
        assert any("embedded local clusters: local-eu-gpu, local-eu-cpu, local-us-gpu" in p for p in served.printed)
        async with grpc.aio.insecure_channel(served.address) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(timeout=20) == 0
