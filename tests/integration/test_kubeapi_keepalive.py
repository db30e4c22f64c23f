"""TCP keepalive on every API connection, direct or through a proxy, observed on the kernel's own
socket table (/proc/net/tcp shows each socket's timer: 2 is the keepalive timer, with the time left)."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.credentials import keepalive
from gateway.sim.cluster import SimCluster
from tests.integration.kubeconfig_helpers import client_for, write_kubeconfig
from tests.standins.probe import sim_cluster
from tests.standins.proxies import forward_proxy

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads the kernel's socket table in /proc/net/tcp")
KEEPALIVE_TIMER = 2


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[SimCluster]:
    async with sim_cluster("kube-k", tmp_path) as cluster:
        yield cluster


def timers_to(port: int) -> list[tuple[int, float]]:
    """(timer kind, seconds left) of every established IPv4 socket whose peer is 127.0.0.1:`port`."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = []
    with open("/proc/net/tcp") as table:
        next(table)
        for row in table:
            fields = row.split()
            remote, state, timer = fields[2], fields[3], fields[5]
            if remote == f"0100007F:{port:04X}" and state == "01":
                kind, left = timer.split(":")
                out.append((int(kind, 16), int(left, 16) / ticks))
    return out


def assert_keepalive(port: int) -> None:
    timers = timers_to(port)
    assert timers, f"no established connection to port {port}"
    for kind, left in timers:
        assert kind == KEEPALIVE_TIMER, f"socket to port {port} has timer {kind}, not keepalive"
        assert keepalive.IDLE_SECONDS - 10 < left <= keepalive.IDLE_SECONDS


async def test_direct_connections_probe_an_idle_peer_after_30_seconds(sim: SimCluster, tmp_path: Path) -> None:
    path = write_kubeconfig(sim, tmp_path / "k.kubeconfig", {"token": sim.admin_token})
    async with client_for(path, sim.name) as client:
        await client.get_version()  # the connection stays in the pool, idle
        assert_keepalive(sim.port)


async def test_connections_through_a_proxy_keep_alive_to_the_proxy(sim: SimCluster, tmp_path: Path) -> None:
    async with forward_proxy("socks5") as proxy:
        path = write_kubeconfig(sim, tmp_path / "p.kubeconfig", {"token": sim.admin_token}, **{"proxy-url": proxy.url})
        async with client_for(path, sim.name) as client:
            await client.get_version()  # the connection stays in the pool, idle
            assert proxy.tunnels
            assert_keepalive(int(proxy.url.rsplit(":", 1)[1]))


def test_the_socket_factory_sets_client_gos_idle_and_interval() -> None:
    info = socket.getaddrinfo("127.0.0.1", 443, type=socket.SOCK_STREAM)[0]
    with keepalive.keepalive_socket(info) as sock:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 15
