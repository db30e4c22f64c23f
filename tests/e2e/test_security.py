"""Tenants over real gRPC: authentication, authorization, quotas, Pod Security, limits and audit.

Every refusal is checked twice: the caller gets the right code naming the rule, and no object was
created on any simulated cluster (each cluster's own store reports every addition).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from gateway._proto.podgate.v1 import (
    clusters_pb2,
    clusters_pb2_grpc,
    common_pb2,
    credentials_pb2,
    credentials_pb2_grpc,
    dispatch_pb2,
    dispatch_pb2_grpc,
)
from gateway.app import Gateway, start_gateway
from gateway.policy.identity import new_token
from gateway.settings import Settings
from gateway.sim.cluster import SimWorld
from tests.e2e.conftest import gateway_settings, virtual_world

WATCHED = ("pods", "serviceaccounts", "secrets", "roles", "rolebindings")

TENANTS: list[dict[str, Any]] = [
    {
        "name": "data-eng",
        "clusters": ["local-eu-gpu", "local-eu-cpu"],
        "namespaces": ["default"],
        "regions": ["eu-west-1", "eu-central-1"],
        "max_concurrent_pods": 1,
        "kubeconfig": {"allowed": True, "max_access": "view", "max_ttl_seconds": 3600},
        "identities": {"cert_names": ["data-eng-client"]},
    },
    {
        "name": "ml",
        "clusters": ["*"],
        "namespaces": ["default"],
        "rate_limit": {"per_second": 0.001, "burst": 2},
    },
    {"name": "platform", "admin": True, "clusters": ["*"], "namespaces": ["*"]},
]


@dataclass
class Created:
    """Objects added to any simulated cluster, from the clusters' own stores."""

    added: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def watch(self, world: SimWorld) -> Callable[[], None]:
        stops = []
        for name, cluster in world.clusters.items():
            for resource in WATCHED:

                def record(type_: str, new: Any, old: Any, name: str = name, resource: str = resource) -> None:
                    if type_ == "ADDED":
                        self.added.append((name, resource, new))

                stops.append(cluster.store.subscribe(resource, record))

        def stop_all() -> None:
            for stop in stops:
                stop()

        return stop_all

    def pods(self) -> list[tuple[str, str]]:
        return [(cluster, obj["metadata"]["name"]) for cluster, r, obj in self.added if r == "pods"]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[SimWorld]:
    """The local clusters with virtual nodes: accepted pods cost a timer, not a process."""
    async with virtual_world(tmp_path) as w:
        yield w


LIMITS = {"request_bytes": 256 * 1024, "manifest_bytes": 64 * 1024}


@dataclass
class Tenants:
    gateway: Gateway
    channel: grpc.aio.Channel
    tokens: dict[str, str]
    created: Created
    settings: Settings

    def md(self, tenant: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.tokens[tenant]}"),)

    @property
    def dispatch(self) -> dispatch_pb2_grpc.DispatchServiceStub:
        return dispatch_pb2_grpc.DispatchServiceStub(self.channel)

    @property
    def clusters(self) -> clusters_pb2_grpc.ClusterServiceStub:
        return clusters_pb2_grpc.ClusterServiceStub(self.channel)

    @property
    def credentials(self) -> credentials_pb2_grpc.CredentialsServiceStub:
        return credentials_pb2_grpc.CredentialsServiceStub(self.channel)


def tenant_settings(tmp_path: Path, **extra: Any) -> tuple[Settings, dict[str, str]]:
    tokens, entries = {}, []
    for tenant in TENANTS:
        token, hashed = new_token(f"{tenant['name']}-token")
        tokens[tenant["name"]] = token
        entries.append({"id": f"{tenant['name']}-token", "tenant": tenant["name"], "hash": hashed})
    raw = {
        "tenants": TENANTS,
        "authentication": {"static_tokens": entries},
        "audit": {"sink": str(tmp_path / "audit.jsonl")},
    }
    return gateway_settings(tmp_path, {**raw, **extra}), tokens


@pytest.fixture
async def tenants(world: SimWorld, tmp_path: Path) -> AsyncIterator[Tenants]:
    settings, tokens = tenant_settings(tmp_path, limits=LIMITS)
    gw = await start_gateway(settings)
    assert gw.problems == []
    created = Created()
    stop_watching = created.watch(world)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.port}") as channel:
        yield Tenants(gateway=gw, channel=channel, tokens=tokens, created=created, settings=settings)
    stop_watching()
    await gw.stop()


def manifest(*, namespace: str = "default", seconds: int = 1, labels: dict[str, str] | None = None, **spec: Any) -> str:
    container = {"name": "base", "image": "busybox", "command": ["true"]}
    body: dict[str, Any] = {"containers": [container], **spec}
    metadata = {"name": "sec", "namespace": namespace, "labels": labels or {}}
    metadata["annotations"] = {"sim.podgate.io/duration": str(seconds)}
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": body})


def request(pod_json: str | None = None, *, regions: tuple[str, ...] = (), clusters: tuple[str, ...] = ()) -> Any:
    return dispatch_pb2.PodRequest(
        request_id=f"sec-{uuid.uuid4().hex[:12]}",
        pod_json=pod_json or manifest(),
        placement=common_pb2.Placement(regions=list(regions), clusters=list(clusters)),
        xcom=dispatch_pb2.XcomOptions(mode=dispatch_pb2.XCOM_MODE_DISABLED),
    )


async def refused(call: Any, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    return caught.value


def violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    status = rpc_status.from_call(error)
    assert status is not None
    found = {}
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            found.update({v.field: v.description for v in bad.field_violations})
    return found


# --- authentication ------------------------------------------------------------------------------


async def test_no_or_wrong_credentials_are_unauthenticated_and_create_nothing(tenants: Tenants) -> None:
    submit = tenants.dispatch.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=request()))
    error = await refused(submit, grpc.StatusCode.UNAUTHENTICATED)
    assert "client certificate or an authorization: Bearer token" in (error.details() or "")
    forged = tenants.tokens["platform"][:-4] + "AAAA"
    for metadata in ((("authorization", f"Bearer {forged}"),), (("authorization", "Basic abc"),)):
        await refused(
            tenants.dispatch.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=request()), metadata=metadata),
            grpc.StatusCode.UNAUTHENTICATED,
        )
    await refused(tenants.clusters.ListClusters(clusters_pb2.ListClustersRequest()), grpc.StatusCode.UNAUTHENTICATED)
    issue = credentials_pb2.IssueKubeconfigRequest(cluster="local-eu-cpu", namespace="default")
    await refused(tenants.credentials.IssueKubeconfig(issue), grpc.StatusCode.UNAUTHENTICATED)
    health = await health_pb2_grpc.HealthStub(tenants.channel).Check(health_pb2.HealthCheckRequest())
    assert health.status == health_pb2.HealthCheckResponse.SERVING, "health checks need no credentials"
    assert tenants.created.added == []


# --- authorization ---------------------------------------------------------------------------------


class AuthenticationsOffLoop(concurrent.futures.ThreadPoolExecutor):
    """The loop's default executor, counting the authentications handed to it (`asyncio.to_thread` submits
    `partial(context.run, authenticate, ...)`)."""

    def __init__(self) -> None:
        super().__init__(max_workers=4)
        self.count = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        if getattr(getattr(fn, "args", (None,))[0], "__name__", "") == "authenticate":
            self.count += 1
        return super().submit(fn, *args, **kwargs)


async def test_only_an_unverified_token_is_checked_off_the_event_loop(tenants: Tenants) -> None:
    """The scrypt of a static token not verified yet runs in a thread; once verified, the token is a dict
    lookup answered on the loop (a thread hop per RPC cost more than the check). A wrong token is never
    cached: its scrypt is off the loop every time."""
    executor = AuthenticationsOffLoop()
    asyncio.get_running_loop().set_default_executor(executor)
    get = dispatch_pb2.GetPodRequest(request_id="sec-none")
    for expected in (1, 1, 1):  # the first call verifies; the next two are answered from the cache
        await refused(tenants.dispatch.GetPod(get, metadata=tenants.md("platform")), grpc.StatusCode.NOT_FOUND)
        assert executor.count == expected
    forged = (("authorization", f"Bearer {tenants.tokens['platform'][:-4]}AAAA"),)
    for expected in (2, 3):
        await refused(tenants.dispatch.GetPod(get, metadata=forged), grpc.StatusCode.UNAUTHENTICATED)
        assert executor.count == expected
    response = await tenants.dispatch.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=request()), metadata=tenants.md("platform"))
    assert response.created and response.pod.tenant == "platform" and executor.count == 3


async def test_a_tenant_sees_and_cancels_only_its_own_pods(tenants: Tenants) -> None:
    mine = request(manifest(seconds=30))
    reply = await tenants.dispatch.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=mine), metadata=tenants.md("data-eng"))
    assert reply.created
    request_id = mine.request_id
    other = tenants.md("ml")
    for call in (
        tenants.dispatch.GetPod(dispatch_pb2.GetPodRequest(request_id=request_id), metadata=other),
        tenants.dispatch.CancelPod(dispatch_pb2.CancelPodRequest(request_id=request_id), metadata=other),
        tenants.dispatch.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=mine), metadata=other),
    ):
        error = await refused(call, grpc.StatusCode.PERMISSION_DENIED)
        assert "own_pods" in (error.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in tenants.dispatch.WatchPod(dispatch_pb2.WatchPodRequest(request_id=request_id), metadata=other):
            pass
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    listed = await tenants.dispatch.ListPods(dispatch_pb2.ListPodsRequest(), metadata=other)
    assert request_id not in {p.request_id for p in listed.pods}
    listed = await tenants.dispatch.ListPods(dispatch_pb2.ListPodsRequest(), metadata=tenants.md("data-eng"))
    assert [p.request_id for p in listed.pods] == [request_id]
    admin = tenants.md("platform")
    got = await tenants.dispatch.GetPod(dispatch_pb2.GetPodRequest(request_id=request_id), metadata=admin)
    assert got.pod.request_id == request_id
    cancelled = await tenants.dispatch.CancelPod(
        dispatch_pb2.CancelPodRequest(request_id=request_id, reason="admin"), metadata=tenants.md("data-eng")
    )
    assert cancelled.pod.phase == dispatch_pb2.POD_PHASE_CANCELLED
    assert len(tenants.created.pods()) == 1, "the other tenant's resubmission created nothing"


async def test_forbidden_region_and_cluster_are_denied_and_unnamed_ones_narrowed(tenants: Tenants) -> None:
    md = tenants.md("data-eng")
    error = await refused(
        tenants.dispatch.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=request(regions=("us-east-1",))), metadata=md),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert "'regions'" in (error.details() or "") and "us-east-1" in (error.details() or "")
    error = await refused(
        tenants.dispatch.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=request(clusters=("local-us-gpu",))), metadata=md),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert "'clusters'" in (error.details() or "")
    error = await refused(
        tenants.dispatch.SubmitPod(
            dispatch_pb2.SubmitPodRequest(pod=request(manifest(namespace="kube-system"))), metadata=md
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert "'namespaces'" in (error.details() or "")
    assert tenants.created.added == []
    entries, _ = await tenants.gateway.store.list_audit(limit=100)
    refusals = [e.record for e in entries]
    assert [(r["action"], r["code"]) for r in refusals] == [("pod.submit", "PERMISSION_DENIED")] * 3, (
        "each refused submission is audited once, with its request id and namespace"
    )
    assert {r["namespace"] for r in refusals} == {"default", "kube-system"} and all(r["request_id"] for r in refusals)
    explained = await tenants.dispatch.ExplainPlacement(
        dispatch_pb2.ExplainPlacementRequest(pod=request()), metadata=md
    )
    assert {row.cluster for row in explained.decision.verdicts} == {"local-eu-gpu", "local-eu-cpu"}
    events = [
        r.event
        async for r in tenants.dispatch.RunPod(dispatch_pb2.RunPodRequest(pod=request()), metadata=md, timeout=60)
    ]
    assert events[-1].result.exit_code == 0
    ((cluster, _),) = tenants.created.pods()
    assert cluster in {"local-eu-gpu", "local-eu-cpu"}, "a request naming no region stays inside the tenant's"


async def test_over_quota_and_over_rate_are_resource_exhausted(tenants: Tenants) -> None:
    md = tenants.md("data-eng")
    first = request(manifest(seconds=60))
    await tenants.dispatch.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=first), metadata=md)
    error = await refused(
        tenants.dispatch.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=request()), metadata=md),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    )
    assert "max_concurrent_pods" in (error.details() or "")
    await tenants.dispatch.CancelPod(dispatch_pb2.CancelPodRequest(request_id=first.request_id), metadata=md)
    await tenants.dispatch.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=request(manifest(seconds=60))), metadata=md)

    ml = tenants.md("ml")
    again = request(manifest(seconds=60))
    for pod, new in ((again, True), (again, False), (request(manifest(seconds=60)), True)):
        reply = await tenants.dispatch.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=pod), metadata=ml)
        assert reply.created is new  # resubmitting a stored request takes no token of the rate (burst 2)
    error = await refused(
        tenants.dispatch.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=request()), metadata=ml),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    )
    status = rpc_status.from_call(error)
    assert status is not None
    retry = error_details_pb2.RetryInfo()
    assert any(d.Unpack(retry) for d in status.details) and retry.retry_delay.seconds > 0
    assert len(tenants.created.pods()) == 4, "two data-eng pods, two ml pods; the refused ones created nothing"
    for pod in (await tenants.dispatch.ListPods(dispatch_pb2.ListPodsRequest(), metadata=tenants.md("platform"))).pods:
        await tenants.dispatch.CancelPod(
            dispatch_pb2.CancelPodRequest(request_id=pod.request_id), metadata=tenants.md("platform")
        )


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"containers": [{"name": "base", "image": "busybox", "securityContext": {"privileged": True}}]},
         {"pod.pod_json.spec.containers[0].securityContext.privileged"}),
        ({"containers": [{"name": "base", "image": "busybox"}],
          "volumes": [{"name": "root", "hostPath": {"path": "/"}}], "hostNetwork": True},
         {"pod.pod_json.spec.volumes[0].hostPath", "pod.pod_json.spec.hostNetwork"}),
    ],
    ids=["privileged", "hostPath-and-hostNetwork"],
)  # fmt: skip
async def test_pod_security_violations_list_every_rule(
    tenants: Tenants, spec: dict[str, Any], expected: set[str]
) -> None:
    pod = json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad"}, "spec": spec})
    for tenant in ("data-eng", "platform"):  # admins are held to Pod Security too
        error = await refused(
            tenants.dispatch.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=request(pod)), metadata=tenants.md(tenant)),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert expected <= set(violations(error)), violations(error)
    assert tenants.created.added == []


async def test_forged_ownership_labels_and_oversized_requests_are_refused(tenants: Tenants) -> None:
    md = tenants.md("data-eng")
    forged = manifest(labels={"podgate.io/request-id": "someone-else"})
    error = await refused(
        tenants.dispatch.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=request(forged)), metadata=md),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert any("podgate.io/" in f or "podgate.io/" in d for f, d in violations(error).items())
    big_manifest = json.loads(manifest())
    big_manifest["spec"]["containers"][0]["env"] = [{"name": "PAD", "value": "x" * 100_000}]
    error = await refused(
        tenants.dispatch.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=request(json.dumps(big_manifest))), metadata=md),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "manifest is" in violations(error)["pod.pod_json"]
    big_manifest["spec"]["containers"][0]["env"] = [{"name": "PAD", "value": "x" * 300_000}]
    await refused(
        tenants.dispatch.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=request(json.dumps(big_manifest))), metadata=md),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    )
    assert tenants.created.added == []


async def test_cluster_changes_need_admin_and_tenants_see_only_their_clusters(tenants: Tenants) -> None:
    md = tenants.md("data-eng")
    error = await refused(
        tenants.clusters.CordonCluster(clusters_pb2.CordonClusterRequest(name="local-eu-cpu"), metadata=md),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert "admin" in (error.details() or "")
    listed = await tenants.clusters.ListClusters(clusters_pb2.ListClustersRequest(), metadata=md)
    assert {c.cluster.name for c in listed.clusters} == {"local-eu-gpu", "local-eu-cpu"}
    await refused(
        tenants.clusters.GetCluster(clusters_pb2.GetClusterRequest(name="local-us-gpu"), metadata=md),
        grpc.StatusCode.NOT_FOUND,
    )
    admin = tenants.md("platform")
    cordoned = await tenants.clusters.CordonCluster(
        clusters_pb2.CordonClusterRequest(name="local-eu-cpu", reason="maintenance"), metadata=admin
    )
    assert cordoned.cluster.status.cordoned
    assert len((await tenants.clusters.ListClusters(clusters_pb2.ListClustersRequest(), metadata=admin)).clusters) == 3


async def test_kubeconfig_issuance_follows_the_tenant_grant_and_everything_is_audited(tenants: Tenants) -> None:
    def issue(
        cluster: str = "local-eu-cpu", access: Any = credentials_pb2.KUBECONFIG_ACCESS_VIEW, ttl: int = 600
    ) -> Any:
        req = credentials_pb2.IssueKubeconfigRequest(cluster=cluster, namespace="default", access=access)
        req.ttl.seconds = ttl
        return req

    md = tenants.md("data-eng")
    for req, tenant, rule in (
        (issue(), "ml", "kubeconfig.allowed"),
        (issue(access=credentials_pb2.KUBECONFIG_ACCESS_EDIT), "data-eng", "kubeconfig.max_access"),
        (issue(ttl=7200), "data-eng", "kubeconfig.max_ttl"),
        (issue(cluster="local-us-gpu"), "data-eng", "clusters"),
    ):
        error = await refused(
            tenants.credentials.IssueKubeconfig(req, metadata=tenants.md(tenant)), grpc.StatusCode.PERMISSION_DENIED
        )
        assert rule in (error.details() or "")
    assert tenants.created.added == []
    issued = await tenants.credentials.IssueKubeconfig(issue(), metadata=md)
    secret_token = yaml.safe_load(issued.kubeconfig)["users"][0]["user"]["token"]
    await tenants.credentials.RevokeKubeconfig(
        credentials_pb2.RevokeKubeconfigRequest(credential_id=issued.credential_id), metadata=md
    )

    entries, _ = await tenants.gateway.store.list_audit(limit=100)
    records = [e.record for e in entries]
    actions = {(r["action"], r["outcome"], r.get("tenant", "")) for r in records}
    assert {("rpc.denied", "denied", "ml"), ("kubeconfig.issue", "issued", "data-eng"),
            ("kubeconfig.revoke", "revoked", "data-eng")} <= actions  # fmt: skip
    issued_entry = next(r for r in records if r["action"] == "kubeconfig.issue")
    assert issued_entry["actor"] == "token:data-eng-token" and issued_entry["cluster"] == "local-eu-cpu"
    sink = Path(tenants.settings.audit.sink).read_text().splitlines()  # noqa: ASYNC240 (a small test file)
    assert [json.loads(line)["action"] for line in sink] == [r["action"] for r in reversed(records)]
    everything = "\n".join(sink) + json.dumps(records)
    assert secret_token not in everything
    for token in tenants.tokens.values():
        assert token.split(".")[1] not in everything


async def test_reload_swaps_tenants_without_a_restart(tenants: Tenants, tmp_path: Path) -> None:
    md = tenants.md("ml")
    await tenants.dispatch.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=request(regions=("us-east-1",))), metadata=md)
    changed = [dict(t, regions=["eu-west-1"]) if t["name"] == "ml" else t for t in TENANTS]
    raw_tokens = [{"id": t.id, "tenant": t.tenant, "hash": t.hash} for t in tenants.settings.authentication.static_tokens]
    new = gateway_settings(
        tmp_path,
        {
            "tenants": changed,
            "authentication": {"static_tokens": raw_tokens},
            "audit": {"sink": tenants.settings.audit.sink},
            "limits": LIMITS,
        },
    )
    assert tenants.gateway.reload(new) == []
    error = await refused(
        tenants.dispatch.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=request(regions=("us-east-1",))), metadata=md),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert "'regions'" in (error.details() or "")


async def test_long_log_lines_are_clipped_to_the_limit(world: SimWorld, tmp_path: Path) -> None:
    gw = await start_gateway(gateway_settings(tmp_path, {"limits": {"log_line_bytes": 1024}}))
    pod = json.loads(manifest())
    pod["metadata"]["annotations"]["sim.podgate.io/log-lines"] = "é" * 3000 + "\nshort line\n"
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.port}") as channel:
            stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
            events = [
                r.event async for r in stub.RunPod(dispatch_pb2.RunPodRequest(pod=request(json.dumps(pod))), timeout=60)
            ]
    finally:
        await gw.stop()
    lines = [e.log.text for e in events if e.WhichOneof("event") == "log"]
    assert lines[1] == "short line"
    assert lines[0].endswith("[... clipped by the gateway]") and lines[0].startswith("é" * 400)
    assert len(lines[0].encode()) <= 1024
