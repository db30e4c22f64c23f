"""Tenants and what each may do: pure authorization decisions, each naming the rule that denied.

A denial is never a silent re-route: a request that names a forbidden cluster, region or namespace is
denied. A request that names no cluster is *narrowed* (`SubmitGrant.placement`) to the clusters and
regions the tenant may use, and the narrowed spec is what the gateway stores with the request, so every
later re-placement (capacity changes, failover, a restarted gateway) stays inside the tenant's
clusters without anyone re-checking.

Allow-lists: `clusters` (names, "*" for every cluster) together with `cluster_selector` (a cluster is
allowed when its name is listed or its labels match a non-empty selector), `namespaces` ("*" for any)
and `regions` ("*", the default, for any). Empty clusters/namespaces allow nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from gateway.credentials.issuing import KubeconfigAccess
from gateway.domain import ClusterSpec, PlacementSpec, PodRequest, Selector
from gateway.errors import GatewayError, PermissionDenied, ResourceExhausted
from gateway.placement.node_fit import PodNeeds, request_needs
from gateway.placement.quantity import format_bytes, format_millis
from gateway.placement.selectors import format_selector, matches
from gateway.policy.pod_security import PodSecurityPolicy

ANY = "*"
_NO_SELECTOR = Selector()  # an empty selector; it allows nothing by itself (see allows_cluster)
_BASELINE = PodSecurityPolicy()
_ACCESS_ORDER = {KubeconfigAccess.VIEW: 0, KubeconfigAccess.EDIT: 1}


@dataclass(frozen=True, kw_only=True)
class ResourceCaps:
    """CPU, memory and GPUs; 0 means no cap."""

    cpu_millis: int = 0
    memory_bytes: int = 0
    gpus: int = 0


@dataclass(frozen=True, kw_only=True)
class RateLimit:
    """Submissions per second with a burst; 0 per second means unlimited."""

    per_second: float = 0.0
    burst: int = 1


@dataclass(frozen=True, kw_only=True)
class KubeconfigGrant:
    allowed: bool = False
    max_access: KubeconfigAccess = KubeconfigAccess.VIEW
    max_ttl_seconds: int = 3600


@dataclass(frozen=True, kw_only=True)
class Tenant:
    name: str
    clusters: frozenset[str] = frozenset()
    cluster_selector: Selector = _NO_SELECTOR
    namespaces: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset({ANY})
    max_concurrent_pods: int = 0  # 0: unlimited
    pod_caps: ResourceCaps = ResourceCaps()
    total_caps: ResourceCaps = ResourceCaps()
    kubeconfig: KubeconfigGrant = KubeconfigGrant()
    pod_security: PodSecurityPolicy = _BASELINE
    admin: bool = False
    rate_limit: RateLimit = RateLimit()
    # identities that map to this tenant (see identity.py)
    cert_names: frozenset[str] = frozenset()  # client certificate subject CN or SAN values
    oidc_groups: frozenset[str] = frozenset()  # values of the configured groups claim

    def allows_cluster(self, cluster: ClusterSpec) -> bool:
        """Listed by name (or "*") or selected by a non-empty selector, and in an allowed region."""
        named = ANY in self.clusters or cluster.name in self.clusters
        selected = bool(self.cluster_selector) and matches(self.cluster_selector, cluster.labels)
        return (named or selected) and self.allows_region(cluster.region)

    def allows_region(self, region: str) -> bool:
        return ANY in self.regions or region in self.regions

    def allows_namespace(self, namespace: str) -> bool:
        return ANY in self.namespaces or namespace in self.namespaces


@dataclass(frozen=True, kw_only=True)
class TenantUsage:
    """What a tenant's unfinished pods hold now; the caller counts it from its records."""

    running_pods: int = 0
    cpu_millis: int = 0
    memory_bytes: int = 0
    gpus: int = 0


# --- decisions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Allowed:
    pass


ALLOWED = Allowed()


@dataclass(frozen=True)
class Denied:
    rule: str  # e.g. "regions", "namespaces", "total_caps.gpus"
    message: str
    quota: bool = False  # True when it may pass later (RESOURCE_EXHAUSTED), False when it never will

    def to_error(self) -> GatewayError:
        text = f"denied by tenant rule {self.rule!r}: {self.message}"
        return ResourceExhausted(text) if self.quota else PermissionDenied(text)


@dataclass(frozen=True)
class SubmitGrant:
    """The submission may go ahead with this placement (the caller's, narrowed to the tenant's limits)."""

    placement: PlacementSpec


Decision = Allowed | Denied


def require(decision: Decision | SubmitGrant) -> None:
    """Raises the denial's error (PermissionDenied, or ResourceExhausted for a quota)."""
    if isinstance(decision, Denied):
        raise decision.to_error()


def _names(items: Iterable[str]) -> str:
    return ", ".join(sorted(items)) or "none"


# --- submit ---------------------------------------------------------------------------------


def request_namespace(request: PodRequest) -> str:
    metadata = request.pod.get("metadata") or {}
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    return namespace if isinstance(namespace, str) and namespace else "default"


def _check_where(tenant: Tenant, request: PodRequest, clusters: Mapping[str, ClusterSpec]) -> Denied | None:
    namespace = request_namespace(request)
    if not tenant.allows_namespace(namespace):
        return Denied("namespaces", f"namespace {namespace!r} is not one of {_names(tenant.namespaces)}")
    forbidden_regions = [r for r in request.placement.regions if not tenant.allows_region(r)]
    if forbidden_regions:
        return Denied(
            "regions", f"region(s) {_names(forbidden_regions)} not allowed; allowed: {_names(tenant.regions)}"
        )
    for name in sorted(request.placement.clusters):
        spec = clusters.get(name)
        if spec is None:
            if ANY in tenant.clusters or name in tenant.clusters:
                continue  # allowed by name: placement reports that it is not registered
            return Denied("clusters", f"cluster {name!r} is not allowed; allowed: {_allowed_clusters_text(tenant)}")
        if not tenant.allows_cluster(spec):
            why = "" if tenant.allows_region(spec.region) else f" (its region {spec.region} is not allowed)"
            return Denied(
                "clusters", f"cluster {name!r} is not allowed{why}; allowed: {_allowed_clusters_text(tenant)}"
            )
    return None


def _allowed_clusters_text(tenant: Tenant) -> str:
    parts = [_names(tenant.clusters)] if tenant.clusters else []
    if tenant.cluster_selector:
        parts.append(f"clusters matching {format_selector(tenant.cluster_selector)}")
    return " or ".join(parts) or "none"


def _over_caps(needs: PodNeeds, held: TenantUsage | None, caps: ResourceCaps, rule: str) -> Denied | None:
    base = held or TenantUsage()
    total = "in total with running pods " if held is not None else "per pod "
    for key, asked, have, cap, fmt in (
        ("cpu", needs.cpu_millis, base.cpu_millis, caps.cpu_millis, format_millis),
        ("memory", needs.memory_bytes, base.memory_bytes, caps.memory_bytes, format_bytes),
        ("gpus", needs.gpus, base.gpus, caps.gpus, str),
    ):
        if cap and asked + have > cap:
            return Denied(
                f"{rule}.{key}",
                f"the pod asks {key} {fmt(asked)}, {total}{fmt(asked + have)} > the cap of {fmt(cap)}",
                quota=held is not None,
            )
    return None


def check_quota(tenant: Tenant, needs: PodNeeds, usage: TenantUsage) -> Denied | None:
    """Concurrency, per-pod caps and total caps against what the tenant holds now."""
    if tenant.max_concurrent_pods and usage.running_pods >= tenant.max_concurrent_pods:
        return Denied(
            "max_concurrent_pods",
            f"{usage.running_pods} pods are unfinished, the limit is {tenant.max_concurrent_pods}",
            quota=True,
        )
    return _over_caps(needs, None, tenant.pod_caps, "pod_caps") or _over_caps(
        needs, usage, tenant.total_caps, "total_caps"
    )


def narrow_placement(tenant: Tenant, spec: PlacementSpec, clusters: Sequence[ClusterSpec]) -> PlacementSpec | Denied:
    """The caller's spec restricted to the tenant's clusters and regions; Denied when none is left.

    An explicit cluster list is kept as is (authorize_submit has checked every name); an empty one
    becomes the registered clusters the tenant may use. Regions become the tenant's when the caller
    named none. Placement's own filters then never see a cluster outside the tenant's reach.
    """
    if ANY not in tenant.regions and not spec.regions:
        spec = replace(spec, regions=tenant.regions)
    if spec.clusters or (ANY in tenant.clusters and not tenant.cluster_selector):
        return spec
    allowed = frozenset(c.name for c in clusters if tenant.allows_cluster(c))
    if not allowed:
        return Denied("clusters", f"no registered cluster is allowed; allowed: {_allowed_clusters_text(tenant)}")
    return replace(spec, clusters=allowed)


def authorize_submit(
    tenant: Tenant, request: PodRequest, *, clusters: Sequence[ClusterSpec], usage: TenantUsage
) -> SubmitGrant | Denied:
    """Namespace, regions, explicit clusters, concurrency and resource caps; then the narrowed placement.

    The caller stores `request.replaced(placement=grant.placement, tenant=tenant.name)`. The pod must
    have passed pods/validation.py first (pod_needs raises InvalidArgument on bad resources).
    """
    by_name = {c.name: c for c in clusters}
    denied = _check_where(tenant, request, by_name) or check_quota(tenant, request_needs(request), usage)
    if denied is not None:
        return denied
    narrowed = narrow_placement(tenant, request.placement, clusters)
    return narrowed if isinstance(narrowed, Denied) else SubmitGrant(narrowed)


# --- pods, clusters, kubeconfigs ------------------------------------------------------------


def authorize_pod_access(tenant: Tenant, owner: str, action: str) -> Decision:
    """get, watch, cancel of one pod request: its own tenant or an admin."""
    if tenant.admin or owner == tenant.name:
        return ALLOWED
    return Denied("own_pods", f"tenant {tenant.name!r} may {action} only its own pods")


def list_scope(tenant: Tenant) -> str | None:
    """The tenant filter for ListPods: None (all tenants) for an admin, else its own name."""
    return None if tenant.admin else tenant.name


def authorize_admin(tenant: Tenant, action: str) -> Decision:
    """Cluster registration, update, deregistration, cordon and uncordon."""
    if tenant.admin:
        return ALLOWED
    return Denied("admin", f"{action} needs the admin role; tenant {tenant.name!r} does not have it")


def visible_clusters(tenant: Tenant, clusters: Iterable[ClusterSpec]) -> list[ClusterSpec]:
    """What GetCluster/ListClusters/ExplainPlacement show: an admin sees all, a tenant the ones it may use."""
    return [c for c in clusters if tenant.admin or tenant.allows_cluster(c)]


def authorize_kubeconfig(
    tenant: Tenant, cluster: ClusterSpec, namespace: str, access: KubeconfigAccess, ttl_seconds: int
) -> Decision:
    grant = tenant.kubeconfig
    if not grant.allowed:
        return Denied("kubeconfig.allowed", f"tenant {tenant.name!r} may not issue kubeconfigs")
    if not tenant.allows_cluster(cluster):
        return Denied("clusters", f"cluster {cluster.name!r} is not allowed; allowed: {_allowed_clusters_text(tenant)}")
    if not tenant.allows_namespace(namespace):
        return Denied("namespaces", f"namespace {namespace!r} is not one of {_names(tenant.namespaces)}")
    if _ACCESS_ORDER[access] > _ACCESS_ORDER[grant.max_access]:
        return Denied("kubeconfig.max_access", f"access {access} exceeds the tenant's maximum, {grant.max_access}")
    if ttl_seconds > grant.max_ttl_seconds:
        return Denied(
            "kubeconfig.max_ttl", f"ttl {ttl_seconds}s exceeds the tenant's maximum of {grant.max_ttl_seconds}s"
        )
    return ALLOWED


def authorize_revoke(tenant: Tenant, cluster: ClusterSpec, namespace: str) -> Decision:
    """Revoking: an admin, or a tenant that may issue kubeconfigs there."""
    if tenant.admin:
        return ALLOWED
    if not tenant.kubeconfig.allowed:
        return Denied("kubeconfig.allowed", f"tenant {tenant.name!r} may not issue or revoke kubeconfigs")
    if not (tenant.allows_cluster(cluster) and tenant.allows_namespace(namespace)):
        return Denied("clusters", f"tenant {tenant.name!r} may not revoke credentials in {cluster.name}/{namespace}")
    return ALLOWED


@dataclass(frozen=True, kw_only=True)
class TenantSet:
    """The configured tenants; replaced as a whole on reload."""

    tenants: Mapping[str, Tenant] = field(default_factory=dict)

    def get(self, name: str) -> Tenant | None:
        return self.tenants.get(name)
