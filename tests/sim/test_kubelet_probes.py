"""Readiness and liveness probes on the process runtime (exec, httpGet, tcpSocket), and their parsing."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from gateway.sim.kubelet import Kubelet
from gateway.sim.runtime.probes import Probe, Timing, parse
from gateway.sim.runtime.spec import ContainerConfigError
from gateway.sim.store import ObjectStore
from tests.sim.kubelet_fixtures import events, pod, sh, wait_pod
from tests.sim.kubelet_fixtures import kubelet as kubelet
from tests.sim.kubelet_fixtures import store as store
from tests.sim.leaks import no_leaks as no_leaks

FAST = {"periodSeconds": 0.05, "timeoutSeconds": 2}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ready(p: dict[str, Any]) -> bool | None:
    statuses = p["status"].get("containerStatuses") or []
    return statuses[0]["ready"] if statuses and "running" in statuses[0]["state"] else None


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        ({"exec": {"command": ["cat", "/tmp/x"]}}, Probe("exec", Timing(), command=("cat", "/tmp/x"))),
        (
            {"httpGet": {"port": "web", "path": "/healthz"}, "periodSeconds": 2},
            Probe("http", Timing(period=2.0), port=8080, path="/healthz"),
        ),
        ({"tcpSocket": {"port": 9000}, "failureThreshold": 1}, Probe("tcp", Timing(failure_threshold=1), port=9000)),
    ],
)
def test_parse(probe: dict[str, Any], expected: Probe) -> None:
    assert parse(probe, {"ports": [{"name": "web", "containerPort": 8080}]}) == expected


@pytest.mark.parametrize(
    ("probe", "message"),
    [({"grpc": {"port": 1}}, "unsupported probe handler"), ({"tcpSocket": {"port": "nope"}}, "named port")],
)
def test_parse_rejects(probe: dict[str, Any], message: str) -> None:
    with pytest.raises(ContainerConfigError, match=message):
        parse(probe, {})


async def test_readiness_exec_probe_gates_ready(store: ObjectStore, kubelet: Kubelet) -> None:
    main = sh(
        "main",
        "sleep 0.4; touch /tmp/ready; sleep 30",
        readinessProbe={"exec": {"command": ["cat", "/tmp/ready"]}, **FAST},
    )
    store.create("pods", pod("gated", main, terminationGracePeriodSeconds=0))
    running = await wait_pod(store, "gated", lambda p: ready(p) is not None)
    assert ready(running) is False
    assert [c["status"] for c in running["status"]["conditions"] if c["type"] == "Ready"] == ["False"]
    await wait_pod(store, "gated", lambda p: ready(p) is True)
    unhealthy = [m for _, r, m in events(store, "gated") if r == "Unhealthy"]
    assert unhealthy and unhealthy[0].startswith("Readiness probe failed: cat: /tmp/ready: No such file or directory")


async def test_http_and_tcp_probes_against_a_real_server(store: ObjectStore, kubelet: Kubelet) -> None:
    port = free_port()
    server = sh(
        "web",
        f"exec python3 -m http.server {port} --bind 127.0.0.1",
        ports=[{"name": "http", "containerPort": port}],
        readinessProbe={"httpGet": {"port": "http", "path": "/"}, **FAST},
        livenessProbe={"tcpSocket": {"port": port}, **FAST, "failureThreshold": 200},
    )
    store.create("pods", pod("web", server, terminationGracePeriodSeconds=0))
    served = await wait_pod(store, "web", lambda p: ready(p) is True)
    assert served["status"]["containerStatuses"][0]["restartCount"] == 0


async def test_failing_liveness_probe_restarts_the_container(store: ObjectStore, kubelet: Kubelet) -> None:
    port = free_port()  # nobody listens there
    main = sh(
        "main", "echo started; sleep 30", livenessProbe={"tcpSocket": {"port": port}, "failureThreshold": 2, **FAST}
    )
    store.create("pods", pod("sick", main, restartPolicy="Always", terminationGracePeriodSeconds=0))
    restarted = await wait_pod(
        store, "sick", lambda p: (p["status"].get("containerStatuses") or [{}])[0].get("restartCount", 0) >= 1
    )
    assert restarted["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 137
    reasons = {(t, r, m.split(":")[0]) for t, r, m in events(store, "sick")}
    assert ("Warning", "Unhealthy", "Liveness probe failed") in reasons
    assert ("Normal", "Killing", "Container main failed liveness probe, will be restarted") in reasons
