"""The simulator serves HTTP/2 streams straight through its pipeline (gateway/sim/http2.py, exchange.py): every
answer's status, headers and body are what HTTP/1.1 gives for the same request, a lost answer cuts only its
stream, an oversized body is refused with a Status, and a watch's events reach a client that reads slowly."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.sim.cluster import SimCluster
from gateway.sim.config import NodeSpec, SimClusterSpec
from gateway.sim.exchange import MAX_BODY

NODE = NodeSpec(name="n1", allocatable={"cpu": "8", "memory": "16Gi", "pods": "110"})


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[SimCluster]:
    cluster = SimCluster(SimClusterSpec(name="exchange", nodes=(NODE,)), kubeconfig_dir=tmp_path, node_side=False)
    await cluster.start()
    try:
        yield cluster
    finally:
        await cluster.stop()


def client(sim: SimCluster, http2: bool) -> httpx.AsyncClient:
    context = ssl.create_default_context(cadata=sim.ca_pem.decode())  # our CA only, not the global bundle
    headers = {"Authorization": f"Bearer {sim.admin_token}"}
    return httpx.AsyncClient(
        base_url=sim.url, verify=context, http1=not http2, http2=http2, headers=headers, timeout=20
    )


def pod(name: str, **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "main", "image": "busybox"}], **extra}}  # fmt: skip


def comparable(response: httpx.Response) -> tuple[int, str, list[str], Any]:
    """What must not depend on the protocol; uid, times and versions differ between two creates."""
    body = response.json()
    for key in ("uid", "creationTimestamp", "resourceVersion", "name", "managedFields"):
        body.get("metadata", {}).pop(key, None)
    return response.status_code, response.headers["content-type"], response.headers.get_list("warning"), body


@pytest.mark.parametrize(
    "method, path, body, content_type",
    [
        ("POST", "/api/v1/namespaces/default/pods", pod("p", unknownField=1), "application/json"),  # Warning header
        ("POST", "/api/v1/namespaces/default/pods", b"{not json", "application/json"),  # 400 Status
        ("POST", "/api/v1/namespaces/default/pods", b"<pod/>", "application/xml"),  # 415
        ("GET", "/api/v1/namespaces/default/pods/ghost", None, None),  # 404 Status
        ("PATCH", "/api/v1/namespaces/default/pods/ghost", {"a": 1}, "application/merge-patch+json"),
        ("GET", "/api/v1/namespaces/nowhere/pods?labelSelector=a%3Db", None, None),
        ("GET", "/apis/batch/v1", None, None),  # discovery
        ("DELETE", "/api/v1/namespaces/default/pods", None, None),  # deletecollection
        ("GET", "/api/v1/namespaces/default/pods/ghost/exec?command=ls", None, None),  # exec needs a WebSocket
    ],
)
async def test_answers_over_http2_are_the_answers_over_http1(
    sim: SimCluster, method: str, path: str, body: Any, content_type: str | None
) -> None:
    answers = []
    for http2 in (False, True):
        async with client(sim, http2) as http:
            content = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
            headers = {"Content-Type": content_type} if content_type else {}
            response = await http.request(method, path, content=content, headers=headers)
            assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
            answers.append(comparable(response))
            if response.status_code == 201:  # the same create again next: the pod goes first
                assert (await http.delete("/api/v1/namespaces/default/pods/p?gracePeriodSeconds=0")).status_code == 200
    assert answers[0] == answers[1]
    assert sim.http2_handlers_open() == 0


async def test_a_lost_answer_over_http2_cuts_its_stream_only_and_the_create_is_carried_out(sim: SimCluster) -> None:
    sim.lose_answers("create", "pods", 1)
    async with client(sim, True) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post("/api/v1/namespaces/default/pods", json=pod("lost"))
        found = await http.get("/api/v1/namespaces/default/pods/lost")  # the same connection serves on
        assert found.status_code == 200 and found.json()["metadata"]["name"] == "lost"
    assert sim.http2_connections_accepted == 1


async def test_a_body_past_the_limit_over_http2_is_refused_413_with_a_status(sim: SimCluster) -> None:
    async with client(sim, True) as http:
        response = await http.post(
            "/api/v1/namespaces/default/pods", content=b" " * (MAX_BODY + 1), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 413
        assert response.json()["reason"] == "RequestEntityTooLarge"
        assert (await http.get("/version")).status_code == 200


async def test_a_watch_over_http2_streams_every_event_to_a_slow_reader(sim: SimCluster) -> None:
    """More events than one flow-control window holds: the watch's writer waits for the reader's window
    updates and nothing is lost or reordered."""
    names = [f"w{i:03d}" for i in range(120)]
    watch_path = "/api/v1/namespaces/default/pods?watch=true&timeoutSeconds=30"
    async with client(sim, True) as http, http.stream("GET", watch_path) as watch:
        for name in names:  # each ADDED event is ~1.3 KiB: 120 of them fill the 64 KiB initial window twice
            pod_body = pod(name, nodeSelector={"nowhere": "true"})
            pod_body["metadata"]["annotations"] = {"pad": "x" * 600}
            assert (await http.post("/api/v1/namespaces/default/pods", json=pod_body)).status_code == 201
        seen: list[str] = []
        async for line in watch.aiter_lines():
            event = json.loads(line)
            assert event["type"] == "ADDED"
            seen.append(event["object"]["metadata"]["name"])
            if len(seen) == len(names):
                break
    assert seen == names
