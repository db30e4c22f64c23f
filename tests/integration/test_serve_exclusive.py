"""Two `podgate serve` on one machine: a second one on the same state directory or the same port refuses
to start, saying why, and the first keeps serving; a killed gateway leaves no stale lock behind."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import BIN, ROOT, clean_env, podgate_serve


def serve_once(state_dir: Path, listen: str = "127.0.0.1:0") -> subprocess.CompletedProcess[str]:
    """A second `podgate serve`, expected to refuse (it would otherwise run until the timeout)."""
    return subprocess.run(
        [str(BIN / "podgate"), "serve", "--listen", listen, "--state-dir", str(state_dir), "--metrics-listen", "off"],
        cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip


async def serving(address: str) -> bool:
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


async def test_a_second_gateway_on_the_same_state_dir_refuses_naming_the_first(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with podgate_serve(state, "--metrics-listen", "off") as first:
        second = serve_once(state)
        assert second.returncode == 2, second.stderr
        assert f"state directory {state} is in use by another gateway: pid {first.process.pid} on host" in second.stderr
        assert f"listening on {first.address}" in second.stderr
        assert "embedded local clusters" not in second.stdout  # refused before touching the directory
        assert json.loads((state / "podgate.lock").read_text())["listen"] == first.address
        assert await serving(first.address)
        first.process.send_signal(signal.SIGKILL)  # no clean-up at all: the kernel drops the flock
        first.process.wait(timeout=10)
    with podgate_serve(state, "--metrics-listen", "off") as after_kill:
        assert await serving(after_kill.address)
        assert json.loads((state / "podgate.lock").read_text())["pid"] == after_kill.process.pid


async def test_a_second_gateway_on_a_taken_port_fails_to_start(tmp_path: Path) -> None:
    with podgate_serve(tmp_path / "first", "--metrics-listen", "off") as first:
        second = serve_once(tmp_path / "second", listen=first.address)
        assert second.returncode == 2, second.stderr
        assert f"cannot listen on {first.address}: the address is in use" in second.stderr
        assert await serving(first.address)
    with podgate_serve(tmp_path / "second", "--metrics-listen", "off") as restarted:  # its lock was released
        assert await serving(restarted.address)
