"""How the simulated API server reads a URL into request attributes (pure)."""

from __future__ import annotations

import pytest

from gateway.sim.apiserver import RequestInfo, parse_path
from gateway.sim.errors import MethodNotAllowed, PathNotFound

RBAC = "rbac.authorization.k8s.io"


@pytest.mark.parametrize(
    ("method", "path", "watch", "expected"),
    [
        ("GET", "/api/v1/pods", False, RequestInfo("list", "", "pods")),
        ("GET", "/api/v1/pods", True, RequestInfo("watch", "", "pods")),
        ("GET", "/api/v1/watch/namespaces/a/pods", False, RequestInfo("watch", "", "pods", "a")),
        ("POST", "/api/v1/namespaces/a/pods", False, RequestInfo("create", "", "pods", "a")),
        ("GET", "/api/v1/namespaces/a/pods/p", False, RequestInfo("get", "", "pods", "a", "p")),
        ("PATCH", "/api/v1/namespaces/a/pods/p/status", False, RequestInfo("patch", "", "pods", "a", "p", "status")),
        ("GET", "/api/v1/namespaces/a/pods/p/log", False, RequestInfo("get", "", "pods", "a", "p", "log")),
        ("GET", "/api/v1/namespaces/a/pods/p/exec", False, RequestInfo("create", "", "pods", "a", "p", "exec")),
        ("DELETE", "/api/v1/namespaces/a/pods", False, RequestInfo("deletecollection", "", "pods", "a")),
        ("GET", "/api/v1/namespaces/a", False, RequestInfo("get", "", "namespaces", "a", "a")),
        ("PUT", "/api/v1/namespaces/a/status", False, RequestInfo("update", "", "namespaces", "a", "a", "status")),
        ("GET", "/api/v1/nodes/n1", False, RequestInfo("get", "", "nodes", "", "n1")),
        (
            "POST",
            "/api/v1/namespaces/a/serviceaccounts/sa/token",
            False,
            RequestInfo("create", "", "serviceaccounts", "a", "sa", "token"),
        ),
        ("GET", f"/apis/{RBAC}/v1/namespaces/a/roles", False, RequestInfo("list", RBAC, "roles", "a")),
        ("GET", "/version", False, None),
        ("GET", "/apis", False, None),
    ],
)
def test_paths_become_request_attributes(method: str, path: str, watch: bool, expected: RequestInfo | None) -> None:
    assert parse_path(method, [p for p in path.split("/") if p], watch) == expected


@pytest.mark.parametrize(
    ("method", "path", "error"),
    [
        ("GET", "/api/v1/widgets", PathNotFound),
        ("GET", "/api/v1/pods/p", PathNotFound),  # a namespaced resource named without its namespace
        ("GET", "/api/v1/namespaces/a/nodes", PathNotFound),  # a cluster-scoped resource in a namespace
        ("GET", "/api/v1/namespaces/a/pods/p/attach", PathNotFound),
        ("PUT", "/api/v1/namespaces/a/pods", MethodNotAllowed),
        ("POST", "/api/v1/namespaces/a/pods/p", MethodNotAllowed),
        ("DELETE", "/api/v1/namespaces/a/pods/p/log", MethodNotAllowed),
        ("GET", f"/apis/{RBAC}/v1/namespaces/a/roles/r/status", PathNotFound),
    ],
)
def test_bad_paths(method: str, path: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_path(method, [p for p in path.split("/") if p], False)
