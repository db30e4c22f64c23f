"""CredentialsService: short-lived, namespace-scoped kubeconfigs, each issuance and revocation audited.

Until tenants land (security issue) the rule is the cluster's own: a kubeconfig is issued only for a
namespace the cluster allows gateway pods in.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gateway import errors
from gateway._proto.podgate.v1 import credentials_pb2, credentials_pb2_grpc
from gateway.api.convert_pods import seconds, timestamp
from gateway.clusters.objects import ClusterObjects
from gateway.clusters.registry import Registry
from gateway.credentials import issuing
from gateway.credentials.base import CredentialError
from gateway.store.base import Store

_ACCESS = {
    credentials_pb2.KUBECONFIG_ACCESS_UNSPECIFIED: issuing.Access.VIEW,
    credentials_pb2.KUBECONFIG_ACCESS_VIEW: issuing.Access.VIEW,
    credentials_pb2.KUBECONFIG_ACCESS_EDIT: issuing.Access.EDIT,
}
DEFAULT_TTL_SECONDS = 15 * 60
DEFAULT_POLICY = issuing.IssuePolicy()


class CredentialsService(credentials_pb2_grpc.CredentialsServiceServicer):
    def __init__(self, registry: Registry, store: Store, policy: issuing.IssuePolicy = DEFAULT_POLICY) -> None:
        self._registry = registry
        self._store = store
        self._policy = policy

    async def IssueKubeconfig(
        self, request: credentials_pb2.IssueKubeconfigRequest, context: Any
    ) -> credentials_pb2.IssueKubeconfigResponse:
        if request.access not in _ACCESS:
            raise errors.InvalidArgument("unknown access level", [errors.FieldViolation("access", "view or edit")])
        if not request.cluster or not request.namespace:
            missing = [f for f in ("cluster", "namespace") if not getattr(request, f)]
            raise errors.InvalidArgument(
                f"{' and '.join(missing)} required", [errors.FieldViolation(f, "required") for f in missing]
            )
        runtime = self._registry.get(request.cluster)
        allowed = runtime.spec.allowed_namespaces
        if request.namespace not in allowed and "*" not in allowed:
            await self._audit("kubeconfig.issue", request.cluster, request.namespace, outcome="denied")
            raise errors.PermissionDenied(
                f"cluster {request.cluster!r} allows namespaces {sorted(allowed)}; {request.namespace!r} is not one of them"
            )
        ttl = issuing.check_ttl(
            int(seconds(request.ttl)) if request.HasField("ttl") else DEFAULT_TTL_SECONDS, self._policy
        )
        access = _ACCESS[request.access]
        try:
            endpoint = await runtime.provider.endpoint()
        except CredentialError as e:
            raise errors.Unavailable(f"cluster {request.cluster!r}: {e}") from None
        issued = await issuing.issue_kubeconfig(
            ClusterObjects(runtime.client),
            endpoint,
            cluster=request.cluster,
            namespace=request.namespace,
            ttl_seconds=ttl,
            access=access,
            policy=self._policy,
        )
        await self._audit(
            "kubeconfig.issue",
            request.cluster,
            request.namespace,
            outcome="issued",
            access=str(access),
            ttl_seconds=ttl,
            credential_id=issued.credential_id,
            expires_at=issued.expires_at.isoformat(),
        )
        return credentials_pb2.IssueKubeconfigResponse(
            kubeconfig=issued.kubeconfig, expire_time=timestamp(issued.expires_at),
            credential_id=issued.credential_id, service_account=issued.service_account,
        )  # fmt: skip

    async def RevokeKubeconfig(
        self, request: credentials_pb2.RevokeKubeconfigRequest, context: Any
    ) -> credentials_pb2.RevokeKubeconfigResponse:
        credential = issuing.parse_credential_id(request.credential_id)
        runtime = self._registry.get(credential.cluster)
        deleted = await issuing.revoke_kubeconfig(ClusterObjects(runtime.client), credential)
        await self._audit(
            "kubeconfig.revoke",
            credential.cluster,
            credential.namespace,
            outcome="revoked" if deleted else "already-gone",
            credential_id=credential.id,
        )
        return credentials_pb2.RevokeKubeconfigResponse()

    async def _audit(self, action: str, cluster: str, namespace: str, **details: Any) -> None:
        await self._store.append_audit({
            "action": action, "actor": "anonymous", "time": datetime.now(UTC).isoformat(),
            "cluster": cluster, "namespace": namespace, **details,
        })  # fmt: skip
