"""`podgate serve` (what `make run` starts) serves health over gRPC and stops cleanly on SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import BIN, ROOT, clean_env


async def test_serve_answers_health_and_stops_on_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [str(BIN / "podgate"), "serve", "--listen", "127.0.0.1:0", "--state-dir", str(tmp_path)],
        cwd=ROOT,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        printed = []
        match = None
        while match is None:
            line = proc.stdout.readline()
            assert line, "".join(printed) + (proc.stderr.read() if proc.stderr else "")
            printed.append(line)
            match = re.search(r"serving on 127\.0\.0\.1:(\d+)", line)
        assert any("embedded local clusters: local-eu-gpu, local-eu-cpu, local-us-gpu" in p for p in printed), printed
        async with grpc.aio.insecure_channel(f"127.0.0.1:{match.group(1)}") as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
