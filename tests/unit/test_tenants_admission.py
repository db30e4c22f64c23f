"""A submission through rate limit, Pod Security and tenant rules: the right error for each, the request to store."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from gateway.domain import ClusterSpec, CredentialsRef, PlacementSpec, PodPhase, PodRecord, PodRequest
from gateway.errors import GatewayError, InvalidArgument, PermissionDenied, ResourceExhausted
from gateway.policy.admission import admit_submission, explainable, recheck_quota, usage_of
from gateway.policy.pod_security import Level, PodSecurityPolicy
from gateway.policy.ratelimit import RateLimiter
from gateway.policy.tenants import RateLimit, ResourceCaps, Tenant, TenantUsage

CLUSTERS = [
    ClusterSpec(name="eu", provider="sim", credentials=CredentialsRef(source="sim"), region="eu-west-1"),
    ClusterSpec(name="us", provider="sim", credentials=CredentialsRef(source="sim"), region="us-east-1"),
]
TENANT = Tenant(
    name="ml",
    clusters=frozenset({"*"}),
    namespaces=frozenset({"ml"}),
    regions=frozenset({"eu-west-1"}),
    max_concurrent_pods=2,
    total_caps=ResourceCaps(gpus=2),
    rate_limit=RateLimit(per_second=1, burst=2),
)


def request(*, privileged: bool = False, namespace: str = "ml", regions: frozenset[str] = frozenset(),
            gpus: int = 0, request_id: str = "r") -> PodRequest:  # fmt: skip
    container = {"name": "m", "image": "i", "securityContext": {"privileged": privileged},
                 "resources": {"limits": {"nvidia.com/gpu": gpus}} if gpus else {}}  # fmt: skip
    pod = {"metadata": {"namespace": namespace}, "spec": {"containers": [container]}}
    return PodRequest(request_id=request_id, pod=pod, placement=PlacementSpec(regions=regions))


class Frozen:
    def __call__(self) -> float:
        return 0.0


@pytest.mark.parametrize(
    ("req", "usage", "error", "fragment"),
    [
        (request(privileged=True), TenantUsage(), InvalidArgument, "Pod Security Standards"),
        (request(namespace="default"), TenantUsage(), PermissionDenied, "'namespaces'"),
        (request(regions=frozenset({"us-east-1"})), TenantUsage(), PermissionDenied, "'regions'"),
        (request(), TenantUsage(running_pods=2), ResourceExhausted, "'max_concurrent_pods'"),
        (request(gpus=1), TenantUsage(running_pods=1, gpus=2), ResourceExhausted, "'total_caps.gpus'"),
    ],
)
def test_each_refusal_has_its_code(
    req: PodRequest, usage: TenantUsage, error: type[GatewayError], fragment: str
) -> None:
    with pytest.raises(error, match=fragment):
        admit_submission(TENANT, req, clusters=CLUSTERS, usage=usage)


def test_the_admitted_request_is_owned_and_narrowed() -> None:
    admitted = admit_submission(TENANT, request(), clusters=CLUSTERS, usage=TenantUsage())
    assert admitted.tenant == "ml"
    assert admitted.placement.regions == {"eu-west-1"}
    assert admitted.placement.clusters == frozenset()  # every cluster is allowed: no narrowing by name


OPEN = Tenant(name="", clusters=frozenset({"*"}), namespaces=frozenset({"*"}), admin=True)


@pytest.mark.parametrize(
    ("tenant", "req", "same"),
    [
        (OPEN, request(), True),  # an open gateway's: nothing to narrow, nobody to own it
        (TENANT, replace(request(regions=frozenset({"eu-west-1"})), tenant="ml"), True),  # narrowed already
        (TENANT, request(regions=frozenset({"eu-west-1"})), False),  # owned now
        (TENANT, replace(request(), tenant="ml"), False),  # its regions narrowed now
    ],
)
def test_a_request_admitted_as_it_is_is_not_copied(tenant: Tenant, req: PodRequest, same: bool) -> None:
    admitted = admit_submission(tenant, req, clusters=CLUSTERS, usage=TenantUsage())
    assert (admitted is req) is same
    assert admitted.tenant == tenant.name and admitted.pod is req.pod


def test_restricted_tenant_gets_every_violation() -> None:
    strict = Tenant(name="s", clusters=frozenset({"*"}), namespaces=frozenset({"ml"}),
                    pod_security=PodSecurityPolicy(level=Level.RESTRICTED))  # fmt: skip
    with pytest.raises(InvalidArgument) as e:
        admit_submission(strict, request(), clusters=CLUSTERS, usage=TenantUsage())
    assert len(e.value.violations) == 4


def test_rate_limit_comes_first_with_retry_info() -> None:
    limiter = RateLimiter(Frozen())
    for _ in range(2):
        admit_submission(TENANT, request(), clusters=CLUSTERS, usage=TenantUsage(), limiter=limiter)
    with pytest.raises(ResourceExhausted) as e:
        admit_submission(TENANT, request(privileged=True), clusters=CLUSTERS, usage=TenantUsage(), limiter=limiter)
    assert e.value.retry_after_seconds == 1.0


def test_explain_applies_where_rules_but_not_quotas() -> None:
    assert explainable(TENANT, request(gpus=2), CLUSTERS).placement.regions == {"eu-west-1"}
    with pytest.raises(PermissionDenied):
        explainable(TENANT, request(regions=frozenset({"us-east-1"})), CLUSTERS)


def record(req: PodRequest, tenant: str, phase: PodPhase) -> PodRecord:
    return PodRecord(request=replace(req, tenant=tenant), phase=phase, created_at=datetime.now(UTC))


def test_usage_counts_the_tenants_unfinished_pods() -> None:
    records = [
        record(request(gpus=1), "ml", PodPhase.RUNNING),
        record(request(gpus=2), "ml", PodPhase.QUEUED),
        record(request(gpus=4), "ml", PodPhase.SUCCEEDED),
        record(request(gpus=8), "other", PodPhase.RUNNING),
    ]
    assert usage_of(records, "ml") == TenantUsage(running_pods=2, gpus=3)


@pytest.mark.parametrize(
    ("held", "asked", "fragment"),
    [
        ([0, 0], 0, "'max_concurrent_pods': 2 pods are unfinished, the limit is 2"),
        ([2], 1, "'total_caps.gpus'"),
        ([1], 1, ""),
        ([], 2, ""),
    ],
)
def test_the_store_rechecks_the_quotas_against_the_records_it_read(held: list[int], asked: int, fragment: str) -> None:
    """What the store's insert applies under the tenant's lock: the quotas, against the records it read."""
    unfinished = [record(request(gpus=g), "ml", PodPhase.RUNNING) for g in held]
    if fragment:
        with pytest.raises(ResourceExhausted, match=fragment):
            recheck_quota(TENANT, request(gpus=asked), unfinished)
    else:
        recheck_quota(TENANT, request(gpus=asked), unfinished)
