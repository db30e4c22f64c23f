"""Requests as values: paths, query parameters and bodies of every call, without a network."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.clusters.kubeapi import request as rq
from gateway.clusters.kubeapi.request import Request


@pytest.mark.parametrize(
    ("request_", "method", "path", "params"),
    [
        (rq.prepare_get(rq.PODS, "ns", "p"), "GET", "/api/v1/namespaces/ns/pods/p", ()),
        (rq.prepare_get(rq.NODES, None, "n1"), "GET", "/api/v1/nodes/n1", ()),
        (rq.prepare_get(rq.ROLES, "ns", "r"), "GET", "/apis/rbac.authorization.k8s.io/v1/namespaces/ns/roles/r", ()),
        (rq.prepare_list(rq.PODS), "GET", "/api/v1/pods", ()),
        (
            rq.prepare_list(rq.PODS, "ns", label_selector="a=b,c", field_selector="spec.nodeName=n", limit=50,
                            continue_token="tok"),
            "GET",
            "/api/v1/namespaces/ns/pods",
            (("labelSelector", "a=b,c"), ("fieldSelector", "spec.nodeName=n"), ("limit", "50"), ("continue", "tok")),
        ),
        (rq.prepare_create(rq.SECRETS, "ns", {"metadata": {"name": "s"}}), "POST", "/api/v1/namespaces/ns/secrets", ()),
        (rq.prepare_replace(rq.ROLE_BINDINGS, "ns", "b", {}), "PUT",
         "/apis/rbac.authorization.k8s.io/v1/namespaces/ns/rolebindings/b", ()),
        (rq.prepare_delete(rq.PODS, "ns", "p"), "DELETE", "/api/v1/namespaces/ns/pods/p", ()),
        (
            rq.prepare_watch(rq.PODS, None, resource_version="42", label_selector="app=x", timeout_seconds=290),
            "GET",
            "/api/v1/pods",
            (("watch", "true"), ("allowWatchBookmarks", "true"), ("resourceVersion", "42"), ("labelSelector", "app=x"),
             ("timeoutSeconds", "290")),
        ),
        (rq.prepare_version(), "GET", "/version", ()),
        (
            rq.prepare_logs("ns", "p", "main", follow=True, timestamps=True,
                            since_time=datetime(2026, 1, 2, 3, 4, 5, 999, tzinfo=UTC), tail_lines=0),
            "GET",
            "/api/v1/namespaces/ns/pods/p/log",
            (("container", "main"), ("follow", "true"), ("timestamps", "true"), ("sinceTime", "2026-01-02T03:04:05Z"),
             ("tailLines", "0")),
        ),
        (rq.prepare_logs("ns", "p"), "GET", "/api/v1/namespaces/ns/pods/p/log", ()),
        (
            rq.prepare_exec("ns", "p", "base", ["cat", "/airflow/xcom/return.json"]),
            "GET",
            "/api/v1/namespaces/ns/pods/p/exec",
            (("command", "cat"), ("command", "/airflow/xcom/return.json"), ("container", "base"), ("stdout", "true"),
             ("stderr", "true")),
        ),
        (rq.prepare_token_request("ns", "sa", expiration_seconds=900), "POST",
         "/api/v1/namespaces/ns/serviceaccounts/sa/token", ()),
    ],
    ids=["get-pod", "get-node", "get-role", "list-all-pods", "list-page", "create-secret", "replace-binding",
         "delete-pod", "watch", "version", "logs-follow", "logs-plain", "exec", "token"],
)  # fmt: skip
def test_prepared_requests(request_: Request, method: str, path: str, params: tuple[tuple[str, str], ...]) -> None:
    assert (request_.method, request_.path, request_.params) == (method, path, params)
    assert request_.call == f"{method} {path}"


def test_exec_asks_for_v5_then_v4() -> None:
    assert rq.prepare_exec("ns", "p", "c", ["true"]).websocket_protocols == ("v5.channel.k8s.io", "v4.channel.k8s.io")


@pytest.mark.parametrize(
    ("grace", "body"),
    [(None, None), (0, {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0})],
)
def test_delete_options_only_when_grace_is_given(grace: int | None, body: object) -> None:
    assert rq.prepare_delete(rq.PODS, "ns", "p", grace_seconds=grace).body == body


def test_token_request_bound_to_a_secret() -> None:
    req = rq.prepare_token_request(
        "ns", "sa", expiration_seconds=3600, bound_secret="s", bound_secret_uid="u-1", audiences=["api"]
    )
    assert req.body == {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "spec": {
            "expirationSeconds": 3600,
            "audiences": ["api"],
            "boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": "s", "uid": "u-1"},
        },
    }


def test_body_is_compact_json_and_hidden_from_repr() -> None:
    req = rq.prepare_create(rq.SECRETS, "ns", {"stringData": {"password": "hunter2"}})
    assert req.data() == b'{"stringData":{"password":"hunter2"}}'
    assert "hunter2" not in repr(req)


def test_since_time_is_normalised_to_utc() -> None:
    moment = datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert rq.rfc3339(moment) == "2026-01-01T17:00:00Z"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: rq.prepare_get(rq.PODS, "ns", "a/b"), "invalid name"),
        (lambda: rq.prepare_get(rq.PODS, "..", "p"), "invalid name"),
        (lambda: rq.prepare_get(rq.PODS, "ns", ""), "invalid name"),
        (lambda: rq.prepare_get(rq.NODES, "ns", "n"), "not namespaced"),
        (lambda: rq.prepare_delete(rq.PODS, "ns", "p", grace_seconds=-1), "grace_seconds"),
        (lambda: rq.prepare_logs("ns", "p", tail_lines=-1), "tail_lines"),
        (lambda: rq.prepare_logs("ns", "p", since_time=datetime(2026, 1, 1)), "timezone-aware"),
        (lambda: rq.prepare_exec("ns", "p", "c", []), "needs a command"),
        (lambda: rq.prepare_token_request("ns", "sa", expiration_seconds=60), "at least 600"),
    ],
    ids=["slash-in-name", "dotdot-namespace", "empty-name", "node-in-namespace", "negative-grace", "negative-tail",
         "naive-since", "empty-command", "short-token"],
)  # fmt: skip
def test_bad_arguments_are_refused_before_any_request(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]


def test_names_are_percent_encoded() -> None:
    assert rq.prepare_get(rq.PODS, "ns", "a b").path == "/api/v1/namespaces/ns/pods/a%20b"


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**80), 2**80) | st.text()
    | st.decimals(allow_nan=False, allow_infinity=False, places=3).map(lambda d: d.normalize()),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8) | st.integers(0, 9), inner, max_size=4),
    max_leaves=20,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=8), _json_values, max_size=5))
def test_a_body_is_sent_as_json_dumps_would_send_it(body: dict[str, object]) -> None:
    """orjson first, json.dumps for what orjson refuses: the same JSON document either way."""
    data = rq.Request(method="POST", path="/api/v1/namespaces/a/pods", body=body).data()
    assert data is not None
    expected = json.dumps(body, separators=(",", ":"), default=str)
    assert json.loads(data) == json.loads(expected)
