"""One submission through every policy, in the order that gives the caller the most useful answer.

Rate limit first (cheapest, and a flood must not cost Pod Security walks), then the Pod Security
Standards (INVALID_ARGUMENT listing every violation), then the tenant's rules (PERMISSION_DENIED naming
the rule, or RESOURCE_EXHAUSTED for a quota). The manifest must already have passed
pods/validation.py, which also refuses gateway-owned `podgate.io/` labels and annotations.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from gateway.domain import ClusterSpec, PodRecord, PodRequest
from gateway.errors import InvalidArgument
from gateway.placement.node_fit import request_needs
from gateway.policy.pod_security import enforce
from gateway.policy.ratelimit import RateLimiter
from gateway.policy.tenants import Denied, Tenant, TenantUsage, authorize_submit, check_quota


def usage_of(records: Iterable[PodRecord], tenant: str) -> TenantUsage:
    """What the tenant's unfinished requests hold, from the records the store returns."""
    pods = cpu = memory = gpus = 0
    for record in records:
        if record.request.tenant != tenant or record.phase.finished:
            continue
        try:
            needs = request_needs(record.request)
        except InvalidArgument:
            continue  # admitted before a stricter check; it holds nothing we can count
        pods += 1
        cpu, memory, gpus = cpu + needs.cpu_millis, memory + needs.memory_bytes, gpus + needs.gpus
    return TenantUsage(running_pods=pods, cpu_millis=cpu, memory_bytes=memory, gpus=gpus)


def admit_submission(
    tenant: Tenant,
    request: PodRequest,
    *,
    clusters: Sequence[ClusterSpec],
    usage: TenantUsage,
    limiter: RateLimiter | None = None,
) -> PodRequest:
    """The request to store (owned by the tenant, placement narrowed to its clusters), or the error raised.

    Raises ResourceExhausted (rate, concurrency, total caps), InvalidArgument (Pod Security) or
    PermissionDenied (namespace, region, cluster, per-pod caps).
    """
    if limiter is not None:
        limiter.check(tenant.name, tenant.rate_limit)
    enforce(request.pod, tenant.pod_security)
    decision = authorize_submit(tenant, request, clusters=clusters, usage=usage)
    if isinstance(decision, Denied):
        raise decision.to_error()
    if decision.placement is request.placement and tenant.name == request.tenant:
        return request  # an open gateway's, or a tenant's already narrowed: a copy would be the same request
    return request.replaced(placement=decision.placement, tenant=tenant.name)


def recheck_quota(tenant: Tenant, request: PodRequest, unfinished: Iterable[PodRecord]) -> None:
    """The quotas of `admit_submission` again, against the tenant's unfinished records as the store reads
    them in the transaction that inserts `request` (so two replicas cannot both take the last slot)."""
    denied = check_quota(tenant, request_needs(request), usage_of(unfinished, tenant.name))
    if denied is not None:
        raise denied.to_error()


def explainable(tenant: Tenant, request: PodRequest, clusters: Sequence[ClusterSpec]) -> PodRequest:
    """ExplainPlacement as the tenant would be placed: denied exactly where a submission would be.

    Quotas and the rate limit do not apply to a dry run.
    """
    return admit_submission(tenant, request, clusters=clusters, usage=TenantUsage())
