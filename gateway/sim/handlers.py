"""Create, get, update, patch and delete of stored resources, with kube-apiserver's rules.

Create defaults and validates (names, schema, pod rules), checks the namespace exists and, for pods,
that their ServiceAccount does (the ServiceAccount admission plugin). Update and patch keep status on the
main resource and change only status on `/status`, check immutable fields, and use the object's
resourceVersion for optimistic concurrency (409 Conflict). Delete honours gracePeriodSeconds,
preconditions and finalizers; deleting a namespace removes what it holds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gateway.sim import defaults, patch, protowire
from gateway.sim.errors import BadRequest, Conflict, Forbidden, NotFound, UnsupportedMediaType
from gateway.sim.exchange import OCTET_STREAM, Exchange
from gateway.sim.store import CLUSTER_SCOPED, ObjectStore, copy_obj
from gateway.sim.validation import KINDS, check_body, field_validation, validate_create, validate_update

if TYPE_CHECKING:
    from gateway.sim.apiserver import RequestInfo

Obj = dict[str, Any]
Handler = Callable[[ObjectStore, "RequestInfo", Any, Exchange], tuple[int, Obj]]
_JSON_TYPES = ("application/json", "application/yaml", "")
_WITH_STATUS = frozenset({"pods", "nodes", "namespaces"})
_NAMESPACED_RESOURCES = ("pods", "events", "serviceaccounts", "secrets", "roles", "rolebindings")


async def read_body(request: Exchange) -> Any:
    """The JSON (or YAML) body; 415 for a media type the verb does not take. The kinds kubectl creates as
    protobuf are decoded too (see protowire)."""
    media = request.content_type.lower()
    raw = await request.read()
    if media == protowire.PROTOBUF and request.method == "POST":
        return protowire.decode(raw)
    if request.method == "PATCH":
        if media not in patch.SUPPORTED:
            raise UnsupportedMediaType(
                f"the body of the request was in an unknown format - accepted media types include: "
                f"{', '.join(patch.SUPPORTED)}"
            )
    elif media not in _JSON_TYPES and media != OCTET_STREAM:
        raise UnsupportedMediaType(f"the body of the request was in an unknown format: {media}")
    if not raw:
        return None
    try:
        if media == "application/yaml":
            import yaml

            return yaml.safe_load(raw)
        return json.loads(raw)
    except ValueError as e:
        raise BadRequest(f"the request body is not valid JSON: {e}") from e


def _field_validation(resource: str, obj: Obj, request: Exchange) -> None:
    """Unknown fields: 400 under fieldValidation=Strict, else `Warning` headers (set by the API server)."""
    warnings = field_validation(resource, obj, request.query.get("fieldValidation", ""))
    if warnings:
        request.warnings = warnings


def _key_namespace(info: RequestInfo) -> str:
    return "" if info.resource in CLUSTER_SCOPED else info.namespace


def _dry_run(request: Exchange) -> bool:
    return bool(request.query.getall("dryRun", []))


def _admit_pod(store: ObjectStore, pod: Obj) -> None:
    namespace = pod["metadata"]["namespace"]
    account = pod["spec"]["serviceAccountName"]
    if not store.exists("serviceaccounts", namespace, account):
        name = pod["metadata"].get("name") or pod["metadata"].get("generateName", "")
        raise Forbidden(
            f'pods "{name}" is forbidden: error looking up service account {namespace}/{account}: '
            f'serviceaccount "{account}" not found'
        )


def create(store: ObjectStore, info: RequestInfo, body: Any, request: Exchange) -> tuple[int, Obj]:
    obj = check_body(info.resource, body, info.namespace, None)
    if info.namespace and info.resource != "namespaces":
        namespace = store.peek("namespaces", "", info.namespace)
        if namespace is None:
            raise NotFound("namespaces", info.namespace)
        if namespace["metadata"].get("deletionTimestamp"):
            raise Forbidden(
                f"unable to create new content in namespace {info.namespace} because it is being terminated"
            )
    apply_defaults = defaults.APPLY.get(info.resource)
    if apply_defaults is not None:
        apply_defaults(obj)
    _field_validation(info.resource, obj, request)
    validate_create(info.resource, obj)
    if info.resource == "pods":
        _admit_pod(store, obj)
    if _dry_run(request):
        return 201, obj
    created = store.create(info.resource, obj, adopt=True)
    if info.resource == "namespaces":
        ensure_default_account(store, created["metadata"]["name"])
    return 201, created


def ensure_default_account(store: ObjectStore, namespace: str) -> None:
    """What the ServiceAccount controller does for each namespace."""
    if not store.exists("serviceaccounts", namespace, "default"):
        store.create(
            "serviceaccounts",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": namespace}},
        )


def get(store: ObjectStore, info: RequestInfo, body: Any, request: Exchange) -> tuple[int, Obj]:
    return 200, store.get(info.resource, _key_namespace(info), info.name)


def _with_subresource_rules(info: RequestInfo, current: Obj, new: Obj) -> Obj:
    """On /status only status changes; on the main resource status is kept as stored."""
    if info.subresource == "status":
        result = copy_obj(current)
        result["status"] = new.get("status") or {}
        result["metadata"]["resourceVersion"] = new.get("metadata", {}).get("resourceVersion")
        return result  # type: ignore[no-any-return]
    if info.resource in _WITH_STATUS:
        new["status"] = copy_obj(current.get("status") or {})
    return new


def _store_update(store: ObjectStore, info: RequestInfo, current: Obj, new: Obj, request: Exchange) -> Obj:
    new = _with_subresource_rules(info, current, new)
    _field_validation(info.resource, new, request)
    validate_update(info.resource, current, new)
    if _dry_run(request):
        return new
    return store.update(info.resource, new, adopt=True)


def update(store: ObjectStore, info: RequestInfo, body: Any, request: Exchange) -> tuple[int, Obj]:
    current = store.get(info.resource, _key_namespace(info), info.name)
    obj = check_body(info.resource, body, info.namespace if info.resource not in CLUSTER_SCOPED else "", info.name)
    return 200, _store_update(store, info, current, obj, request)


def patch_(store: ObjectStore, info: RequestInfo, body: Any, request: Exchange) -> tuple[int, Obj]:
    current = store.get(info.resource, _key_namespace(info), info.name)
    patched = patch.apply(request.content_type, copy_obj(current), body)
    if not isinstance(patched, dict):
        raise BadRequest("the patch does not produce an object")
    meta = patched.setdefault("metadata", {})
    if meta.get("name") != info.name or meta.get("uid") != current["metadata"]["uid"]:
        raise BadRequest("a patch may not change metadata.name or metadata.uid")
    patched.setdefault("kind", KINDS[info.resource][0])
    return 200, _store_update(store, info, current, patched, request)


def _delete_options(body: Any, request: Exchange) -> tuple[int | None, Obj]:
    options = body if isinstance(body, dict) else {}
    grace = options.get("gracePeriodSeconds", request.query.get("gracePeriodSeconds"))
    try:
        seconds = None if grace in (None, "") else int(grace)
    except (TypeError, ValueError):
        raise BadRequest(f"gracePeriodSeconds: invalid value {grace!r}") from None
    if seconds is not None and seconds < 0:
        raise BadRequest("gracePeriodSeconds: must be >= 0")
    return seconds, options.get("preconditions") or {}


def _check_preconditions(info: RequestInfo, current: Obj, preconditions: Obj) -> None:
    meta = current["metadata"]
    for field in ("uid", "resourceVersion"):
        wanted = preconditions.get(field)
        if wanted and wanted != meta.get(field):
            raise Conflict(
                info.resource,
                info.name,
                f"Precondition failed: {field.capitalize() if field == 'uid' else field}: {wanted}, "
                f"{'UID' if field == 'uid' else 'ResourceVersion'} in object meta: {meta.get(field)}",
            )


def delete(store: ObjectStore, info: RequestInfo, body: Any, request: Exchange) -> tuple[int, Obj]:
    grace, preconditions = _delete_options(body, request)
    current = store.stored(info.resource, _key_namespace(info), info.name)  # read only
    _check_preconditions(info, current, preconditions)
    if _dry_run(request):
        return 200, current
    if info.resource == "namespaces":
        delete_namespace_contents(store, info.name)
    result = store.delete(info.resource, _key_namespace(info), info.name, grace)
    if info.resource == "pods":
        return 200, result
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": info.name, "group": info.group, "kind": info.resource, "uid": current["metadata"]["uid"]},
    }
    return 200, status


def delete_namespace_contents(store: ObjectStore, namespace: str) -> None:
    """The namespace controller's work, done at once: everything in the namespace goes."""
    for resource in _NAMESPACED_RESOURCES:
        items, _ = store.list(resource, namespace)
        for obj in items:
            meta = obj["metadata"]
            if meta.get("finalizers"):
                store.mutate(resource, namespace, meta["name"], lambda o: o["metadata"].update(finalizers=[]))
            if store.exists(resource, namespace, meta["name"]):
                store.delete(resource, namespace, meta["name"], 0)


def delete_collection(store: ObjectStore, info: RequestInfo, body: Any, request: Exchange) -> tuple[int, Obj]:
    grace, _ = _delete_options(body, request)
    items, rv = store.list(
        info.resource,
        info.namespace or None,
        request.query.get("labelSelector", ""),
        request.query.get("fieldSelector", ""),
    )
    deleted = []
    for obj in items:
        meta = obj["metadata"]
        if not _dry_run(request):
            deleted.append(store.delete(info.resource, meta.get("namespace", ""), meta["name"], grace))
    kind = KINDS[info.resource][0]
    return 200, {"kind": f"{kind}List", "apiVersion": "v1", "metadata": {"resourceVersion": rv}, "items": deleted}


HANDLERS: dict[str, Handler] = {
    "create": create,
    "get": get,
    "update": update,
    "patch": patch_,
    "delete": delete,
    "deletecollection": delete_collection,
}
