"""Kubernetes API requests as plain values: `prepare_*` builds a `Request`, only the client sends it.

Nothing here does I/O, so every path, query and body is checked by table tests.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import orjson

KubeObject = dict[str, Any]
Params = tuple[tuple[str, str], ...]

EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")


@dataclass(frozen=True, kw_only=True)
class Resource:
    """A kind of object the client reads or writes (core group when `group` is empty)."""

    plural: str
    version: str = "v1"
    group: str = ""
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str = "") -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{_segment(namespace)}"
        elif not self.namespaced and namespace:
            raise ValueError(f"{self.plural} are not namespaced; got namespace {namespace!r}")
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{_segment(name)}"
        if subresource:
            base += f"/{subresource}"
        return base


PODS = Resource(plural="pods")
NODES = Resource(plural="nodes", namespaced=False)
EVENTS = Resource(plural="events")
NAMESPACES = Resource(plural="namespaces", namespaced=False)
SERVICE_ACCOUNTS = Resource(plural="serviceaccounts")
SECRETS = Resource(plural="secrets")
ROLES = Resource(plural="roles", group="rbac.authorization.k8s.io")
ROLE_BINDINGS = Resource(plural="rolebindings", group="rbac.authorization.k8s.io")


@dataclass(frozen=True, kw_only=True)
class Request:
    """One HTTP request to an API server, relative to its base URL. Holds no credentials."""

    method: str
    path: str
    params: Params = ()
    body: Mapping[str, Any] | None = field(default=None, repr=False)  # may be a Secret: not in repr
    headers: Mapping[str, str] = field(default_factory=dict)
    websocket_protocols: tuple[str, ...] = ()  # non-empty: upgrade to a WebSocket
    retry: bool = True  # False: one attempt (the health probe, whose hysteresis is its retry)

    @property
    def call(self) -> str:
        """How errors and logs name this request: method and path, never query or body."""
        return f"{self.method} {self.path}"

    def data(self) -> bytes | None:
        """The body as JSON: orjson first (a pod's manifest in C, not json's encoder: ~0.8 % of a dispatched pod's
        busy samples); what it refuses (keys that are not strings, integers beyond 64 bits, lone surrogates) goes
        to json.dumps as before. The one difference, a float NaN or infinity written as null where json wrote
        an invalid NaN, cannot come from the bodies sent: manifests are read by pods/pod_schema.load_strict,
        which refuses them (and reads other numbers as Decimal), and the gateway's own bodies have no floats."""
        if self.body is None:
            return None
        try:
            return orjson.dumps(self.body, default=_exact)
        except orjson.JSONEncodeError:
            return json.dumps(self.body, separators=(",", ":"), default=_exact).encode()


def _exact(value: object) -> str:
    """A manifest's non-integer JSON number arrives as Decimal (its exact text); Kubernetes reads the only
    such fields, quantities, from strings alike, so it goes out as its text and never through a float."""
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _segment(value: str) -> str:
    if not value or "/" in value or value in (".", ".."):
        raise ValueError(f"invalid name or namespace {value!r}")
    return quote(value, safe="")


def _params(**values: str | int | bool | None) -> Params:
    """Query parameters in a stable order, leaving out unset ones (None, "", 0, False)."""
    out: list[tuple[str, str]] = []
    for key, value in values.items():
        if value is None or value == "" or value is False:
            continue
        if isinstance(value, bool):
            out.append((key, "true"))
        elif isinstance(value, int) and value == 0:
            continue
        else:
            out.append((key, str(value)))
    return tuple(out)


JSON_HEADERS: Mapping[str, str] = {"Accept": "application/json", "Content-Type": "application/json"}


def prepare_get(resource: Resource, namespace: str | None, name: str) -> Request:
    return Request(method="GET", path=resource.path(namespace, name), headers={"Accept": "application/json"})


def prepare_list(
    resource: Resource,
    namespace: str | None = None,
    *,
    label_selector: str = "",
    field_selector: str = "",
    limit: int = 0,
    continue_token: str = "",
    resource_version: str = "",
) -> Request:
    params = _params(
        labelSelector=label_selector,
        fieldSelector=field_selector,
        limit=limit,
        resourceVersion=resource_version,
        **{"continue": continue_token},
    )
    return Request(method="GET", path=resource.path(namespace), params=params, headers={"Accept": "application/json"})


def prepare_create(resource: Resource, namespace: str | None, body: Mapping[str, Any]) -> Request:
    return Request(method="POST", path=resource.path(namespace), body=body, headers=JSON_HEADERS)


def prepare_replace(resource: Resource, namespace: str | None, name: str, body: Mapping[str, Any]) -> Request:
    return Request(method="PUT", path=resource.path(namespace, name), body=body, headers=JSON_HEADERS)


def prepare_delete(
    resource: Resource, namespace: str | None, name: str, *, grace_seconds: int | None = None
) -> Request:
    body = None
    if grace_seconds is not None:
        if grace_seconds < 0:
            raise ValueError(f"grace_seconds must be >= 0, got {grace_seconds}")
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": grace_seconds}
    return Request(method="DELETE", path=resource.path(namespace, name), body=body, headers=JSON_HEADERS)


def prepare_watch(
    resource: Resource,
    namespace: str | None = None,
    *,
    resource_version: str = "",
    label_selector: str = "",
    field_selector: str = "",
    timeout_seconds: int = 0,
) -> Request:
    """A watch from `resource_version`, asking for bookmarks so an idle watch still advances it."""
    params = _params(
        watch=True,
        allowWatchBookmarks=True,
        resourceVersion=resource_version,
        labelSelector=label_selector,
        fieldSelector=field_selector,
        timeoutSeconds=timeout_seconds,
    )
    return Request(method="GET", path=resource.path(namespace), params=params, headers={"Accept": "application/json"})


def prepare_version() -> Request:
    return Request(method="GET", path="/version", headers={"Accept": "application/json"}, retry=False)


def rfc3339(moment: datetime) -> str:
    """The form sinceTime accepts (whole seconds are all the API server honours)."""
    if moment.tzinfo is None:
        raise ValueError("since_time must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def prepare_logs(
    namespace: str,
    pod: str,
    container: str = "",
    *,
    follow: bool = False,
    timestamps: bool = False,
    since_time: datetime | None = None,
    tail_lines: int | None = None,
) -> Request:
    if tail_lines is not None and tail_lines < 0:
        raise ValueError(f"tail_lines must be >= 0, got {tail_lines}")
    params = _params(
        container=container,
        follow=follow,
        timestamps=timestamps,
        sinceTime=rfc3339(since_time) if since_time else None,
    )
    if tail_lines is not None:
        params += (("tailLines", str(tail_lines)),)
    return Request(method="GET", path=PODS.path(namespace, pod, "log"), params=params)


def prepare_exec(namespace: str, pod: str, container: str, command: Sequence[str]) -> Request:
    """An exec without stdin or tty: stdout, stderr and the exit status come back on channels."""
    if not command:
        raise ValueError("exec needs a command")
    params: Params = tuple(("command", part) for part in command)
    params += _params(container=container, stdout=True, stderr=True)
    return Request(
        method="GET", path=PODS.path(namespace, pod, "exec"), params=params, websocket_protocols=EXEC_PROTOCOLS
    )


def prepare_token_request(
    namespace: str,
    service_account: str,
    *,
    expiration_seconds: int,
    bound_secret: str = "",
    bound_secret_uid: str = "",
    audiences: Sequence[str] = (),
) -> Request:
    """A TokenRequest; bound to a Secret, the token dies when the Secret is deleted (revocation)."""
    if expiration_seconds < 600:
        raise ValueError(f"expiration_seconds must be at least 600 (Kubernetes' minimum), got {expiration_seconds}")
    spec: dict[str, Any] = {"expirationSeconds": expiration_seconds}
    if audiences:
        spec["audiences"] = list(audiences)
    if bound_secret:
        spec["boundObjectRef"] = {"kind": "Secret", "apiVersion": "v1", "name": bound_secret}
        if bound_secret_uid:
            spec["boundObjectRef"]["uid"] = bound_secret_uid
    body = {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "spec": spec}
    path = SERVICE_ACCOUNTS.path(namespace, service_account, "token")
    return Request(method="POST", path=path, body=body, headers=JSON_HEADERS)
