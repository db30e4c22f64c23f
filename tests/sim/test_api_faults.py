"""Faults of a simulated cluster (Python API and control endpoint) and raw HTTP edge cases, over HTTPS."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateway.sim.cluster import SimCluster, SimWorld
from gateway.sim.config import NodeSpec, SimClusterSpec, SimConfig

SPEC = SimClusterSpec(name="faulty", nodes=(NodeSpec("n1", allocatable={"cpu": "2"}), NodeSpec("n2")))
POD = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[SimWorld]:
    async with SimWorld(SimConfig((SPEC,)), kubeconfig_dir=tmp_path, node_side=False) as running:
        yield running


@pytest.fixture
async def http(world: SimWorld) -> AsyncIterator[aiohttp.ClientSession]:
    cluster = world.clusters["faulty"]
    connector = aiohttp.TCPConnector(ssl=cluster.ssl_context())
    headers = {"Authorization": f"Bearer {cluster.admin_token}"}
    async with aiohttp.ClientSession(cluster.url, connector=connector, headers=headers) as session:
        yield session


async def test_outage_refuses_connections_then_restores_on_the_same_port(
    world: SimWorld, http: aiohttp.ClientSession
) -> None:
    cluster = world.clusters["faulty"]
    port = cluster.port
    assert (await http.get("/api/v1/nodes")).status == 200
    await cluster.outage()
    with pytest.raises(aiohttp.ClientConnectorError):
        await http.get("/api/v1/nodes")
    await cluster.restore()
    assert cluster.port == port
    assert (await http.get("/api/v1/nodes")).status == 200


@pytest.mark.parametrize(("code", "retry_after"), [(429, "3"), (500, None)])
async def test_error_rate_answers_with_the_chosen_status(
    world: SimWorld, http: aiohttp.ClientSession, code: int, retry_after: str | None
) -> None:
    world.clusters["faulty"].set_faults(error_rate=1.0, error_code=code, retry_after=3)
    response = await http.get("/api/v1/namespaces/default/pods")
    assert response.status == code
    assert response.headers.get("Retry-After") == retry_after
    assert (await response.json())["kind"] == "Status"
    world.clusters["faulty"].set_faults(error_rate=0)
    assert (await http.get("/api/v1/namespaces/default/pods")).status == 200


async def test_latency_delays_each_request(world: SimWorld, http: aiohttp.ClientSession) -> None:
    world.clusters["faulty"].set_faults(latency=0.3)
    started = time.monotonic()
    assert (await http.get("/version")).status == 200
    assert time.monotonic() - started >= 0.3


async def test_node_failure_fails_its_pods_with_node_lost(world: SimWorld, http: aiohttp.ClientSession) -> None:
    cluster = world.clusters["faulty"]
    assert (await http.post("/api/v1/namespaces/default/pods", json=POD)).status == 201
    cluster.store.mutate(
        "pods", "default", "p", lambda p: (p["spec"].update(nodeName="n1"), p["status"].update(phase="Running"))
    )
    await cluster.fail_node("n1")
    pod = await (await http.get("/api/v1/namespaces/default/pods/p")).json()
    assert pod["status"]["phase"] == "Failed" and pod["status"]["reason"] == "NodeLost"
    node = await (await http.get("/api/v1/nodes/n1")).json()
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "Unknown"
    assert {t["key"] for t in node["spec"]["taints"]} == {"node.kubernetes.io/unreachable"}
    await cluster.recover_node("n1")
    node = await (await http.get("/api/v1/nodes/n1")).json()
    assert next(c for c in node["status"]["conditions"] if c["type"] == "Ready")["status"] == "True"
    assert not node["spec"]["taints"]


async def test_request_counters_per_verb_and_resource(world: SimWorld, http: aiohttp.ClientSession) -> None:
    cluster = world.clusters["faulty"]
    cluster.faults.reset_counters()
    await http.post("/api/v1/namespaces/default/pods", json=POD)
    await http.get("/api/v1/namespaces/default/pods/p")
    await http.get("/api/v1/namespaces/default/pods/p")
    await http.get("/api/v1/namespaces/default/pods")
    assert cluster.request_counts() == {("create", "pods"): 1, ("get", "pods"): 2, ("list", "pods"): 1}


async def test_control_endpoint_switches_faults_and_reports_counters(
    world: SimWorld, http: aiohttp.ClientSession
) -> None:
    control = world.control
    async with aiohttp.ClientSession(control.url) as ctl:
        assert (await ctl.get("/clusters")).status == 401
        auth = {"Authorization": f"Bearer {control.token}"}
        bad = await ctl.patch("/clusters/faulty/faults", json={"errorRate": 2}, headers=auth)
        assert bad.status == 400 and "error_rate" in (await bad.json())["error"]
        down = await ctl.patch("/clusters/faulty/faults", json={"outage": True}, headers=auth)
        assert (await down.json())["outage"] is True
        with pytest.raises(aiohttp.ClientConnectorError):
            await http.get("/version")
        await ctl.patch("/clusters/faulty/faults", json={"outage": False}, headers=auth)
        assert (await http.get("/api/v1/nodes")).status == 200
        counters = await (await ctl.get("/clusters/faulty/requests", headers=auth)).json()
        assert {"verb": "list", "resource": "nodes", "count": 1} in counters["counters"]
        failed = await ctl.post("/clusters/faulty/nodes/n2/fail", headers=auth)
        assert failed.status == 200
        missing = await ctl.post("/clusters/faulty/nodes/nope/fail", headers=auth)
        assert missing.status == 404


async def test_blackhole_accepts_then_never_answers_until_switched_off(
    world: SimWorld, http: aiohttp.ClientSession
) -> None:
    control = world.control
    auth = {"Authorization": f"Bearer {control.token}"}
    async with aiohttp.ClientSession(control.url, headers=auth) as ctl:
        bad = await ctl.patch("/clusters/faulty/faults", json={"blackhole": "yes"})
        assert bad.status == 400 and "blackhole" in (await bad.json())["error"]
        dark = await ctl.patch("/clusters/faulty/faults", json={"blackhole": True})
        assert (await dark.json())["blackhole"] is True
        started = time.monotonic()
        with pytest.raises(TimeoutError):  # connected (no ClientConnectorError), then nothing at all
            await http.get("/version", timeout=aiohttp.ClientTimeout(total=0.5))
        assert time.monotonic() - started >= 0.5
        await ctl.patch("/clusters/faulty/faults", json={"blackhole": False})
        assert (await http.get("/version")).status == 200


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "code"),
    [
        ("POST", "/api/v1/namespaces/default/pods", {"Content-Type": "text/plain"}, b"{}", 415),
        ("PATCH", "/api/v1/namespaces/default/pods/p", {"Content-Type": "application/xml"}, b"{}", 415),
        ("PUT", "/api/v1/namespaces/default/pods", {"Content-Type": "application/json"}, b"{}", 405),
        ("GET", "/api/v1/widgets", {}, b"", 404),
        ("POST", "/api/v1/namespaces/default/pods", {"Content-Type": "application/json"}, b"{not json", 400),
        (
            "POST",
            "/api/v1/namespaces/default/pods",
            {"Content-Type": "application/json"},
            b'{"metadata":{"name":"t"},"spec":{"containers":[{"name":"c","image":5}]}}',
            422,
        ),
        (
            "POST",
            "/api/v1/namespaces/other/pods",
            {"Content-Type": "application/json"},
            b'{"metadata":{"name":"t","namespace":"default"},"spec":{"containers":[{"name":"c","image":"x"}]}}',
            400,
        ),
    ],
)
async def test_http_errors_are_kubernetes_statuses(
    http: aiohttp.ClientSession, method: str, path: str, headers: dict, body: bytes, code: int
) -> None:
    await http.post("/api/v1/namespaces/default/pods", json=POD)
    response = await http.request(method, path, headers=headers, data=body)
    assert response.status == code
    status = await response.json()
    assert status["kind"] == "Status" and status["code"] == code


async def test_a_cluster_starts_and_stops_alone(tmp_path: Path) -> None:
    cluster = SimCluster(SPEC, kubeconfig_dir=tmp_path, node_side=False)
    await cluster.start()
    assert cluster.kubeconfig_path.exists() and cluster.port > 0
    await cluster.stop()
    with pytest.raises(aiohttp.ClientConnectorError):
        async with aiohttp.ClientSession() as s:
            await s.get(f"{cluster.url}/version", ssl=cluster.ssl_context())


async def test_table_output_for_lists_and_watches(http: aiohttp.ClientSession) -> None:
    """What `kubectl get -o wide` and `kubectl get -w` ask for: server-side printed Tables."""
    await http.post("/api/v1/namespaces/default/pods", json=POD)
    accept = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}
    table = await (await http.get("/api/v1/namespaces/default/pods", headers=accept)).json()
    assert table["kind"] == "Table" and [c["name"] for c in table["columnDefinitions"]][:3] == [
        "Name",
        "Ready",
        "Status",
    ]
    assert table["rows"][0]["cells"][:3] == ["p", "0/1", "Pending"]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    params = {"watch": "1", "resourceVersion": "0", "timeoutSeconds": "1"}
    async with http.get("/api/v1/namespaces/default/pods", params=params, headers=accept) as response:
        first = json.loads(await response.content.readline())
        await http.patch(
            "/api/v1/namespaces/default/pods/p",
            json={"metadata": {"labels": {"x": "y"}}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        second = json.loads(await response.content.readline())
    assert (first["type"], second["type"]) == ("ADDED", "MODIFIED")
    assert first["object"]["kind"] == second["object"]["kind"] == "Table"
    assert first["object"]["columnDefinitions"] and second["object"]["columnDefinitions"] == []
    assert second["object"]["rows"][0]["object"]["metadata"]["labels"] == {"x": "y"}


async def test_lagging_watches_write_each_event_late_and_in_order(
    world: SimWorld, http: aiohttp.ClientSession
) -> None:
    """`lag_watches` holds every watch's events back (one opened before the fault too), in order, while other
    requests are answered at once: a watch behind its API server, as the gateway's is under load."""
    cluster, lag = world.clusters["faulty"], 0.4
    params = {"watch": "1", "resourceVersion": str(cluster.store.resource_version), "timeoutSeconds": "10"}
    async with http.get("/api/v1/namespaces/default/pods", params=params) as response:
        cluster.lag_watches(lag)
        changed = []
        for name in ("p1", "p2"):
            changed.append(time.monotonic())
            created = await http.post("/api/v1/namespaces/default/pods", json={**POD, "metadata": {"name": name}})
            assert created.status == 201
        events = []
        for _ in changed:
            events.append(json.loads(await response.content.readline()))
            assert time.monotonic() - changed[len(events) - 1] >= lag
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "p1"), ("ADDED", "p2")]


async def test_a_lost_answer_carries_the_create_out_then_drops_the_connection(
    world: SimWorld, http: aiohttp.ClientSession
) -> None:
    cluster = world.clusters["faulty"]
    cluster.lose_answers("create", "pods", 1)
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await http.post("/api/v1/namespaces/default/pods", json=POD)
    assert cluster.store.get("pods", "default", "p")["metadata"]["name"] == "p"  # carried out
    again = await http.post("/api/v1/namespaces/default/pods", json=POD)  # the next answer comes through
    assert again.status == 409 and (await again.json())["reason"] == "AlreadyExists"
    assert (await http.get("/api/v1/namespaces/default/pods/p")).status == 200  # other requests are untouched
    assert cluster.request_counts()[("create", "pods")] == 2
    assert cluster.faults.settings()["lostAnswers"] == []


async def test_lost_answers_count_down_per_verb_and_resource(world: SimWorld, http: aiohttp.ClientSession) -> None:
    """Counted by the server: aiohttp resends a GET whose connection dropped, so one call may spend two."""
    cluster = world.clusters["faulty"]
    assert (await http.post("/api/v1/namespaces/default/pods", json=POD)).status == 201
    cluster.lose_answers("get", "pods", 2)
    statuses: list[int | str] = []
    while 200 not in statuses and len(statuses) < 5:
        try:
            statuses.append((await http.get("/api/v1/namespaces/default/pods/p")).status)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            statuses.append("lost")
    assert statuses[0] == "lost" and statuses[-1] == 200
    assert cluster.request_counts()[("get", "pods")] == 3  # two carried out and dropped, then one answered
    assert cluster.request_counts()[("create", "pods")] == 1  # other verbs untouched
    cluster.lose_answers("get", "pods", 5)
    cluster.lose_answers("get", "pods", 0)  # clears
    assert (await http.get("/api/v1/namespaces/default/pods/p")).status == 200
    with pytest.raises(ValueError, match="count"):
        cluster.lose_answers("create", "pods", -1)


async def test_control_endpoint_sets_lost_answers_and_refuses_malformed_ones(world: SimWorld) -> None:
    control = world.control
    auth = {"Authorization": f"Bearer {control.token}"}
    async with aiohttp.ClientSession(control.url, headers=auth) as ctl:
        lost = [{"verb": "create", "resource": "pods", "count": 2}]
        settings = await (await ctl.patch("/clusters/faulty/faults", json={"lostAnswers": lost})).json()
        assert settings["lostAnswers"] == lost
        for bad in ({"lostAnswers": {"create": 1}}, {"lostAnswers": [{"verb": "create", "count": 1}]},
                    {"lostAnswers": [{"verb": "create", "resource": "pods", "count": -1}]},
                    {"lostAnswers": [{"verb": "create", "resource": "pods", "count": 1, "extra": 1}]}):  # fmt: skip
            refused = await ctl.patch("/clusters/faulty/faults", json=bad)
            assert refused.status == 400 and "lostAnswers" in (await refused.json())["error"]
        assert (await (await ctl.get("/clusters/faulty/faults")).json())["lostAnswers"] == lost  # unchanged


async def test_refuse_pods_answers_pod_creates_422_and_nothing_else(
    world: SimWorld, http: aiohttp.ClientSession
) -> None:
    world.clusters["faulty"].set_faults(refuse_pods="privileged pods are not allowed here")
    response = await http.post("/api/v1/namespaces/default/pods", json=POD)
    body = await response.json()
    assert (response.status, body["reason"]) == (422, "Invalid")
    assert "privileged pods are not allowed here" in body["message"]
    assert (await http.get("/api/v1/namespaces/default/pods")).status == 200
    world.clusters["faulty"].set_faults(refuse_pods="")
    assert (await http.post("/api/v1/namespaces/default/pods", json=POD)).status == 201


async def test_failed_requests_are_answered_500_without_being_carried_out(
    world: SimWorld, http: aiohttp.ClientSession
) -> None:
    cluster = world.clusters["faulty"]
    assert (await http.post("/api/v1/namespaces/default/pods", json=POD)).status == 201
    cluster.fail_requests("delete", "pods", 2)
    answers = [(await http.delete("/api/v1/namespaces/default/pods/p")).status for _ in range(2)]
    assert answers == [500, 500] and cluster.store.get("pods", "default", "p") is not None  # not carried out
    assert (await http.get("/api/v1/namespaces/default/pods/p")).status == 200  # other verbs untouched
    cluster.fail_requests("delete", "pods", 3)
    cluster.fail_requests("delete", "pods", 0)  # clears
    assert (await http.delete("/api/v1/namespaces/default/pods/p")).status == 200
    with pytest.raises(ValueError, match="count"):
        cluster.fail_requests("delete", "pods", -1)
