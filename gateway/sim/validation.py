"""Validation as kube-apiserver does it: names, required fields, schema, immutable fields (pure).

Bodies are checked against the Kubernetes JSON schemas shipped by `kubernetes-validate`. Its
`validate()` re-reads a 1.7 MB definitions file on every call; we build one jsonschema validator per
kind, once per process, which checks a pod in well under a millisecond. Errors are `Invalid` (422)
with one cause per field, in Kubernetes' wording ("Required value", "Invalid value: ...").
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from functools import cache, lru_cache
from importlib import resources as importlib_resources
from typing import Any

import jsonschema  # type: ignore[import-untyped]
from referencing import Registry, Resource

from gateway.sim import pod_resources
from gateway.sim.errors import BadRequest, Invalid
from gateway.sim.selectors import label_key_ok, label_value_ok

SCHEMA_VERSION = "v1.37.0-local"
KINDS: dict[str, tuple[str, str, str]] = {  # resource -> (kind, apiVersion, schema file stem)
    "pods": ("Pod", "v1", "pod-v1"),
    "nodes": ("Node", "v1", "node-v1"),
    "events": ("Event", "v1", "event-v1"),
    "namespaces": ("Namespace", "v1", "namespace-v1"),
    "serviceaccounts": ("ServiceAccount", "v1", "serviceaccount-v1"),
    "secrets": ("Secret", "v1", "secret-v1"),
    "roles": ("Role", "rbac.authorization.k8s.io/v1", "role-rbac-v1"),
    "rolebindings": ("RoleBinding", "rbac.authorization.k8s.io/v1", "rolebinding-rbac-v1"),
}
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME_RESOURCES = frozenset({"namespaces"})
# Pod spec fields that may change after creation (everything else in spec is immutable).
_MUTABLE_POD_SPEC = ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds", "schedulingGates")
Cause = tuple[str, str, str]


def _schema_dir(strict: bool) -> Any:
    suffix = "-strict" if strict else ""
    return importlib_resources.files("kubernetes_validate").joinpath(f"kubernetes-json-schema/{SCHEMA_VERSION}{suffix}")


@cache
def _definitions(strict: bool = False) -> Registry:
    base = _schema_dir(strict)
    definitions = Resource.from_contents(json.loads(base.joinpath("_definitions.json").read_text()))
    registry: Registry = definitions @ Registry()
    return registry


@cache
def _validator(stem: str, strict: bool = False) -> Any:
    schema = json.loads(_schema_dir(strict).joinpath(f"{stem}.json").read_text())
    registry = Resource.from_contents(schema) @ _definitions(strict)
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def unknown_fields(resource: str, obj: Mapping[str, Any]) -> list[str]:
    """Fields the schema does not know (what `fieldValidation=Strict` rejects and `Warn` reports)."""
    found: list[str] = []
    for error in _validator(KINDS[resource][2], True).iter_errors(obj):
        if error.validator == "additionalProperties":
            known = set(error.schema.get("properties") or {})
            extra = sorted(k for k in error.instance if k not in known) if isinstance(error.instance, dict) else []
            found += [field_path([*error.absolute_path, k]) for k in extra]
    return found


def field_validation(resource: str, obj: Mapping[str, Any], mode: str) -> list[str]:
    """Applies `?fieldValidation=`: Strict raises BadRequest for unknown fields, Warn (the default, as in
    kube-apiserver) returns them as warnings, Ignore returns nothing."""
    if mode == "Ignore":
        return []
    if mode not in ("", "Warn", "Strict"):
        raise BadRequest(f'fieldValidation: Unsupported value: "{mode}": supported values: "Ignore", "Warn", "Strict"')
    loose = _memo_key(obj, resource, loose=True)
    if loose is not None and not _cached_unknown(resource, loose):
        return []  # none with its free-text values left out, so none as it is (see _memo_key)
    key = _memo_key(obj)
    unknown = list(_cached_unknown(resource, key)) if key is not None else unknown_fields(resource, obj)
    if unknown and mode == "Strict":
        raise BadRequest("strict decoding error: " + ", ".join(f'unknown field "{f}"' for f in unknown))
    return [f'unknown field "{f}"' for f in unknown]


def warm_up() -> None:
    """Loads every schema now, so the first request of a run does not pay for it."""
    for _, _, stem in KINDS.values():
        _validator(stem)


def field_path(parts: Iterable[str | int]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _schema_causes(resource: str, obj: Mapping[str, Any]) -> list[Cause]:
    """Schema errors, memoised on the body without its name: pods made from one template (the common case,
    and the 10,000-pod benchmark's) are checked once, not once each (a check costs ~0.8 ms). A body valid
    once its free-text label and annotation values are left out is valid as it is (see _memo_key), so pods
    that differ only there (a request id in a label) share one check too."""
    loose = _memo_key(obj, resource, loose=True)
    if loose is not None and not _cached_causes(resource, loose):
        return []
    key = _memo_key(obj)
    return _schema_causes_of(resource, obj) if key is None else list(_cached_causes(resource, key))


def _memo_key(obj: Mapping[str, Any], resource: str = "", *, loose: bool = False) -> str | None:
    """The body without its name, as canonical JSON: objects from one template share it.

    `loose` also leaves out the string values of metadata's maps whose values the schema constrains by
    type alone (labels, annotations: any key, a string or null; `free_text_maps` reads this from the
    schema). Such an entry can neither fail the schema nor be an unknown field, so the loose body has no
    schema error (no unknown field) exactly when the body has none; the errors themselves, which quote
    values, are only ever taken from the exact key."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in ("name", "generateName")}
    if loose:
        for field in free_text_maps(resource):
            value = meta.get(field)
            if isinstance(value, dict):
                meta[field] = {k: v for k, v in value.items() if not isinstance(v, str)}
    try:
        return json.dumps({**obj, "metadata": meta}, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return None


@cache
def free_text_maps(resource: str) -> tuple[str, ...]:
    """The metadata maps of `resource` that both its schemas (plain and strict) constrain by type alone, an
    object (or null) of any keys whose values are strings (or null): the fields `_memo_key(loose=True)`
    leaves string values out of. Read from the schemas, so a schema that ever constrains them more
    (a pattern, a length) turns this off by itself."""
    found = []
    for field in ("labels", "annotations"):
        shapes = [_metadata_schema(resource, strict).get("properties", {}).get(field) for strict in (False, True)]
        if all(_typed_only(shape, {"object", "null"}, {"type", "additionalProperties"}) for shape in shapes) and all(
            _typed_only(shape["additionalProperties"], {"string", "null"}, {"type"}) for shape in shapes
        ):
            found.append(field)
    return tuple(found)


def _typed_only(schema: Any, types: set[str], keywords: set[str]) -> bool:
    """`schema` has exactly `keywords` (a description aside) and its type is among `types`, string among them."""
    if not isinstance(schema, dict) or set(schema) - {"description"} != keywords:
        return False
    kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    return set(kinds) <= types and bool(set(kinds) & {"object", "string"})


def _metadata_schema(resource: str, strict: bool) -> dict[str, Any]:
    schema = _validator(KINDS[resource][2], strict).schema
    metadata = schema.get("properties", {}).get("metadata") or {}
    if "$ref" not in metadata:
        return dict(metadata)
    resolver = _definitions(strict).resolver(base_uri=schema.get("$id", ""))
    found: dict[str, Any] = resolver.lookup(metadata["$ref"]).contents
    return found


@lru_cache(maxsize=2048)
def _cached_unknown(resource: str, key: str) -> tuple[str, ...]:
    return tuple(unknown_fields(resource, json.loads(key)))


@lru_cache(maxsize=2048)
def _cached_causes(resource: str, key: str) -> tuple[Cause, ...]:
    return tuple(_schema_causes_of(resource, json.loads(key)))


def _schema_causes_of(resource: str, obj: Mapping[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    for error in _validator(KINDS[resource][2]).iter_errors(obj):
        path = list(error.absolute_path)
        if error.validator == "required":
            missing = re.match(r"'([^']+)'", error.message)
            field = field_path([*path, missing.group(1) if missing else "?"])
            causes.append(("FieldValueRequired", field, "Required value"))
        elif error.validator == "type":
            causes.append(("FieldValueTypeInvalid", field_path(path), f"Invalid value: {error.message}"))
        else:
            causes.append(("FieldValueInvalid", field_path(path), f"Invalid value: {error.message}"))
    return causes


def _name_causes(resource: str, meta: Mapping[str, Any]) -> list[Cause]:
    name = meta.get("name") or ""
    if not name:
        if meta.get("generateName"):
            return []
        return [("FieldValueRequired", "metadata.name", "Required value: name or generateName is required")]
    label = resource in _LABEL_NAME_RESOURCES
    pattern, limit = (_DNS1123_LABEL, 63) if label else (_DNS1123_SUBDOMAIN, 253)
    if len(name) > limit or not pattern.match(name):
        kind = "RFC 1123 label" if label else "RFC 1123 subdomain"
        chars = "'-'" if label else "'-' or '.'"
        message = (
            f'Invalid value: "{name}": a lowercase {kind} must consist of lower case alphanumeric characters, '
            f"{chars}, and must start and end with an alphanumeric character (at most {limit} characters)"
        )
        return [("FieldValueInvalid", "metadata.name", message)]
    return []


def _label_causes(meta: Mapping[str, Any]) -> list[Cause]:
    """Label keys are qualified names (optional DNS prefix, name <= 63); values <= 63 of [-A-Za-z0-9_.]."""
    labels = meta.get("labels")
    if not isinstance(labels, dict):
        return []
    causes: list[Cause] = []
    for key, value in labels.items():
        if not label_key_ok(str(key)):
            causes.append(
                (
                    "FieldValueInvalid",
                    "metadata.labels",
                    f'Invalid value: "{key}": name part must consist '
                    "of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
                    "character (at most 63 characters)",
                )
            )
        if isinstance(value, str) and not label_value_ok(value):
            causes.append(
                (
                    "FieldValueInvalid",
                    "metadata.labels",
                    f'Invalid value: "{value}": a valid label must be '
                    "an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and "
                    "end with an alphanumeric character (at most 63 characters)",
                )
            )
    return causes


def _pod_causes(pod: Mapping[str, Any]) -> list[Cause]:
    spec = pod.get("spec") or {}
    causes: list[Cause] = []
    containers = spec.get("containers") or []
    if not containers:
        causes.append(("FieldValueRequired", "spec.containers", "Required value"))
    seen: set[str] = set()
    for group in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(group) or []):
            if not isinstance(container, dict):
                continue
            name = container.get("name") or ""
            where = f"spec.{group}[{i}]"
            if name and not _DNS1123_LABEL.match(name):
                causes.append(
                    ("FieldValueInvalid", f"{where}.name", f'Invalid value: "{name}": must be a DNS-1123 label')
                )
            if name in seen:
                causes.append(("FieldValueDuplicate", f"{where}.name", f'Duplicate value: "{name}"'))
            seen.add(name)
            if not container.get("image"):
                causes.append(("FieldValueRequired", f"{where}.image", "Required value"))
    policy = spec.get("restartPolicy")
    if policy is not None and policy not in ("Always", "OnFailure", "Never"):
        causes.append(
            (
                "FieldValueNotSupported",
                "spec.restartPolicy",
                f'Unsupported value: "{policy}": supported values: "Always", "OnFailure", "Never"',
            )
        )
    return causes


def validate_create(resource: str, obj: Mapping[str, Any]) -> None:
    """Raises Invalid (422) with every cause found; the object must carry kind/apiVersion already."""
    kind = KINDS[resource][0]
    meta = obj.get("metadata") or {}
    causes = _name_causes(resource, meta) + _label_causes(meta) + _schema_causes(resource, obj)
    if resource == "pods":
        causes += _pod_causes(obj) + pod_resources.causes(obj)
    if causes:
        raise Invalid(kind, meta.get("name") or meta.get("generateName") or "", _unique(causes))


def validate_update(resource: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """Create-time rules plus immutability: a pod's spec only changes where Kubernetes allows it."""
    validate_create(resource, new)
    kind, name = KINDS[resource][0], old["metadata"]["name"]
    if resource == "pods":
        old_spec, new_spec = _pod_mutable_view(old.get("spec") or {}), _pod_mutable_view(new.get("spec") or {})
        if old_spec != new_spec:
            raise Invalid(
                kind,
                name,
                [
                    (
                        "FieldValueForbidden",
                        "spec",
                        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, "
                        "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` "
                        "(only additions to existing tolerations), `spec.terminationGracePeriodSeconds`",
                    )
                ],
            )
    if resource == "secrets" and old.get("immutable") and (old.get("data") != new.get("data")):
        raise Invalid(
            kind, name, [("FieldValueForbidden", "data", "Forbidden: field is immutable when `immutable` is set")]
        )


def _pod_mutable_view(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A pod spec with the fields that may change blanked out, to compare what must not."""
    view = {k: v for k, v in spec.items() if k not in _MUTABLE_POD_SPEC}
    for group in ("containers", "initContainers"):
        if group in view:
            view[group] = [{k: v for k, v in c.items() if k != "image"} for c in view[group] if isinstance(c, dict)]
    return view


def check_body(resource: str, body: Any, namespace: str, name: str | None) -> dict[str, Any]:
    """The request body as an object of `resource`, with kind/apiVersion/namespace defaulted; 400 when it
    cannot be one (wrong kind, namespace or name differing from the URL)."""
    kind, api_version, _ = KINDS[resource]
    if not isinstance(body, dict):
        raise BadRequest(f"the body of the request was not a {kind} object")
    if body.get("kind", kind) != kind:
        raise BadRequest(f'the kind of the provided object "{body.get("kind")}" does not match "{kind}"')
    meta = body.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise BadRequest("metadata must be an object")
    body.setdefault("kind", kind)
    body.setdefault("apiVersion", api_version)
    if namespace:
        if meta.get("namespace") and meta["namespace"] != namespace:
            raise BadRequest("the namespace of the provided object does not match the namespace sent on the request")
        meta["namespace"] = namespace
    if name is not None and meta.get("name", name) != name:
        raise BadRequest("the name of the object does not match the name on the URL")
    if name is not None:
        meta["name"] = name
    if resource == "pods" and (undecodable := pod_resources.undecodable(body)):
        raise BadRequest(undecodable)
    return body


def _unique(causes: list[Cause]) -> list[Cause]:
    return list(dict.fromkeys(causes))
