"""What the simulated API server serves, as discovery documents (pure data).

kubectl resolves `kubectl get po` through these lists (names, shortNames, verbs, namespaced), so they
must be right; the resource table also drives routing in the API server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RBAC_GROUP = "rbac.authorization.k8s.io"
AUTHZ_GROUP = "authorization.k8s.io"
AUTHN_GROUP = "authentication.k8s.io"
KUBE_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0-podgate-sim",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.24",
    "compiler": "gc",
    "platform": "linux/amd64",
}
_RW = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
_RO = ("get", "list", "watch")


@dataclass(frozen=True)
class ApiResource:
    group: str
    name: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...]
    short_names: tuple[str, ...] = ()
    subresources: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # (name, kind, verbs)
    singular: str = ""
    categories: tuple[str, ...] = ()


RESOURCES: tuple[ApiResource, ...] = (
    ApiResource(
        "",
        "namespaces",
        "Namespace",
        False,
        ("create", "delete", "get", "list", "patch", "update", "watch"),
        ("ns",),
        (("status", "Namespace", ("get", "patch", "update")),),
        "namespace",
    ),
    ApiResource("", "nodes", "Node", False, _RW, ("no",), (("status", "Node", ("get", "patch", "update")),), "node"),
    ApiResource(
        "",
        "pods",
        "Pod",
        True,
        _RW,
        ("po",),
        (
            ("status", "Pod", ("get", "patch", "update")),
            ("log", "Pod", ("get",)),
            ("exec", "PodExecOptions", ("create", "get")),
        ),
        "pod",
        ("all",),
    ),
    ApiResource("", "events", "Event", True, _RW, ("ev",), (), "event"),
    ApiResource(
        "",
        "serviceaccounts",
        "ServiceAccount",
        True,
        _RW,
        ("sa",),
        (("token", "TokenRequest", ("create",)),),
        "serviceaccount",
    ),
    ApiResource("", "secrets", "Secret", True, _RW, (), (), "secret"),
    ApiResource(RBAC_GROUP, "roles", "Role", True, _RW, (), (), "role"),
    ApiResource(RBAC_GROUP, "rolebindings", "RoleBinding", True, _RW, (), (), "rolebinding"),
    ApiResource(
        AUTHZ_GROUP,
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        False,
        ("create",),
        (),
        (),
        "selfsubjectaccessreview",
    ),
    ApiResource(
        AUTHZ_GROUP,
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
        False,
        ("create",),
        (),
        (),
        "selfsubjectrulesreview",
    ),
    ApiResource(
        AUTHN_GROUP, "selfsubjectreviews", "SelfSubjectReview", False, ("create",), (), (), "selfsubjectreview"
    ),
)
BY_NAME: dict[tuple[str, str], ApiResource] = {(r.group, r.name): r for r in RESOURCES}
STORED = frozenset(r.name for r in RESOURCES if "get" in r.verbs)


def group_version(group: str) -> str:
    return f"{group}/v1" if group else "v1"


def resource_list(group: str) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    for r in (r for r in RESOURCES if r.group == group):
        entry: dict[str, Any] = {
            "name": r.name,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": list(r.verbs),
        }
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        items.append(entry)
        for sub, kind, verbs in r.subresources:
            items.append(
                {
                    "name": f"{r.name}/{sub}",
                    "singularName": "",
                    "namespaced": r.namespaced,
                    "kind": kind,
                    "verbs": list(verbs),
                }
            )
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version(group), "resources": items}


def core_versions() -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    }


def _group(group: str) -> dict[str, Any]:
    version = {"groupVersion": f"{group}/v1", "version": "v1"}
    return {"name": group, "versions": [version], "preferredVersion": version}


def group_list() -> dict[str, Any]:
    groups = [_group(g) for g in (RBAC_GROUP, AUTHZ_GROUP, AUTHN_GROUP)]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(group: str) -> dict[str, Any] | None:
    if group not in (RBAC_GROUP, AUTHZ_GROUP, AUTHN_GROUP):
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(group)}
