"""Authentication of one simulated cluster: who is calling, from a bearer token or a client certificate.

Tokens are tried in order: static tokens from the config, ServiceAccount tokens minted by TokenRequest
(signed JWTs with real expiry, bound to an object whose deletion revokes them), then pluggable
verifiers added at run time (`add_verifier(fn)`, fn(token) -> Identity | None) for EKS/GKE/AKS-style
tokens. No token and no client certificate is anonymous, which RBAC then refuses like Kubernetes does.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

from gateway.sim.errors import Unauthorized
from gateway.sim.store import ObjectStore

ISSUER = "https://kubernetes.default.svc.cluster.local"
DEFAULT_AUDIENCE = "https://kubernetes.default.svc.cluster.local"
ANONYMOUS = "system:anonymous"


@dataclass(frozen=True)
class Identity:
    user: str
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    uid: str = ""

    @property
    def service_account(self) -> tuple[str, str] | None:
        """(namespace, name) when this is a ServiceAccount."""
        parts = self.user.split(":")
        if len(parts) == 4 and parts[:2] == ["system", "serviceaccount"]:
            return parts[2], parts[3]
        return None

    @property
    def anonymous(self) -> bool:
        return self.user == ANONYMOUS


def service_account_identity(namespace: str, name: str) -> Identity:
    return Identity(
        f"system:serviceaccount:{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
    )


Verifier = Callable[[str], Identity | None]


class SimClock:
    """The cluster's "now" for token expiry: real time plus an offset that tests advance."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class Authenticator:
    def __init__(
        self, store: ObjectStore, static_tokens: Mapping[str, Identity], clock: SimClock | None = None
    ) -> None:
        self._store = store
        self._static = dict(static_tokens)
        self.clock = clock or SimClock()
        self._signing_key = secrets.token_bytes(32)
        self._verifiers: list[Verifier] = []

    def add_verifier(self, verifier: Verifier) -> None:
        self._verifiers.append(verifier)

    def add_static_token(self, token: str, identity: Identity) -> None:
        self._static[token] = identity

    def authenticate(self, authorization: str | None, cert_identity: tuple[str, tuple[str, ...]] | None) -> Identity:
        """The caller, or Unauthorized for a token nobody recognises (Kubernetes answers 401 then)."""
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized()
            return self.verify_token(token.strip())
        if cert_identity is not None:
            user, groups = cert_identity
            return Identity(user, (*groups, "system:authenticated"))
        return Identity(ANONYMOUS, ("system:unauthenticated",))

    def verify_token(self, token: str) -> Identity:
        identity = self._static.get(token)
        if identity is not None:
            return identity
        if token.count(".") == 2:
            found = self._service_account(token)
            if found is not None:
                return found
        for verifier in self._verifiers:
            found = verifier(token)
            if found is not None:
                return found
        raise Unauthorized()

    def mint(
        self,
        namespace: str,
        account: Mapping[str, Any],
        *,
        seconds: int,
        audiences: list[str],
        bound: Mapping[str, Any],
    ) -> tuple[str, int]:
        """A signed ServiceAccount token, bound to `bound` (a Secret or Pod object); returns (token, exp)."""
        now = int(self.clock.now())
        exp = now + seconds
        meta, bound_meta = account["metadata"], bound["metadata"]
        claims = {
            "iss": ISSUER,
            "sub": f"system:serviceaccount:{namespace}:{meta['name']}",
            "aud": audiences or [DEFAULT_AUDIENCE],
            "iat": now,
            "nbf": now,
            "exp": exp,
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {"name": meta["name"], "uid": meta["uid"]},
                bound.get("kind", "Secret").lower(): {"name": bound_meta["name"], "uid": bound_meta["uid"]},
            },
        }
        return jwt.encode(claims, self._signing_key, algorithm="HS256"), exp

    def _service_account(self, token: str) -> Identity | None:
        try:
            # Times are checked against the cluster's own clock below, which tests can advance.
            claims = jwt.decode(
                token, self._signing_key, algorithms=["HS256"], issuer=ISSUER,
                options={"verify_aud": False, "verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )  # fmt: skip
        except jwt.PyJWTError:
            return None
        if not claims.get("nbf", 0) <= self.clock.now() < claims.get("exp", 0):
            return None
        k8s = claims.get("kubernetes.io", {})
        namespace = k8s.get("namespace", "")
        account = k8s.get("serviceaccount", {})
        if not self._alive("serviceaccounts", namespace, account):
            return None
        for kind, resource in (("secret", "secrets"), ("pod", "pods")):
            if kind in k8s and not self._alive(resource, namespace, k8s[kind]):
                return None
        return service_account_identity(namespace, account.get("name", ""))

    def _alive(self, resource: str, namespace: str, ref: Mapping[str, Any]) -> bool:
        """The object a token is bound to still exists with the same uid (deleting it revokes the token)."""
        obj = self._store.peek(resource, namespace, ref.get("name", ""))
        if obj is None:
            return False
        return bool(obj["metadata"].get("uid") == ref.get("uid") and not obj["metadata"].get("deletionTimestamp"))
