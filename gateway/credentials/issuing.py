"""Short-lived, namespace-scoped kubeconfigs (IssueKubeconfig / RevokeKubeconfig).

Per namespace and access level the gateway keeps one ServiceAccount with a Role and RoleBinding of
least privilege (`view`: read pods, logs, events; `edit`: also create/delete pods and exec). Each
issuance creates a Secret and mints a TokenRequest token bound to it, so deleting that Secret revokes
the token before it expires. The credential id names the Secret; it is not a secret itself.

The planning here is pure; the few writes go through `ObjectApi`, a narrow protocol the clusters layer
implements over its Kubernetes client (credentials sits below clusters and may not import it).
"""

from __future__ import annotations

import base64
import enum
import logging
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import yaml

from gateway.credentials.base import CredentialError, Endpoint
from gateway.errors import FieldViolation, InvalidArgument, Unavailable

log = logging.getLogger(__name__)
audit = logging.getLogger("podgate.audit")

MIN_TTL_SECONDS = 600  # Kubernetes refuses shorter TokenRequests
MANAGED_BY = {"app.kubernetes.io/managed-by": "podgate"}
CREDENTIAL_LABEL = "podgate.io/kubeconfig"
EXPIRES_ANNOTATION = "podgate.io/expires-at"
_READ = ["get", "list", "watch"]
_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
# cluster/namespace/secret: each part a name the API server accepts, so a forged id never reaches it
_CREDENTIAL_ID = re.compile(rf"({_DNS_LABEL})/({_DNS_LABEL})/(podgate-kc-[a-z0-9]{{1,52}})")


class KubeconfigAccess(enum.StrEnum):
    VIEW = "view"
    EDIT = "edit"


ROLE_RULES: Mapping[KubeconfigAccess, tuple[Mapping[str, Any], ...]] = {
    KubeconfigAccess.VIEW: ({"apiGroups": [""], "resources": ["pods", "pods/log", "events"], "verbs": _READ},),
    KubeconfigAccess.EDIT: (
        {"apiGroups": [""], "resources": ["pods", "pods/log", "events"], "verbs": _READ},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "delete"]},
        {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"]},
    ),
}


class ObjectApi(Protocol):
    """The Kubernetes writes issuing needs, on one cluster. `kind` is ServiceAccount, Role, RoleBinding or Secret."""

    async def apply(self, kind: str, namespace: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """Create or replace; returns the stored object (with its uid)."""
        ...

    async def delete(self, kind: str, namespace: str, name: str) -> bool:
        """Delete; False when it did not exist."""
        ...

    async def token_request(
        self, namespace: str, service_account: str, *, expiration_seconds: int, bound_secret: str, bound_secret_uid: str
    ) -> tuple[str, str]:
        """(token, expirationTimestamp) of a TokenRequest bound to a Secret."""
        ...


@dataclass(frozen=True, kw_only=True)
class IssuePolicy:
    """The gateway-wide cap on issued kubeconfigs (the `kubeconfig:` section of the settings); tenants may
    have lower ones."""

    max_ttl_seconds: int = 8 * 3600


@dataclass(frozen=True, kw_only=True)
class IssuePlan:
    """The objects one issuance needs, and the names that tie them together (pure)."""

    namespace: str
    access: KubeconfigAccess
    ttl_seconds: int
    service_account: str
    secret_name: str
    objects: tuple[tuple[str, Mapping[str, Any]], ...]  # (kind, body), in creation order

    def credential_id(self, cluster: str) -> str:
        return IssuedCredential(cluster=cluster, namespace=self.namespace, secret_name=self.secret_name).id


@dataclass(frozen=True, kw_only=True)
class IssuedKubeconfig:
    kubeconfig: str = field(repr=False)  # holds the token: only ever returned to the caller
    expires_at: datetime
    credential_id: str
    service_account: str


@dataclass(frozen=True, kw_only=True)
class IssuedCredential:
    """What a credential id names: the Secret a token is bound to. RevokeKubeconfig gets only the id."""

    cluster: str
    namespace: str
    secret_name: str

    @property
    def id(self) -> str:
        return f"{self.cluster}/{self.namespace}/{self.secret_name}"


def parse_credential_id(value: str) -> IssuedCredential:
    match = _CREDENTIAL_ID.fullmatch(value)
    if match is None:
        shown = value if len(value) <= 100 else f"{value[:100]}..."
        raise InvalidArgument(
            f"credential id {shown!r} is not one this gateway issued",
            [FieldViolation("credential_id", "expected <cluster>/<namespace>/podgate-kc-<id>")],
        )
    cluster, namespace, secret_name = match.groups()
    return IssuedCredential(cluster=cluster, namespace=namespace, secret_name=secret_name)


def check_ttl(ttl_seconds: int, policy: IssuePolicy) -> int:
    if ttl_seconds < MIN_TTL_SECONDS or ttl_seconds > policy.max_ttl_seconds:
        raise InvalidArgument(
            f"ttl must be between {MIN_TTL_SECONDS}s (Kubernetes' minimum) and {policy.max_ttl_seconds}s, got {ttl_seconds}s",
            [FieldViolation("ttl", f"between {MIN_TTL_SECONDS} and {policy.max_ttl_seconds} seconds")],
        )
    return ttl_seconds


def _meta(name: str, namespace: str, **labels: str) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": {**MANAGED_BY, **labels}}


def plan_issue(
    namespace: str, access: KubeconfigAccess, ttl_seconds: int, policy: IssuePolicy, *, now: datetime, suffix: str = ""
) -> IssuePlan:
    """ServiceAccount, Role, RoleBinding (shared per namespace and access level) and this issuance's Secret."""
    check_ttl(ttl_seconds, policy)
    expires_at = (now + timedelta(seconds=ttl_seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    name = f"podgate-{access}"
    secret_name = f"podgate-kc-{suffix or secrets.token_hex(6)}"
    role_ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}
    subject = {"kind": "ServiceAccount", "name": name, "namespace": namespace}
    objects: tuple[tuple[str, Mapping[str, Any]], ...] = (
        ("ServiceAccount", {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(name, namespace)}),
        (
            "Role",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": _meta(name, namespace),
                "rules": [dict(r) for r in ROLE_RULES[access]],
            },
        ),
        (
            "RoleBinding",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": _meta(name, namespace),
                "roleRef": role_ref,
                "subjects": [subject],
            },
        ),
        (
            "Secret",
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": {
                    **_meta(secret_name, namespace, **{CREDENTIAL_LABEL: access.value}),
                    "annotations": {EXPIRES_ANNOTATION: expires_at},
                },
            },
        ),
    )
    return IssuePlan(
        namespace=namespace,
        access=access,
        ttl_seconds=ttl_seconds,
        service_account=name,
        secret_name=secret_name,
        objects=objects,
    )


def expired_secrets(items: Iterable[Mapping[str, Any]], now: datetime) -> list[str]:
    """Names of issuance Secrets whose token has expired: safe to delete (a garbage collector's list)."""
    expired = []
    for item in items:
        meta = item.get("metadata") or {}
        stamp = (meta.get("annotations") or {}).get(EXPIRES_ANNOTATION, "")
        if CREDENTIAL_LABEL not in (meta.get("labels") or {}) or not stamp:
            continue
        try:
            at = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
        except ValueError:
            continue
        if at <= now:
            expired.append(str(meta.get("name", "")))
    return expired


def build_kubeconfig(*, cluster: str, endpoint: Endpoint, namespace: str, user: str, token: str) -> str:
    """A kubeconfig with one context: the cluster's server and CA, the token, the namespace."""
    cluster_entry: dict[str, Any] = {"server": endpoint.server}
    if endpoint.ca_data:
        cluster_entry["certificate-authority-data"] = base64.b64encode(endpoint.ca_data).decode()
    if endpoint.tls_server_name:
        cluster_entry["tls-server-name"] = endpoint.tls_server_name
    context = f"{cluster}-{namespace}"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": cluster_entry}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": cluster, "user": user, "namespace": namespace}}],
        "current-context": context,
    }
    return yaml.safe_dump(doc, sort_keys=False)


async def issue_kubeconfig(
    api: ObjectApi,
    endpoint: Endpoint,
    *,
    cluster: str,
    namespace: str,
    ttl_seconds: int,
    access: KubeconfigAccess,
    policy: IssuePolicy = IssuePolicy(),
    server: str = "",
) -> IssuedKubeconfig:
    """Applies the plan's objects, requests the bound token and builds the kubeconfig. `server` is the URL
    the kubeconfig carries instead of the endpoint's (the registration's issuedServer: an in-cluster
    gateway reaches its cluster at the service address, which its users cannot); CA and TLS name are kept."""
    if server:
        endpoint = replace(endpoint, server=server)
    plan = plan_issue(namespace, access, ttl_seconds, policy, now=datetime.now(UTC))
    stored: Mapping[str, Any] = {}
    for kind, body in plan.objects:
        stored = await api.apply(kind, namespace, body)
    uid = str(stored.get("metadata", {}).get("uid", ""))  # the Secret, applied last
    token, expiry = await api.token_request(
        namespace,
        plan.service_account,
        expiration_seconds=ttl_seconds,
        bound_secret=plan.secret_name,
        bound_secret_uid=uid,
    )
    user = f"system:serviceaccount:{namespace}:{plan.service_account}"
    audit.info(
        "issued kubeconfig %s: namespace=%s access=%s ttl=%ss expires=%s",
        plan.credential_id(cluster),
        namespace,
        access,
        ttl_seconds,
        expiry,
    )
    return IssuedKubeconfig(
        kubeconfig=build_kubeconfig(cluster=cluster, endpoint=endpoint, namespace=namespace, user=user, token=token),
        expires_at=datetime.fromisoformat(expiry.replace("Z", "+00:00")),
        credential_id=plan.credential_id(cluster),
        service_account=user,
    )


async def revoke_kubeconfig(api: ObjectApi, credential: IssuedCredential) -> bool:
    """Deletes the Secret the token is bound to (pick `api` by `credential.cluster`); False when already gone."""
    try:
        deleted = await api.delete("Secret", credential.namespace, credential.secret_name)
    except CredentialError as e:
        raise Unavailable(f"cluster {credential.cluster!r}: {e}") from None
    audit.info("revoked kubeconfig %s (%s)", credential.id, "deleted" if deleted else "already gone")
    return deleted
