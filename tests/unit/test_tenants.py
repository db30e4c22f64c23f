"""Tenant authorization: every decision names its rule; placement is narrowed, never silently re-routed."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.credentials.issuing import KubeconfigAccess
from gateway.domain import ClusterSpec, CredentialsRef, PlacementSpec, PodRequest
from gateway.errors import PermissionDenied, ResourceExhausted
from gateway.placement.selectors import parse_selector
from gateway.policy.tenants import (
    ALLOWED,
    Denied,
    KubeconfigGrant,
    ResourceCaps,
    SubmitGrant,
    Tenant,
    TenantUsage,
    authorize_admin,
    authorize_kubeconfig,
    authorize_pod_access,
    authorize_revoke,
    authorize_submit,
    list_scope,
    narrow_placement,
    require,
    visible_clusters,
)

GiB = 2**30


def cluster(name: str, region: str, **labels: str) -> ClusterSpec:
    return ClusterSpec(
        name=name, provider="sim", credentials=CredentialsRef(source="sim"), region=region, labels=labels
    )


CLUSTERS = [
    cluster("eu-gpu", "eu-west-1", accelerator="nvidia", tier="prod"),
    cluster("eu-cpu", "eu-central-1", tier="prod"),
    cluster("us-gpu", "us-east-1", accelerator="nvidia", tier="prod"),
    cluster("eu-dev", "eu-west-1", tier="dev"),
]
ML = Tenant(
    name="ml",
    clusters=frozenset({"eu-cpu"}),
    cluster_selector=parse_selector("accelerator=nvidia", field="t"),
    namespaces=frozenset({"ml", "ml-batch"}),
    regions=frozenset({"eu-west-1", "eu-central-1"}),
    max_concurrent_pods=3,
    pod_caps=ResourceCaps(cpu_millis=8000, memory_bytes=32 * GiB, gpus=2),
    total_caps=ResourceCaps(cpu_millis=16000, gpus=3),
)
OPEN = Tenant(name="open", clusters=frozenset({"*"}), namespaces=frozenset({"*"}))
ADMIN = Tenant(name="ops", admin=True, clusters=frozenset({"*"}), namespaces=frozenset({"*"}))


def request(namespace: str = "ml", *, regions: set[str] | None = None, clusters: set[str] | None = None,
            cpu: str = "1", memory: str = "1Gi", gpus: int = 0) -> PodRequest:  # fmt: skip
    limits: dict[str, Any] = {"nvidia.com/gpu": gpus} if gpus else {}
    pod = {
        "metadata": {"namespace": namespace},
        "spec": {"containers": [{"name": "m", "image": "i", "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": limits}}]},
    }  # fmt: skip
    placement = PlacementSpec(regions=frozenset(regions or ()), clusters=frozenset(clusters or ()))
    return PodRequest(request_id="r1", pod=pod, placement=placement)


IDLE = TenantUsage()


@pytest.mark.parametrize(
    ("req", "usage", "rule", "quota"),
    [
        (request("default"), IDLE, "namespaces", False),
        (request(regions={"us-east-1"}), IDLE, "regions", False),
        (request(regions={"eu-west-1", "us-east-1"}), IDLE, "regions", False),
        (request(clusters={"eu-dev"}), IDLE, "clusters", False),  # eu-west-1, but neither named nor selected
        (request(clusters={"us-gpu"}), IDLE, "clusters", False),  # selected by labels, region forbidden
        (request(clusters={"eu-gpu", "unknown"}), IDLE, "clusters", False),
        (request(cpu="9"), IDLE, "pod_caps.cpu", False),
        (request(memory="33Gi"), IDLE, "pod_caps.memory", False),
        (request(gpus=3), IDLE, "pod_caps.gpus", False),
        (request(), TenantUsage(running_pods=3), "max_concurrent_pods", True),
        (request(gpus=2), TenantUsage(running_pods=1, gpus=2), "total_caps.gpus", True),
        (request(cpu="8"), TenantUsage(running_pods=2, cpu_millis=8500), "total_caps.cpu", True),
    ],
)
def test_submit_denials_name_the_rule(req: PodRequest, usage: TenantUsage, rule: str, quota: bool) -> None:
    decision = authorize_submit(ML, req, clusters=CLUSTERS, usage=usage)
    assert isinstance(decision, Denied)
    assert (decision.rule, decision.quota) == (rule, quota)
    with pytest.raises(ResourceExhausted if quota else PermissionDenied, match=f"tenant rule '{rule}'"):
        require(decision)


@pytest.mark.parametrize(
    ("tenant", "req", "regions", "clusters"),
    [
        # no clusters named: narrowed to the allowed ones (by name, by selector; us-gpu's region is forbidden)
        (ML, request(), {"eu-west-1", "eu-central-1"}, {"eu-gpu", "eu-cpu"}),
        (ML, request(regions={"eu-west-1"}), {"eu-west-1"}, {"eu-gpu", "eu-cpu"}),
        # explicit allowed clusters are kept as asked
        (ML, request("ml-batch", clusters={"eu-gpu"}), {"eu-west-1", "eu-central-1"}, {"eu-gpu"}),
        (ML, request(gpus=2), {"eu-west-1", "eu-central-1"}, {"eu-gpu", "eu-cpu"}),
        # a tenant allowed everything is not narrowed at all
        (OPEN, request("anything"), set(), set()),
        (OPEN, request(regions={"us-east-1"}), {"us-east-1"}, set()),
    ],
)
def test_submit_grants_narrow_placement(tenant: Tenant, req: PodRequest, regions: set[str], clusters: set[str]) -> None:
    decision = authorize_submit(tenant, req, clusters=CLUSTERS, usage=IDLE)
    assert isinstance(decision, SubmitGrant)
    require(decision)
    assert decision.placement.regions == regions
    assert decision.placement.clusters == clusters


def test_a_tenant_with_no_usable_cluster_is_denied_not_unrestricted() -> None:
    """An empty cluster list in PlacementSpec means "any": narrowing must never produce one."""
    lonely = Tenant(name="t", clusters=frozenset({"gone"}), namespaces=frozenset({"*"}))
    narrowed = narrow_placement(lonely, PlacementSpec(), CLUSTERS)
    assert isinstance(narrowed, Denied) and narrowed.rule == "clusters"
    assert isinstance(narrow_placement(Tenant(name="none"), PlacementSpec(), CLUSTERS), Denied)


def test_a_cluster_allowed_by_name_but_not_registered_is_left_to_placement() -> None:
    decision = authorize_submit(ML, request(clusters={"eu-cpu", "eu-gpu"}), clusters=CLUSTERS[:1], usage=IDLE)
    assert isinstance(decision, SubmitGrant) and decision.placement.clusters == {"eu-cpu", "eu-gpu"}


@pytest.mark.parametrize(
    ("tenant", "owner", "allowed"),
    [(ML, "ml", True), (ML, "other", False), (ML, "", False), (ADMIN, "ml", True), (ADMIN, "", True)],
)
def test_pod_access_own_pods_only_unless_admin(tenant: Tenant, owner: str, allowed: bool) -> None:
    decision = authorize_pod_access(tenant, owner, "cancel")
    assert (decision == ALLOWED) is allowed
    if not allowed:
        assert isinstance(decision, Denied) and decision.rule == "own_pods"


def test_list_scope_and_admin_rpcs() -> None:
    assert list_scope(ML) == "ml" and list_scope(ADMIN) is None
    assert authorize_admin(ADMIN, "RegisterCluster") == ALLOWED
    denied = authorize_admin(ML, "CordonCluster")
    assert isinstance(denied, Denied) and denied.rule == "admin" and "CordonCluster" in denied.message


def test_visible_clusters() -> None:
    assert [c.name for c in visible_clusters(ML, CLUSTERS)] == ["eu-gpu", "eu-cpu"]
    assert len(visible_clusters(ADMIN, CLUSTERS)) == 4


ISSUER = Tenant(
    name="ml",
    clusters=frozenset({"eu-cpu"}),
    namespaces=frozenset({"ml"}),
    kubeconfig=KubeconfigGrant(allowed=True, max_access=KubeconfigAccess.VIEW, max_ttl_seconds=3600),
)


@pytest.mark.parametrize(
    ("tenant", "cluster_name", "namespace", "access", "ttl", "rule"),
    [
        (ISSUER, "eu-cpu", "ml", KubeconfigAccess.VIEW, 3600, ""),
        (ISSUER, "eu-cpu", "ml", KubeconfigAccess.EDIT, 600, "kubeconfig.max_access"),
        (ISSUER, "eu-cpu", "ml", KubeconfigAccess.VIEW, 3601, "kubeconfig.max_ttl"),
        (ISSUER, "eu-gpu", "ml", KubeconfigAccess.VIEW, 600, "clusters"),
        (ISSUER, "eu-cpu", "default", KubeconfigAccess.VIEW, 600, "namespaces"),
        (ML, "eu-cpu", "ml", KubeconfigAccess.VIEW, 600, "kubeconfig.allowed"),
    ],
)
def test_kubeconfig_issuance(
    tenant: Tenant, cluster_name: str, namespace: str, access: KubeconfigAccess, ttl: int, rule: str
) -> None:
    spec = next(c for c in CLUSTERS if c.name == cluster_name)
    decision = authorize_kubeconfig(tenant, spec, namespace, access, ttl)
    assert (decision.rule if isinstance(decision, Denied) else "") == rule


@pytest.mark.parametrize(
    ("tenant", "cluster_name", "namespace", "rule"),
    [(ISSUER, "eu-cpu", "ml", ""), (ISSUER, "eu-gpu", "ml", "clusters"), (ML, "eu-cpu", "ml", "kubeconfig.allowed"),
     (ADMIN, "us-gpu", "x", "")],
)  # fmt: skip
def test_revocation(tenant: Tenant, cluster_name: str, namespace: str, rule: str) -> None:
    spec = next(c for c in CLUSTERS if c.name == cluster_name)
    decision = authorize_revoke(tenant, spec, namespace)
    assert (decision.rule if isinstance(decision, Denied) else "") == rule
