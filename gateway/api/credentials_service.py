"""CredentialsService: short-lived, namespace-scoped kubeconfigs, each issuance and revocation audited.

Two rules must both allow an issuance: the caller's tenant (kubeconfig grant: access level, TTL,
clusters, namespaces) and the cluster's own (only namespaces it allows gateway pods in). The issued
kubeconfig never reaches the audit or a log.
"""

from __future__ import annotations

from typing import Any

from gateway import errors
from gateway._proto.podgate.v1 import credentials_pb2, credentials_pb2_grpc
from gateway.api.access import AccessControl, current_caller
from gateway.api.audit import AuditEvent
from gateway.api.convert_pods import seconds, timestamp
from gateway.clusters.objects import ClusterObjects
from gateway.clusters.registry import Registry
from gateway.credentials import issuing
from gateway.credentials.base import CredentialError
from gateway.policy import tenants as tp

_ACCESS = {
    credentials_pb2.KUBECONFIG_ACCESS_UNSPECIFIED: issuing.KubeconfigAccess.VIEW,
    credentials_pb2.KUBECONFIG_ACCESS_VIEW: issuing.KubeconfigAccess.VIEW,
    credentials_pb2.KUBECONFIG_ACCESS_EDIT: issuing.KubeconfigAccess.EDIT,
}
DEFAULT_TTL_SECONDS = 15 * 60


class CredentialsService(credentials_pb2_grpc.CredentialsServiceServicer):
    def __init__(self, registry: Registry, access: AccessControl) -> None:
        self._registry = registry
        self._access = access

    @property
    def _policy(self) -> issuing.IssuePolicy:
        return self._access.settings.kubeconfig

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
        caller = current_caller()
        runtime = self._registry.get(request.cluster)
        ttl = issuing.check_ttl(
            int(seconds(request.ttl)) if request.HasField("ttl") else DEFAULT_TTL_SECONDS, self._policy
        )
        access = _ACCESS[request.access]
        allowed = runtime.spec.allowed_namespaces
        if request.namespace not in allowed and "*" not in allowed:
            raise errors.PermissionDenied(
                f"cluster {request.cluster!r} allows namespaces {sorted(allowed)}; {request.namespace!r} is not one of them"
            )
        tp.require(tp.authorize_kubeconfig(caller.tenant, runtime.spec, request.namespace, access, ttl))
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
            server=runtime.spec.issued_server,
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
        tp.require(tp.authorize_revoke(current_caller().tenant, runtime.spec, credential.namespace))
        deleted = await issuing.revoke_kubeconfig(ClusterObjects(runtime.client), credential)
        await self._audit(
            "kubeconfig.revoke",
            credential.cluster,
            credential.namespace,
            outcome="revoked" if deleted else "already-gone",
            credential_id=credential.id,
        )
        return credentials_pb2.RevokeKubeconfigResponse()

    async def _audit(self, action: str, cluster: str, namespace: str, outcome: str, **details: Any) -> None:
        entry = AuditEvent(
            action=action, outcome=outcome, cluster=cluster, namespace=namespace,
            details=tuple((k, str(v)) for k, v in details.items()),
        )  # fmt: skip
        await self._access.audit(current_caller(), entry)
