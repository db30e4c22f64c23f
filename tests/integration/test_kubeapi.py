"""ClusterClient against the simulator's API server over real HTTPS: CRUD, errors, retries, 401 refresh,
TLS trust, service accounts and TokenRequest, each on HTTP/2 and on HTTP/1.1 (a simulator that offers only
HTTP/1.1 in ALPN). Watches are in test_kubeapi_watch.py."""

from __future__ import annotations

import asyncio
import logging
import random
import traceback
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.clusters import kubeapi as k
from gateway.clusters.kubeapi import ClusterClient, RetryPolicy, Timeouts
from gateway.credentials.base import BearerToken, Endpoint
from gateway.credentials.static import StaticProvider
from gateway.sim.cluster import SimCluster
from gateway.sim.config import SimClusterSpec, UserSpec

READER_TOKEN = "reader-token-0123456789"


class Sleeps:
    """Records the client's backoff delays instead of waiting them out."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


class RotatedProvider(StaticProvider):
    """Hands out a stale token until asked to refresh: the 401-refresh path."""

    def __init__(self, cluster: str, endpoint: Endpoint, stale: str, fresh: str) -> None:
        super().__init__(cluster, endpoint, stale)
        self._fresh = BearerToken(value=fresh)

    async def token(self, *, force_refresh: bool = False) -> BearerToken | None:
        stale = await super().token(force_refresh=force_refresh)
        return self._fresh if self.refreshes else stale


def spec(name: str = "kube-a", **extra: Any) -> SimClusterSpec:
    reader = UserSpec(
        name="reader", token=READER_TOKEN, namespaces=("team-a",), resources=("pods",), verbs=("get", "list")
    )
    return SimClusterSpec(name=name, namespaces=("default", "team-a", "team-b"), users=(reader,), **extra)


PROTOCOLS = ["h2", "http/1.1"]


@pytest.fixture(params=PROTOCOLS)
async def sim(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[SimCluster]:
    """The simulator offering h2 (every request the client makes rides HTTP/2) or HTTP/1.1 only."""
    cluster = SimCluster(spec(http2=request.param == "h2"), kubeconfig_dir=tmp_path, node_side=False)
    await cluster.start()
    try:
        yield cluster
        if cluster.request_counts():  # whatever was answered went the way the test is named for
            assert (cluster.http2_connections_accepted > 0) == (request.param == "h2")
    finally:
        await cluster.stop()


def endpoint(cluster: SimCluster) -> Endpoint:
    return Endpoint(server=cluster.url, ca_data=cluster.ca_pem)


def client_for(cluster: SimCluster, token: str | None = None, **kwargs: Any) -> ClusterClient:
    provider = StaticProvider(cluster.name, endpoint(cluster), token or cluster.admin_token)
    return ClusterClient(provider, **kwargs)


@pytest.fixture
async def api(sim: SimCluster) -> AsyncIterator[ClusterClient]:
    async with client_for(sim) as client:
        yield client


def pod(name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "python:3.12"}]},
    }


async def test_version_is_the_health_probe(api: ClusterClient) -> None:
    version = await api.get_version()
    assert version["major"] == "1"


async def test_pod_crud_round_trip(api: ClusterClient) -> None:
    created = await api.create_pod("team-a", pod("p1", app="x"))
    assert created["metadata"]["uid"]
    assert (await api.get_pod("team-a", "p1"))["metadata"]["uid"] == created["metadata"]["uid"]
    await api.create_pod("team-a", pod("p2", app="y"))
    await api.create_pod("team-b", pod("p3", app="x"))
    in_a = await api.list_pods("team-a", label_selector="app=x")
    assert [p["metadata"]["name"] for p in in_a.items] == ["p1"]
    everywhere = await api.list_pods(label_selector="app=x")
    assert sorted(p["metadata"]["name"] for p in everywhere.items) == ["p1", "p3"]
    assert int(everywhere.resource_version) >= int(created["metadata"]["resourceVersion"])
    await api.delete_pod("team-a", "p1", grace_seconds=0)
    with pytest.raises(k.NotFound, match="p1"):
        await api.get_pod("team-a", "p1")


async def test_a_create_and_a_delete_whose_answer_is_not_read_still_act_and_raise_the_servers_errors(
    api: ClusterClient, sim: SimCluster
) -> None:
    """`answer=False` (the dispatcher's creates and deletes): nothing decoded and returned, the same effect, and
    every error answer raised as with the answer read (AlreadyExists, Invalid, Forbidden, NotFound)."""
    assert await api.create_pod("team-a", pod("quiet"), answer=False) is None
    assert (await api.get_pod("team-a", "quiet"))["metadata"]["name"] == "quiet"
    with pytest.raises(k.AlreadyExists, match='"quiet" already exists'):
        await api.create_pod("team-a", pod("quiet"), answer=False)
    bad = pod("bad")
    bad["spec"]["containers"] = []
    with pytest.raises(k.Invalid):
        await api.create_pod("team-a", bad, answer=False)
    async with client_for(sim, READER_TOKEN) as reader:
        with pytest.raises(k.Forbidden):
            await reader.create_pod("team-a", pod("nope"), answer=False)
        with pytest.raises(k.Forbidden):
            await reader.delete_pod("team-a", "quiet", answer=False)
    assert await api.delete_pod("team-a", "quiet", grace_seconds=0, answer=False) is None
    with pytest.raises(k.NotFound, match="quiet"):
        await api.get_pod("team-a", "quiet")
    with pytest.raises(k.NotFound, match="quiet"):
        await api.delete_pod("team-a", "quiet", grace_seconds=0, answer=False)


async def test_list_pages_follow_continue_tokens(api: ClusterClient) -> None:
    for i in range(7):
        await api.create_pod("team-a", pod(f"p{i}"))
    first = await api.list_pods("team-a", limit=3)
    assert len(first.items) == 3 and first.continue_token
    names = [p["metadata"]["name"] for p in first.items]
    token = first.continue_token
    while token:
        page = await api.list_pods("team-a", limit=3, continue_token=token)
        names += [p["metadata"]["name"] for p in page.items]
        token = page.continue_token
    assert sorted(names) == [f"p{i}" for i in range(7)]
    everything = await api.list_all(k.PODS, "team-a", page_size=2)
    assert len(everything.items) == 7 and everything.resource_version


async def test_create_twice_is_already_exists_with_the_servers_message(api: ClusterClient, sim: SimCluster) -> None:
    await api.create_pod("default", pod("dup"))
    with pytest.raises(k.AlreadyExists) as caught:
        await api.create_pod("default", pod("dup"))
    error = caught.value
    assert (error.status, error.reason, error.cluster) == (409, "AlreadyExists", "kube-a")
    assert "POST /api/v1/namespaces/default/pods" in str(error) and '"dup" already exists' in str(error)
    assert sim.admin_token not in str(error)


async def test_invalid_pod_is_invalid(api: ClusterClient) -> None:
    bad = pod("bad")
    bad["spec"]["containers"] = []
    with pytest.raises(k.Invalid):
        await api.create_pod("default", bad)


async def test_forbidden_outside_the_callers_rights(sim: SimCluster) -> None:
    async with client_for(sim, READER_TOKEN) as reader:
        assert (await reader.list_pods("team-a")).items == ()
        with pytest.raises(k.Forbidden, match="team-b"):
            await reader.list_pods("team-b")
        with pytest.raises(k.Forbidden):
            await reader.create_pod("team-a", pod("nope"))


async def test_401_refreshes_the_token_once_and_retries(sim: SimCluster) -> None:
    provider = RotatedProvider(sim.name, endpoint(sim), stale="expired-token", fresh=sim.admin_token)
    async with ClusterClient(provider) as client:
        await client.list_pods("default")
        await client.list_pods("default")  # the fresh token is kept: no second refresh
    assert provider.refreshes == 1


async def test_401_after_a_refresh_is_unauthorized(sim: SimCluster) -> None:
    provider = StaticProvider(sim.name, endpoint(sim), "never-valid-token")
    before = sim.faults.count()
    async with ClusterClient(provider) as client:
        with pytest.raises(k.Unauthorized) as caught:
            await client.list_pods("default")
    assert provider.refreshes == 1
    assert sim.faults.count() - before == 2
    report = "".join(traceback.TracebackException.from_exception(caught.value, capture_locals=True).format())
    assert "Authorization" in report  # the headers are in the traceback's locals...
    assert "never-valid-token" not in report  # ...but never the token


async def test_5xx_is_retried_by_the_policy_then_raised(sim: SimCluster) -> None:
    sleeps = Sleeps()
    policy = RetryPolicy(backoff=(0.1, 0.2, 0.3))
    async with client_for(sim, retry_policy=policy, sleep=sleeps, draw=lambda: 1.0) as client:
        sim.set_faults(error_rate=1.0, error_code=500)
        before = sim.faults.count()
        with pytest.raises(k.ServerError, match="injected fault"):
            await client.list_pods("default")
    assert sim.faults.count() - before == 4
    assert sleeps.delays == [0.1, 0.2, 0.3]  # draw=1: the ceilings


async def test_retries_of_clients_failing_together_are_spread_by_full_jitter(sim: SimCluster) -> None:
    """Two clients failing the same calls at the same time do not retry at the same instants."""
    policy = RetryPolicy(backoff=(1.0, 1.0, 1.0))
    waits = []
    sim.set_faults(error_rate=1.0, error_code=500)
    for seed in (1, 2):
        sleeps = Sleeps()
        async with client_for(sim, retry_policy=policy, sleep=sleeps, draw=random.Random(seed).random) as client:
            with pytest.raises(k.ServerError):
                await client.list_pods("default")
        assert len(sleeps.delays) == 3 and all(0.0 <= d <= 1.0 for d in sleeps.delays)
        waits.append(sleeps.delays)
    assert waits[0] != waits[1]
    assert len({round(d, 6) for d in waits[0] + waits[1]}) == 6


async def test_the_health_probe_is_never_retried(sim: SimCluster) -> None:
    """Health has its own hysteresis; retrying inside the probe only delays noticing an outage."""
    sleeps = Sleeps()
    async with client_for(sim, retry_policy=RetryPolicy(backoff=(0.1, 0.2, 0.3)), sleep=sleeps) as client:
        sim.set_faults(error_rate=1.0, error_code=500)
        before = sim.faults.count()
        with pytest.raises(k.ServerError):
            await client.get_version()
    assert sim.faults.count() - before == 1
    assert sleeps.delays == []


async def test_429_waits_at_least_retry_after_and_then_succeeds(sim: SimCluster) -> None:
    sleeps = Sleeps()
    async with client_for(sim, retry_policy=RetryPolicy(backoff=(0.1,) * 50), sleep=sleeps, draw=lambda: 0.0) as client:
        sim.faults.rng.seed(7)
        sim.set_faults(error_rate=0.5, error_code=429, retry_after=2)
        for _ in range(5):
            await client.list_pods("default")
    assert sleeps.delays and all(delay == 2.0 for delay in sleeps.delays)  # draw=0: Retry-After, no more


async def test_4xx_is_not_retried(api: ClusterClient, sim: SimCluster) -> None:
    before = sim.faults.count()
    with pytest.raises(k.NotFound):
        await api.get_pod("default", "missing")
    assert sim.faults.count() - before == 1


async def test_outage_is_api_unreachable_and_recovery_works(sim: SimCluster, caplog: pytest.LogCaptureFixture) -> None:
    sleeps = Sleeps()
    async with client_for(sim, retry_policy=RetryPolicy(backoff=(0.0, 0.0)), sleep=sleeps) as client:
        await client.get_version()
        await sim.outage()
        with caplog.at_level(logging.DEBUG, logger="gateway.clusters.kubeapi"), pytest.raises(k.ApiUnreachable) as e:
            await client.create_pod("default", pod("during-outage"))
        assert e.value.maybe_sent is False  # refused: the create cannot have landed
        assert len(sleeps.delays) == 2
        assert "attempt 1/3 failed" in caplog.text and "attempt 2/3 failed" in caplog.text
        assert sim.admin_token not in caplog.text
        await sim.restore()
        assert (await client.list_pods("default")).items == ()


async def test_only_the_endpoints_ca_is_trusted(tmp_path: Path, sim: SimCluster) -> None:
    """Another cluster's CA does not vouch for this server, whatever the process-wide CA variables say."""
    other = SimCluster(spec("kube-b"), kubeconfig_dir=tmp_path / "b", node_side=False)
    wrong = StaticProvider(sim.name, Endpoint(server=sim.url, ca_data=other.ca_pem), sim.admin_token)
    async with ClusterClient(wrong, retry_policy=k.NO_RETRY) as client:
        with pytest.raises(k.ApiUnreachable, match="certificate verify failed"):
            await client.get_version()


async def test_tls_server_name_is_checked_against_the_certificate(sim: SimCluster) -> None:
    named = Endpoint(server=sim.url, ca_data=sim.ca_pem, tls_server_name="localhost")
    async with ClusterClient(StaticProvider(sim.name, named, sim.admin_token)) as client:
        assert (await client.get_version())["major"] == "1"
    misnamed = Endpoint(server=sim.url, ca_data=sim.ca_pem, tls_server_name="elsewhere.example")
    async with ClusterClient(StaticProvider(sim.name, misnamed, sim.admin_token), retry_policy=k.NO_RETRY) as client:
        with pytest.raises(k.ApiUnreachable):
            await client.get_version()


async def test_a_slow_server_times_out_as_unreachable(sim: SimCluster) -> None:
    sim.set_faults(latency=0.5)
    timeouts = Timeouts(request=0.2)
    async with client_for(sim, timeouts=timeouts, retry_policy=k.NO_RETRY) as client:
        with pytest.raises(k.ApiUnreachable, match="unreachable") as e:
            await client.get_version()
        assert e.value.maybe_sent is True  # sent, then no answer in time: it may have acted


async def test_closed_client_refuses_calls(sim: SimCluster) -> None:
    client = client_for(sim)
    await client.get_version()
    await client.close()
    with pytest.raises(RuntimeError, match="closed"):
        await client.get_version()


async def test_nodes_and_events_lists(tmp_path: Path) -> None:
    from gateway.sim.config import NodeSpec

    nodes = (NodeSpec(name="n1", allocatable={"cpu": "4"}), NodeSpec(name="n2", labels={"gpu": "a100"}))
    cluster = SimCluster(spec(nodes=nodes), kubeconfig_dir=tmp_path, node_side=False)
    await cluster.start()
    try:
        async with client_for(cluster) as client:
            assert sorted(n["metadata"]["name"] for n in (await client.list_nodes()).items) == ["n1", "n2"]
            assert [n["metadata"]["name"] for n in (await client.list_nodes(label_selector="gpu=a100")).items] == ["n2"]
            assert (await client.list_events("default", field_selector="involvedObject.name=none")).items == ()
    finally:
        await cluster.stop()


# --- the credentials issue's calls: service accounts, RBAC, secrets, TokenRequest ---------------------


def role(name: str, verbs: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": name},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": verbs}],
    }


async def test_ensure_creates_then_replaces(api: ClusterClient) -> None:
    first = await api.ensure_object(k.ROLES, "team-a", role("viewer", ["get"]))
    second = await api.ensure_object(k.ROLES, "team-a", role("viewer", ["get", "list"]))
    assert second["metadata"]["uid"] == first["metadata"]["uid"]
    assert (await api.get_object(k.ROLES, "team-a", "viewer"))["rules"][0]["verbs"] == ["get", "list"]


async def test_token_request_bound_to_a_secret_grants_the_role_until_the_secret_goes(
    api: ClusterClient, sim: SimCluster
) -> None:
    ns = "team-a"
    await api.ensure_object(k.SERVICE_ACCOUNTS, ns, {"metadata": {"name": "issued"}})
    await api.ensure_object(k.ROLES, ns, role("viewer", ["get", "list"]))
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "issued-viewer"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "viewer"},
        "subjects": [{"kind": "ServiceAccount", "name": "issued", "namespace": ns}],
    }
    await api.ensure_object(k.ROLE_BINDINGS, ns, binding)
    secret = await api.create_object(k.SECRETS, ns, {"metadata": {"name": "issued-binding"}, "type": "Opaque"})
    token, expires = await api.create_token(
        ns, "issued", expiration_seconds=600, bound_secret="issued-binding", bound_secret_uid=secret["metadata"]["uid"]
    )
    assert token and expires
    async with client_for(sim, token, retry_policy=k.NO_RETRY) as issued:
        assert (await issued.list_pods(ns)).items == ()
        with pytest.raises(k.Forbidden):
            await issued.list_pods("team-b")
        await api.delete_object(k.SECRETS, ns, "issued-binding")
        with pytest.raises(k.Unauthorized):
            await issued.list_pods(ns)
