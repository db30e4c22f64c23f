"""The simulated kube-apiserver: one aiohttp application per cluster.

Each request goes: fault injection (latency, error rate) -> authentication (401) -> path parsing into
request attributes (404/405) -> authorization (403) -> the verb's handler -> a request-log record ->
a lost answer, when one is pending for the request's verb and resource (the connection is dropped).
Resource handlers live in `handlers.py`; list/watch in `listing.py`; log/exec in `streams.py`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gateway.sim import discovery, handlers, http1, jsonwire, listing, openapi, reviews, streams
from gateway.sim.auth import Authenticator, Identity
from gateway.sim.errors import Forbidden, MethodNotAllowed, PathNotFound, SimError, Unauthorized
from gateway.sim.exchange import MAX_BODY, Answer, Exchange, Reply
from gateway.sim.faults import Faults, LogSilence, RequestRecord, hang
from gateway.sim.impersonation import impersonate
from gateway.sim.rbac import Attributes, Authorizer, forbidden_message
from gateway.sim.store import ObjectStore
from gateway.sim.tables import to_table
from gateway.sim.tls import peer_identity

_NON_RESOURCE_OPEN = frozenset({"version", "healthz", "livez", "readyz"})


@dataclass
class ApiContext:
    """Everything the handlers of one cluster share; `kubelet` is attached once the node side runs."""

    cluster: str
    store: ObjectStore
    authn: Authenticator
    authz: Authorizer
    faults: Faults
    bookmark_seconds: float = 60.0
    kubelet: streams.KubeletStreams | None = None
    token_min_seconds: int = reviews.MIN_TOKEN_SECONDS


CONTEXT: web.AppKey[ApiContext] = web.AppKey("sim_context", ApiContext)


@dataclass(frozen=True)
class RequestInfo:
    verb: str
    group: str
    resource: str
    namespace: str = ""
    name: str = ""
    subresource: str = ""

    def attributes(self) -> Attributes:
        return Attributes(self.verb, self.resource, self.namespace, self.name, self.subresource, self.group)


def json_response(obj: Any, status: int = 200) -> Reply:
    return Reply(status, jsonwire.dumps(obj))


def error_response(error: SimError) -> Reply:
    response = json_response(error.status(), error.code)
    if error.retry_after is not None:
        response.headers.append(("Retry-After", str(error.retry_after)))
    return response


def _verb(method: str, name: str, subresource: str, watch: bool) -> str:
    if method == "GET":
        if subresource == "exec":
            return "create"
        if name:
            return "get"
        return "watch" if watch else "list"
    verbs = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete" if name else "deletecollection"}
    needs_name = method in ("PUT", "PATCH")
    posts_to_item = method == "POST" and name and not subresource
    if method not in verbs or (needs_name and not name) or posts_to_item:
        raise MethodNotAllowed(f"the server does not allow this method on the requested resource: {method}")
    return verbs[method]


def parse_path(method: str, parts: list[str], watch_param: bool) -> RequestInfo | None:
    """Request attributes for a resource URL; None for discovery and other non-resource URLs."""
    if parts[:2] == ["api", "v1"] and len(parts) > 2:
        group, rest = "", parts[2:]
    elif len(parts) > 3 and parts[0] == "apis" and parts[2] == "v1":
        group, rest = parts[1], parts[3:]
    else:
        return None
    watch = watch_param
    if rest[0] == "watch":
        watch, rest = True, rest[1:]
    namespace = ""
    namespace_status = group == "" and len(rest) == 3 and rest[2] == "status"  # /namespaces/{name}/status
    if len(rest) >= 3 and rest[0] == "namespaces" and not namespace_status:
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        raise PathNotFound()
    resource, name, sub = rest[0], rest[1] if len(rest) > 1 else "", rest[2] if len(rest) > 2 else ""
    api = discovery.BY_NAME.get((group, resource))
    if api is None or (namespace and not api.namespaced) or (name and api.namespaced and not namespace):
        raise PathNotFound()
    if sub and sub not in {s[0] for s in api.subresources}:
        raise PathNotFound()
    if resource == "namespaces" and name:
        namespace = name
    verb = _verb(method, name, sub, watch)
    allowed = {s[0]: s[2] for s in api.subresources}.get(sub, api.verbs)
    if verb not in allowed and not (sub == "exec" and verb == "create"):
        raise MethodNotAllowed(f"the server does not allow this method on the requested resource: {method}")
    return RequestInfo(verb, group, resource, namespace, name, sub)


def _discovery(parts: list[str]) -> Any:
    if parts == ["version"]:
        return discovery.KUBE_VERSION
    if parts == ["api"]:
        return discovery.core_versions()
    if parts == ["api", "v1"]:
        return discovery.resource_list("")
    if parts == ["apis"]:
        return discovery.group_list()
    if len(parts) == 2 and parts[0] == "apis":
        return discovery.api_group(parts[1])
    if len(parts) == 3 and parts[0] == "apis" and parts[2] == "v1" and discovery.api_group(parts[1]):
        return discovery.resource_list(parts[1])
    return None


def _non_resource(parts: list[str]) -> Reply:
    if parts[:2] == ["openapi", "v3"]:
        if len(parts) == 2:
            return json_response(openapi.index())
        document = openapi.group_version_document("/".join(parts[2:]))
        if document is None:
            raise PathNotFound()
        return Reply(200, document)
    found = _discovery(parts)
    if found is None:
        raise PathNotFound()
    return json_response(found)


class ApiServer:
    """The request pipeline of one cluster (see the module docstring)."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    def application(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app[CONTEXT] = self.ctx
        app.router.add_route("*", "/{tail:.*}", http1.handler(self.handle))
        return app

    async def handle(self, request: Exchange) -> Answer:
        """The answer to one request, on either protocol, counted in flight from its arrival (latency included)."""
        with self.ctx.faults.serving(*_kind(request)) as refusal:
            return await self._handle(request, refusal)

    async def _handle(self, request: Exchange, refusal: SimError | None) -> Answer:
        """`refusal`: the max-in-flight 429 to answer an authenticated request with."""
        faults = self.ctx.faults
        if faults.latency:
            await asyncio.sleep(faults.latency)
        if faults.blackhole:
            await hang()
        parts = [p for p in request.path.split("/") if p]
        info: RequestInfo | None = None
        user = ""
        try:
            identity = self._authenticate(request)
            user = identity.user
            if parts and parts[0] in ("healthz", "livez", "readyz"):
                return Reply(200, b"ok", "text/plain; charset=utf-8")
            info = parse_path(request.method, parts, listing._truthy(request.query.get("watch")))
            if identity.anonymous and not (info is None and parts[:1] and parts[0] in _NON_RESOURCE_OPEN):
                raise Unauthorized()
            injected = refusal or faults.injected_error()
            if injected is None and info is not None:
                injected = faults.refused_create(info.verb, info.resource, info.subresource)
                injected = injected or faults.failed_request(info.verb, _resource_label(info))
                injected = injected or faults.throttled_request(info.verb, _resource_label(info))
            if injected is not None:
                raise injected
            if info is None:
                response: Answer = _non_resource(parts)
            else:
                self._authorize(identity, info)
                response = await self._dispatch(request, info, identity)
        except SimError as e:
            response = error_response(e)
        self._record(request, info, user, response.status)
        if info is not None and faults.take_lost_answer(info.verb, _resource_label(info)):
            request.drop()  # carried out, answer never sent: the protocol's write then fails quietly
        return response

    def _authenticate(self, request: Exchange) -> Identity:
        cert = peer_identity(request.peercert())
        identity = self.ctx.authn.authenticate(request.headers.get("Authorization"), cert)
        return impersonate(identity, request.headers, self.ctx.authz)

    def _authorize(self, identity: Identity, info: RequestInfo) -> None:
        if info.resource in ("selfsubjectaccessreviews", "selfsubjectrulesreviews", "selfsubjectreviews"):
            return
        attrs = info.attributes()
        if not self.ctx.authz.allowed(identity, attrs):
            details = {"name": info.name, "kind": info.resource, "group": info.group}
            raise Forbidden(forbidden_message(identity, attrs), details=details)

    def _record(self, request: Exchange, info: RequestInfo | None, user: str, code: int) -> None:
        verb = info.verb if info else request.method.lower()
        resource = _resource_label(info) if info else ""
        self.ctx.faults.record(
            RequestRecord(
                verb, resource, info.namespace if info else "", info.name if info else "", user, code, request.path
            )
        )

    async def _dispatch(self, request: Exchange, info: RequestInfo, identity: Identity) -> Answer:
        ctx, store = self.ctx, self.ctx.store
        if info.subresource == "log":
            silence = LogSilence(ctx.faults)
            return await streams.serve_logs(request, store, ctx.kubelet, info.namespace, info.name, silence, ctx.faults)
        if info.subresource == "exec":
            return await streams.serve_exec(request, store, ctx.kubelet, info.namespace, info.name)
        if info.verb == "watch":
            return await listing.serve_watch(
                request, store, info.group, info.resource, info.namespace or None, ctx.bookmark_seconds, ctx.faults
            )
        if info.verb == "list":
            as_table = "as=Table" in request.headers.get("Accept", "")
            return json_response(
                listing.list_response(store, info.group, info.resource, info.namespace or None, request.query, as_table)
            )
        body = await handlers.read_body(request) if request.method in ("POST", "PUT", "PATCH", "DELETE") else None
        if info.resource == "selfsubjectaccessreviews":
            return json_response(reviews.self_subject_access_review(ctx.authz, identity, body or {}), 201)
        if info.resource == "selfsubjectrulesreviews":
            return json_response(reviews.self_subject_rules_review(ctx.authz, identity, body or {}), 201)
        if info.resource == "selfsubjectreviews":
            return json_response(reviews.self_subject_review(identity), 201)
        if info.subresource == "token":
            result = reviews.token_request(
                store, ctx.authn, info.namespace, info.name, body or {}, min_seconds=ctx.token_min_seconds
            )
            return json_response(result, 201)
        status, obj = handlers.HANDLERS[info.verb](store, info, body, request)
        if "as=Table" in request.headers.get("Accept", "") and info.verb == "get":
            obj = to_table(
                info.resource,
                [obj],
                {"resourceVersion": obj["metadata"]["resourceVersion"]},
                request.query.get("includeObject", "Metadata"),
            )
        response = json_response(obj, status)
        for warning in request.warnings:
            escaped = warning.replace("\\", "\\\\").replace('"', '\\"')
            response.headers.append(("Warning", f'299 - "{escaped}"'))
        return response


def _kind(request: Exchange) -> tuple[str, str, str]:
    """(verb, resource as the request log names it, subresource) of a request, to count it in flight; a URL
    that is no resource's is counted by its method (its own error, if any, is answered in order later)."""
    parts = [p for p in request.path.split("/") if p]
    try:
        info = parse_path(request.method, parts, listing._truthy(request.query.get("watch")))
    except SimError:
        info = None
    return (request.method.lower(), "", "") if info is None else (info.verb, _resource_label(info), info.subresource)


def _resource_label(info: RequestInfo) -> str:
    """The resource as the request log and the fault settings name it: "pods", "pods/log"."""
    return f"{info.resource}/{info.subresource}" if info.subresource else info.resource
