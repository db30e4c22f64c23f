"""Authorization of one simulated cluster: a small RBAC model answering like kube-apiserver.

Three sources of permission, any of which allows a request:
- group `system:masters` (the admin identity): cluster-admin;
- static identities from the config: namespaces x resources x verbs ("*" = all);
- Role/RoleBinding objects in the store (rbac.authorization.k8s.io/v1), for ServiceAccounts, users and
  groups. A RoleBinding may also reference the built-in ClusterRoles `cluster-admin`, `admin`, `edit`
  and `view`, as Kubernetes ships them (in spirit).
Discovery, /version and self-reviews are open to every authenticated caller, as in Kubernetes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.sim.auth import Identity
from gateway.sim.config import UserSpec
from gateway.sim.store import ObjectStore

MASTERS = "system:masters"
_READ = ("get", "list", "watch")
_WRITE = ("create", "update", "patch", "delete", "deletecollection")
_ALL = ("*",)
BUILTIN_CLUSTER_ROLES: dict[str, list[dict[str, Any]]] = {
    "cluster-admin": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
    "admin": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
    "edit": [
        {"apiGroups": [""], "resources": ["pods", "pods/log", "pods/exec", "pods/status"], "verbs": [*_READ, *_WRITE]},
        {"apiGroups": [""], "resources": ["events", "serviceaccounts", "secrets"], "verbs": [*_READ, *_WRITE]},
        {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]},
    ],
    "view": [
        {
            "apiGroups": [""],
            "resources": ["pods", "pods/log", "pods/status", "events", "serviceaccounts"],
            "verbs": list(_READ),
        }
    ],
}


@dataclass(frozen=True)
class Attributes:
    """What a request does, as an authorizer sees it."""

    verb: str
    resource: str
    namespace: str = ""
    name: str = ""
    subresource: str = ""
    group: str = ""

    @property
    def full_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def _covers(allowed: Iterable[str], wanted: str) -> bool:
    return any(a in ("*", wanted) for a in allowed)


def _rule_allows(rule: Mapping[str, Any], attrs: Attributes) -> bool:
    resources = rule.get("resources") or []
    return (
        _covers(rule.get("apiGroups") or [], attrs.group)
        and (_covers(resources, attrs.full_resource) or (not attrs.subresource and _covers(resources, attrs.resource)))
        and _covers(rule.get("verbs") or [], attrs.verb)
        and (not rule.get("resourceNames") or attrs.name in rule["resourceNames"])
    )


def _subject_matches(subject: Mapping[str, Any], identity: Identity, binding_ns: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "ServiceAccount":
        return identity.service_account == (subject.get("namespace") or binding_ns, name)
    if kind == "User":
        return identity.user == name
    if kind == "Group":
        return name in identity.groups
    return False


class Authorizer:
    def __init__(self, store: ObjectStore, users: Iterable[UserSpec]) -> None:
        self._store = store
        self._users = {u.name: u for u in users}

    def allowed(self, identity: Identity, attrs: Attributes) -> bool:
        if MASTERS in identity.groups:
            return True
        user = self._users.get(identity.user)
        if user is not None and self._static_allows(user, attrs):
            return True
        return bool(attrs.namespace) and self._bindings_allow(identity, attrs)

    def rules_for(self, identity: Identity, namespace: str) -> list[dict[str, Any]]:
        """The resource rules that apply to `identity` in `namespace` (for SelfSubjectRulesReview)."""
        if MASTERS in identity.groups:
            return [dict(r) for r in BUILTIN_CLUSTER_ROLES["cluster-admin"]]
        rules: list[dict[str, Any]] = []
        user = self._users.get(identity.user)
        if user is not None and (_covers(user.namespaces, namespace) if namespace else "*" in user.namespaces):
            rules.append({"verbs": list(user.verbs), "apiGroups": ["*"], "resources": list(user.resources)})
        if namespace:
            bindings, _ = self._store.list("rolebindings", namespace)
            for binding in bindings:
                if any(_subject_matches(s, identity, namespace) for s in binding.get("subjects") or []):
                    rules += self._rules(binding.get("roleRef") or {}, namespace)
        return rules

    @staticmethod
    def _static_allows(user: UserSpec, attrs: Attributes) -> bool:
        namespace_ok = _covers(user.namespaces, attrs.namespace) if attrs.namespace else "*" in user.namespaces
        resource_ok = _covers(user.resources, attrs.full_resource) or (
            not attrs.subresource and _covers(user.resources, attrs.resource)
        )
        return namespace_ok and resource_ok and _covers(user.verbs, attrs.verb)

    def _bindings_allow(self, identity: Identity, attrs: Attributes) -> bool:
        bindings, _ = self._store.list("rolebindings", attrs.namespace)
        for binding in bindings:
            if not any(_subject_matches(s, identity, attrs.namespace) for s in binding.get("subjects") or []):
                continue
            if any(_rule_allows(rule, attrs) for rule in self._rules(binding.get("roleRef") or {}, attrs.namespace)):
                return True
        return False

    def _rules(self, ref: Mapping[str, Any], namespace: str) -> list[dict[str, Any]]:
        if ref.get("kind") == "ClusterRole":
            return BUILTIN_CLUSTER_ROLES.get(ref.get("name", ""), [])
        if ref.get("kind") != "Role" or not self._store.exists("roles", namespace, ref.get("name", "")):
            return []
        rules: list[dict[str, Any]] = self._store.get("roles", namespace, ref["name"]).get("rules") or []
        return rules


def forbidden_message(identity: Identity, attrs: Attributes) -> str:
    """The exact sentence kube-apiserver writes in a 403 Status."""
    who = f'User "{identity.user}"'
    subject = f'{attrs.resource} "{attrs.name}"' if attrs.name else attrs.resource
    where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    return (
        f'{subject} is forbidden: {who} cannot {attrs.verb} resource "{attrs.full_resource}" '
        f'in API group "{attrs.group}" {where}'
    )
