"""Impersonation (`Impersonate-*` headers), judged as kube-apiserver's impersonation filter judges it.

The authenticated identity needs the `impersonate` verb on each thing it asks for: `users` (or the
`serviceaccounts` object for a ServiceAccount user), each of `groups`, `uids` and `userextras/<key>`
(the last two in API group authentication.k8s.io). The request then runs as the impersonated identity:
RBAC judges it, the request log records it, and SelfSubjectReview reports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from gateway.sim.auth import Identity, service_account_identity
from gateway.sim.errors import BadRequest, Forbidden
from gateway.sim.rbac import Attributes, Authorizer, forbidden_message

AUTHN_GROUP = "authentication.k8s.io"
_EXTRA = "impersonate-extra-"


def requested_extra(headers: Any) -> dict[str, tuple[str, ...]]:
    extra: dict[str, list[str]] = {}
    for name, value in headers.items():
        if name.lower().startswith(_EXTRA):
            extra.setdefault(unquote(name[len(_EXTRA) :]).lower(), []).append(value)
    return {k: tuple(v) for k, v in extra.items()}


def _requests(user: str, uid: str, groups: tuple[str, ...], extra: Mapping[str, tuple[str, ...]]) -> list[Attributes]:
    """What the caller must be allowed to impersonate, one authorization question each."""
    parts = user.split(":")
    if len(parts) == 4 and parts[:2] == ["system", "serviceaccount"]:
        asked = [Attributes("impersonate", "serviceaccounts", namespace=parts[2], name=parts[3])]
    else:
        asked = [Attributes("impersonate", "users", name=user)]
    asked += [Attributes("impersonate", "groups", name=group) for group in groups]
    asked += [Attributes("impersonate", "uids", name=uid, group=AUTHN_GROUP)] if uid else []
    for key, values in extra.items():
        asked += [Attributes("impersonate", "userextras", name=v, subresource=key, group=AUTHN_GROUP) for v in values]
    return asked


def impersonate(identity: Identity, headers: Any, authz: Authorizer) -> Identity:
    """`identity`, or whom its Impersonate-* headers name (403 when it may not, 400 when malformed)."""
    user = headers.get("Impersonate-User", "")
    uid = headers.get("Impersonate-Uid", "")
    groups = tuple(headers.getall("Impersonate-Group", ()))
    extra = requested_extra(headers)
    if not user:
        if uid or groups or extra:
            raise BadRequest("requested impersonation of groups, uid or extra without impersonating a user")
        return identity
    for attrs in _requests(user, uid, groups, extra):
        if not authz.allowed(identity, attrs):
            raise Forbidden(forbidden_message(identity, attrs))
    account = service_account_identity(*user.split(":")[2:4]) if user.startswith("system:serviceaccount:") else None
    if account is not None and not groups:
        groups = account.groups
    elif user != "system:anonymous":
        groups = (*groups, "system:authenticated")
    return Identity(user, groups, extra, uid)
