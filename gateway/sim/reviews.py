"""Requests that are answered, not stored: TokenRequest, SelfSubjectAccessReview, SelfSubjectReview."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from gateway.sim.auth import Authenticator, Identity
from gateway.sim.discovery import AUTHN_GROUP, AUTHZ_GROUP
from gateway.sim.errors import BadRequest, Invalid
from gateway.sim.rbac import Attributes, Authorizer
from gateway.sim.store import ObjectStore

Obj = dict[str, Any]
MIN_TOKEN_SECONDS = 600
DEFAULT_TOKEN_SECONDS = 3600


def _bound_object(store: ObjectStore, namespace: str, account: Obj, ref: Obj | None) -> Obj:
    """The object a token dies with: the one named in boundObjectRef, else a new Secret made for it."""
    if ref:
        kind = ref.get("kind")
        if kind not in ("Secret", "Pod"):
            raise Invalid(
                "TokenRequest",
                account["metadata"]["name"],
                [("FieldValueNotSupported", "spec.boundObjectRef.kind", f'Unsupported value: "{kind}"')],
            )
        obj = store.get("secrets" if kind == "Secret" else "pods", namespace, ref.get("name", ""))
        if ref.get("uid") and ref["uid"] != obj["metadata"]["uid"]:
            raise Invalid(
                "TokenRequest",
                account["metadata"]["name"],
                [("FieldValueInvalid", "spec.boundObjectRef.uid", "Invalid value: the uid does not match")],
            )
        return obj
    name = account["metadata"]["name"]
    return store.create(
        "secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/service-account-token",
            "metadata": {
                "name": f"{name}-token-{secrets.token_hex(3)}",
                "namespace": namespace,
                "annotations": {
                    "kubernetes.io/service-account.name": name,
                    "kubernetes.io/service-account.uid": account["metadata"]["uid"],
                },
            },
        },
    )


def token_request(
    store: ObjectStore, authn: Authenticator, namespace: str, account_name: str, body: Obj, *, min_seconds: int
) -> Obj:
    account = store.get("serviceaccounts", namespace, account_name)
    spec = body.get("spec") or {}
    seconds = int(spec.get("expirationSeconds") or DEFAULT_TOKEN_SECONDS)
    if seconds < min_seconds:
        raise Invalid(
            "TokenRequest",
            account_name,
            [
                (
                    "FieldValueInvalid",
                    "spec.expirationSeconds",
                    f"Invalid value: {seconds}: may not specify a duration less than {min_seconds} seconds",
                )
            ],
        )
    bound = _bound_object(store, namespace, account, spec.get("boundObjectRef"))
    audiences = list(spec.get("audiences") or [])
    token, exp = authn.mint(namespace, account, seconds=seconds, audiences=audiences, bound=bound)
    bound_ref = {
        "kind": bound.get("kind", "Secret"),
        "apiVersion": "v1",
        "name": bound["metadata"]["name"],
        "uid": bound["metadata"]["uid"],
    }
    return {
        "kind": "TokenRequest",
        "apiVersion": f"{AUTHN_GROUP}/v1",
        "metadata": {
            "name": account_name,
            "namespace": namespace,
            "creationTimestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "spec": {"audiences": audiences, "expirationSeconds": seconds, "boundObjectRef": bound_ref},
        "status": {
            "token": token,
            "expirationTimestamp": datetime.fromtimestamp(exp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    }


def self_subject_access_review(authz: Authorizer, identity: Identity, body: Obj) -> Obj:
    spec = body.get("spec") or {}
    attrs_in = spec.get("resourceAttributes")
    if not isinstance(attrs_in, dict):
        if spec.get("nonResourceAttributes"):
            allowed, reason = not identity.anonymous, "non-resource URLs are open to authenticated users"
        else:
            raise BadRequest("SelfSubjectAccessReview needs spec.resourceAttributes or spec.nonResourceAttributes")
    else:
        attrs = Attributes(
            verb=attrs_in.get("verb", ""),
            resource=attrs_in.get("resource", ""),
            namespace=attrs_in.get("namespace", ""),
            name=attrs_in.get("name", ""),
            subresource=attrs_in.get("subresource", ""),
            group=attrs_in.get("group", ""),
        )
        allowed = authz.allowed(identity, attrs)
        reason = "allowed by the simulator's RBAC" if allowed else ""
    status: Obj = {"allowed": allowed}
    if reason:
        status["reason"] = reason
    return {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": f"{AUTHZ_GROUP}/v1",
        "metadata": {},
        "spec": spec,
        "status": status,
    }


def self_subject_rules_review(authz: Authorizer, identity: Identity, body: Obj) -> Obj:
    """What `kubectl auth can-i --list` shows: the rules that apply to the caller in a namespace."""
    spec = body.get("spec") or {}
    namespace = spec.get("namespace") or ""
    return {
        "kind": "SelfSubjectRulesReview",
        "apiVersion": f"{AUTHZ_GROUP}/v1",
        "metadata": {},
        "spec": spec,
        "status": {
            "resourceRules": authz.rules_for(identity, namespace),
            "nonResourceRules": [
                {"verbs": ["get"], "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/version"]}
            ],
            "incomplete": False,
        },
    }


def self_subject_review(identity: Identity) -> Obj:
    """What `kubectl auth whoami` shows."""
    user: Obj = {"username": identity.user, "groups": list(identity.groups)}
    if identity.uid:
        user["uid"] = identity.uid
    if identity.extra or identity.service_account:
        user["extra"] = {k: list(v) for k, v in identity.extra.items()}
    return {
        "kind": "SelfSubjectReview",
        "apiVersion": f"{AUTHN_GROUP}/v1",
        "metadata": {},
        "status": {"userInfo": user},
    }
