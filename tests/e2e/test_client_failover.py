"""GatewayClient over several gateway addresses, through real gRPC to real gateways: a dead address costs
nothing, a stream whose gateway goes away resumes from its cursor on another address, a DNS name with
several addresses and a shared TLS certificate name work. Until replicas share one store, each gateway here
has its own state directory and the request lives where the test needs it."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.app import Gateway, start_gateway
from gateway.client import ChannelSpec, GatewayClient, Log, NotFound, PodSpecRequest, Result, RetryPolicy, Unavailable
from gateway.client.types import PodPhase
from gateway.sim.cluster import SimWorld
from gateway.sim.tls import CertificateAuthority
from tests.conftest import BIN, ROOT, clean_env
from tests.e2e.conftest import LOCAL, gateway_settings, python_pod
from tests.e2e.test_authn_transport import podgate, write_pair

QUICK = RetryPolicy(budget=20, initial_delay=0.1, max_delay=1.0)
LINES = 40
COUNTING = f"import time\nfor i in range({LINES}):\n    print(i, flush=True)\n    time.sleep(0.05)"


def free_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(code: str = "print('ok')") -> PodSpecRequest:
    return PodSpecRequest.build(request_id=f"failover-{uuid.uuid4().hex[:10]}", pod=json.loads(python_pod(code)))


def link_kubeconfigs(state_dir: Path) -> None:
    if not (state_dir / "kubeconfigs").exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        (state_dir / "kubeconfigs").symlink_to(state_dir.parent / "kubeconfigs")


async def start(state_dir: Path, port: int = 0, raw: dict[str, object] | None = None) -> Gateway:
    """A gateway on its own state directory, reading the world's kubeconfigs (tmp_path/kubeconfigs)."""
    link_kubeconfigs(state_dir)
    listen = {"server": {"listen": f"127.0.0.1:{port}"}}
    gw = await start_gateway(gateway_settings(state_dir, {**listen, **(raw or {})}))
    assert gw.problems == []
    return gw


@pytest.fixture
async def alive(world: SimWorld, tmp_path: Path) -> AsyncIterator[Gateway]:
    gw = await start(tmp_path / "alive")
    yield gw
    await gw.stop()


async def test_a_dead_address_before_a_live_one_costs_no_call(alive: Gateway) -> None:
    spec = ChannelSpec(address=f"127.0.0.1:{free_port()},127.0.0.1:{alive.port}")
    async with GatewayClient(spec, retry=QUICK, deadline=10) as client:
        submitted = await client.submit_pod(request())
        for _ in range(10):  # every call reaches the live gateway: none is sent to the dead address
            info = await client.get_pod(submitted.pod.request_id)
            assert info.request_id == submitted.pod.request_id


async def test_calls_are_spread_over_the_listed_gateways(world: SimWorld, tmp_path: Path, alive: Gateway) -> None:
    other = await start(tmp_path / "other")
    try:
        async with GatewayClient(ChannelSpec(address=f"127.0.0.1:{alive.port}")) as only_alive:
            request_id = (await only_alive.submit_pod(request())).pod.request_id
        spec = ChannelSpec(address=f"127.0.0.1:{alive.port},127.0.0.1:{other.port}")
        async with GatewayClient(spec, retry=QUICK) as client:
            found = missing = 0
            for _ in range(200):  # round_robin alternates once both connections are up (within a few calls)
                try:
                    await client.get_pod(request_id)
                    found += 1
                except NotFound:
                    missing += 1  # the other gateway (its own store) does not know the request
                if found and missing:
                    break
        assert found and missing, (found, missing)
    finally:
        await other.stop()


async def test_a_stream_resumes_from_its_cursor_on_the_other_address(world: SimWorld, tmp_path: Path) -> None:
    """The client lists [a, b]; only a runs. a goes away mid-stream and the process holding the request comes
    back on b: the client reconnects there and resumes, no log line lost or repeated."""
    state, port_b = tmp_path / "state", free_port()
    first = await start(state)
    spec = ChannelSpec(address=f"127.0.0.1:{first.port},127.0.0.1:{port_b}")
    second: Gateway | None = None
    lines: list[str] = []
    results: list[Result] = []
    try:
        async with GatewayClient(spec, retry=QUICK) as client:
            async for event in client.run_pod(request(COUNTING)):
                if isinstance(event, Log):
                    lines.append(event.text)
                    if len(lines) == 5 and second is None:
                        await first.stop()
                        second = await start(state, port_b)
                elif isinstance(event, Result):
                    results.append(event)
    finally:
        await (second or first).stop()
    assert second is not None
    assert lines == [str(i) for i in range(LINES)]
    (result,) = results
    assert result.result.phase == PodPhase.SUCCEEDED and result.result.exit_code == 0


async def test_a_dns_name_with_several_addresses(alive: Gateway) -> None:
    """localhost resolves to 127.0.0.1 (and ::1 where configured); the gateway listens on 127.0.0.1 only, so
    any ::1 is a dead address the balancer skips."""
    listed = f"localhost:{free_port()},localhost:{alive.port}"
    for address in (f"localhost:{alive.port}", f"dns:///localhost:{alive.port}", listed):
        async with GatewayClient(ChannelSpec(address=address), retry=QUICK, deadline=10) as client:
            for _ in range(5):
                assert await client.list_clusters(), address


async def test_tls_checks_the_shared_certificate_name_over_several_addresses(
    world: SimWorld, tmp_path: Path
) -> None:
    """Replicas share one certificate (one Secret): it names the service, not each address."""
    ca = CertificateAuthority("podgate-test-ca")
    cert, key = write_pair(tmp_path, "server", ca.issue_server(("podgate.test",)))
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(ca.cert_pem)
    gw = await start(tmp_path / "tls", raw={"tls": {"cert_file": str(cert), "key_file": str(key)}})
    try:
        address = f"127.0.0.1:{free_port()},127.0.0.1:{gw.port}"
        spec = ChannelSpec(address=address, ca_file=str(ca_file), server_name="podgate.test")
        async with GatewayClient(spec, retry=QUICK, deadline=10) as client:
            assert await client.list_clusters()
        # without the name the certificate is checked against the first host, 127.0.0.1, which it does not
        # carry (both entries reach the one gateway, so the only error is the name check)
        unnamed = ChannelSpec(address=f"127.0.0.1:{gw.port},localhost:{gw.port}", ca_file=str(ca_file))
        async with GatewayClient(unnamed, retry=RetryPolicy(attempts=1, initial_delay=0.01), deadline=3) as client:
            with pytest.raises(Unavailable, match="Hostname Verification"):
                await client.list_clusters()
    finally:
        await gw.stop()



async def test_health_watch_answers_on_the_api_port(alive: Gateway) -> None:
    """round_robin's client-side health check watches grpc.health.v1 on the API port (it was INTERNAL: the
    error interceptor iterated grpc_health's coroutine), so a draining gateway is skipped."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{alive.port}") as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""), timeout=5)
        first = await watch.read()
        watch.cancel()
    assert first.status == health_pb2.HealthCheckResponse.SERVING


async def test_the_cli_takes_several_addresses_from_the_flag_and_the_environment(alive: Gateway) -> None:
    both = f"127.0.0.1:{free_port()},127.0.0.1:{alive.port}"
    code, out, err = await podgate("clusters", "list", "--gateway", both)
    assert code == 0, err
    assert "local-eu-cpu" in out
    code, out, err = await podgate("clusters", "list", env={"PODGATE_GATEWAY": both})
    assert code == 0 and "local-eu-cpu" in out, err
    code, out, err = await podgate("clusters", "list", "--gateway", f"127.0.0.1:{alive.port},gw:x")
    assert code == 125 and "'gw:x'" in err and "Traceback" not in err, err


SLOW_LINES = 30
SLOW = f"import time\nfor i in range({SLOW_LINES}):\n    print(i, flush=True)\n    time.sleep(0.1)"


async def serve_process(state_dir: Path, port: int = 0) -> tuple[asyncio.subprocess.Process, int]:
    """`podgate serve` on the world's clusters (its simulator runs in this test's loop, so the process is read
    without blocking it); returns the process and its port."""
    link_kubeconfigs(state_dir)
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "podgate"), "serve", "--listen", f"127.0.0.1:{port}", "--state-dir", str(state_dir),
        "--clusters", str(LOCAL), "--metrics-listen", "off",
        cwd=ROOT, env=clean_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    printed = []
    while line := (await asyncio.wait_for(proc.stdout.readline(), 60)).decode():
        printed.append(line)
        if match := re.search(r"serving on 127\.0\.0\.1:(\d+)", line):
            return proc, int(match.group(1))
    raise AssertionError("podgate serve ended before serving:\n" + "".join(printed))


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)


async def test_a_sigkilled_gateway_process_costs_the_stream_nothing(world: SimWorld, tmp_path: Path) -> None:
    """Real `podgate serve` processes: the one serving the stream is SIGKILLed; the process that holds the
    request (the same state, restarted on the other listed address) serves the resumed WatchPod."""
    state, port_b = tmp_path / "state", free_port()
    first, port_a = await serve_process(state)
    procs = [first]
    lines: list[str] = []
    results: list[Result] = []
    try:
        async with GatewayClient(ChannelSpec(address=f"127.0.0.1:{port_a},127.0.0.1:{port_b}"), retry=QUICK) as client:
            async for event in client.run_pod(request(SLOW)):
                if isinstance(event, Log):
                    lines.append(event.text)
                    if len(lines) == 5 and len(procs) == 1:
                        first.kill()
                        await first.wait()
                        procs.append((await serve_process(state, port_b))[0])
                elif isinstance(event, Result):
                    results.append(event)
    finally:
        for proc in procs:
            await stop(proc)
    assert len(procs) == 2 and first.returncode == -signal.SIGKILL
    assert lines == [str(i) for i in range(SLOW_LINES)]
    (result,) = results
    assert result.result.phase == PodPhase.SUCCEEDED and result.result.exit_code == 0


async def test_a_replica_whose_health_says_not_serving_gets_no_calls(
    world: SimWorld, tmp_path: Path, alive: Gateway
) -> None:
    """A draining gateway (health NOT_SERVING, listener still open) is skipped: every call reaches the other.
    Without the client's health check, round_robin would send half of them to the drainer (NotFound)."""
    draining = await start(tmp_path / "draining")
    try:
        async with GatewayClient(ChannelSpec(address=f"127.0.0.1:{alive.port}")) as only_alive:
            request_id = (await only_alive.submit_pod(request())).pod.request_id
        await draining.running.health.enter_graceful_shutdown()
        spec = ChannelSpec(address=f"127.0.0.1:{draining.port},127.0.0.1:{alive.port}")
        async with GatewayClient(spec, retry=QUICK) as client:
            for _ in range(20):
                assert (await client.get_pod(request_id)).request_id == request_id
    finally:
        await draining.stop()
