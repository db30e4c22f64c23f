"""OpenAPI v3 documents, which `kubectl apply` (validation) and `kubectl explain` download.

Built once per process from the Kubernetes schemas shipped with `kubernetes-validate` (the same ones the
API server validates against): its JSON-schema `$defs`, with their x-kubernetes-* extensions (group,
version, kind, patch merge keys), become `components.schemas`.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cache
from importlib import resources as importlib_resources
from typing import Any

from gateway.sim.discovery import AUTHN_GROUP, AUTHZ_GROUP, KUBE_VERSION, RBAC_GROUP, RESOURCES, ApiResource
from gateway.sim.validation import SCHEMA_VERSION

_GROUPS = (RBAC_GROUP, AUTHZ_GROUP, AUTHN_GROUP)
GROUP_VERSIONS = ("api/v1", *(f"apis/{g}/v1" for g in _GROUPS))


def _gvk(resource: ApiResource) -> dict[str, str]:
    return {"group": resource.group, "version": "v1", "kind": resource.kind}


def _operation(resource: ApiResource, action: str, ref: str | None) -> dict[str, Any]:
    """One operation, with what kubectl looks for: its group/version/kind and the fieldValidation parameter
    (kubectl then validates on the server instead of downloading the schema itself)."""
    operation: dict[str, Any] = {
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": _gvk(resource),
        "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}}],
        "responses": {"200": {"description": "OK"}},
    }
    if ref:
        content = {"schema": {"$ref": f"#/components/schemas/{ref}"}}
        operation["responses"]["200"]["content"] = {"application/json": content}
    return operation


def _paths(group: str, schemas: dict[str, Any]) -> dict[str, Any]:
    prefix = f"/apis/{group}/v1" if group else "/api/v1"
    paths: dict[str, Any] = {}
    for resource in (r for r in RESOURCES if r.group == group):
        ref = next(
            (name for name, s in schemas.items() if _gvk(resource) in (s.get("x-kubernetes-group-version-kind") or [])),
            None,
        )
        scope = (
            f"{prefix}/namespaces/{{namespace}}/{resource.name}" if resource.namespaced else f"{prefix}/{resource.name}"
        )
        paths[scope] = {"post": _operation(resource, "post", ref)}
        if "get" in resource.verbs:
            paths[scope]["get"] = _operation(resource, "list", ref and f"{ref}List")
            paths[f"{scope}/{{name}}"] = {
                verb: _operation(resource, action, ref)
                for verb, action in (("get", "get"), ("put", "put"), ("patch", "patch"), ("delete", "delete"))
            }
    return paths


@cache
def _schemas() -> dict[str, Any]:
    base = importlib_resources.files("kubernetes_validate").joinpath(f"kubernetes-json-schema/{SCHEMA_VERSION}")
    text = base.joinpath("_definitions.json").read_text()
    schemas: dict[str, Any] = json.loads(re.sub(r'"#/\$defs/', '"#/components/schemas/', text))["$defs"]
    return {name: _openapi3(schema) for name, schema in schemas.items()}


def _openapi3(node: Any) -> Any:
    """JSON-schema type lists (["string", "null"]) as OpenAPI 3.0 has them: one type, `nullable`."""
    if isinstance(node, list):
        return [_openapi3(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _openapi3(v) for k, v in node.items()}
    types = out.get("type")
    if isinstance(types, list):
        concrete = [t for t in types if t != "null"]
        out["type"] = concrete[0] if len(concrete) == 1 else concrete
        if "null" in types:
            out["nullable"] = True
    return out


@cache
def _document(group: str) -> bytes:
    doc = {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBE_VERSION["gitVersion"]},
        "paths": _paths(group, _schemas()),
        "components": {"schemas": _schemas()},
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def _group(path: str) -> str | None:
    if path == "api/v1":
        return ""
    parts = path.split("/")
    return parts[1] if len(parts) == 3 and parts[0] == "apis" and parts[2] == "v1" and parts[1] in _GROUPS else None


def index() -> dict[str, object]:
    """`/openapi/v3`: where each group-version's document is."""
    paths = {}
    for gv in GROUP_VERSIONS:
        digest = hashlib.sha512(_document(_group(gv) or "")).hexdigest()[:64].upper()
        paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest}"}
    return {"paths": paths}


def group_version_document(path: str) -> bytes | None:
    """`/openapi/v3/<group-version>`: its paths and every schema, or None for an unknown group-version."""
    group = _group(path)
    return None if group is None else _document(group)
