"""An async Kubernetes API client over aiohttp: requests as values, one I/O path per cluster, watches
that resume. See client.py for the calls, watching.py for watch_forever."""

from gateway.clusters.kubeapi.channels import ExecResult
from gateway.clusters.kubeapi.client import ClusterClient
from gateway.clusters.kubeapi.decode import EventType, ObjectList, WatchEvent
from gateway.clusters.kubeapi.errors import (
    AlreadyExists,
    ApiUnreachable,
    BadRequest,
    ClientError,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    KubeError,
    NotFound,
    ServerError,
    StreamSilent,
    TooManyRequests,
    Unauthorized,
)
from gateway.clusters.kubeapi.request import (
    EVENTS,
    NAMESPACES,
    NODES,
    PODS,
    ROLE_BINDINGS,
    ROLES,
    SECRETS,
    SERVICE_ACCOUNTS,
    KubeObject,
    Request,
    Resource,
)
from gateway.clusters.kubeapi.retry import NO_RETRY, RetryDecision, RetryPolicy, decide
from gateway.clusters.kubeapi.timeouts import Timeouts
from gateway.clusters.kubeapi.watching import WatchTarget, list_then_watch, watch_forever

__all__ = [
    "EVENTS",
    "NAMESPACES",
    "NODES",
    "NO_RETRY",
    "PODS",
    "ROLES",
    "ROLE_BINDINGS",
    "SECRETS",
    "SERVICE_ACCOUNTS",
    "AlreadyExists",
    "ApiUnreachable",
    "BadRequest",
    "ClientError",
    "ClusterClient",
    "Conflict",
    "EventType",
    "ExecResult",
    "Forbidden",
    "Gone",
    "Invalid",
    "KubeError",
    "KubeObject",
    "NotFound",
    "ObjectList",
    "Request",
    "Resource",
    "RetryDecision",
    "RetryPolicy",
    "ServerError",
    "StreamSilent",
    "Timeouts",
    "TooManyRequests",
    "Unauthorized",
    "WatchEvent",
    "WatchTarget",
    "decide",
    "list_then_watch",
    "watch_forever",
]
