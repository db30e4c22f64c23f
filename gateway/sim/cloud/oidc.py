"""OIDC authentication, as kube-apiserver's `--oidc-*` flags configure it: id-tokens from one issuer.

A token is accepted when its RS256 signature verifies with the issuer's key, `iss` is the issuer,
`aud` holds the client id (`--oidc-client-id`) and it has not expired (real time, no leeway, as the
API server checks it). The user is the username claim (`--oidc-username-claim`, default `sub`, with
the issuer URL as prefix when the claim is not `email`, as Kubernetes does), the groups the groups
claim (`--oidc-groups-claim`).
"""

from __future__ import annotations

from typing import Any

import jwt

from gateway.sim.auth import Identity


class JwtVerifier:
    """The shared half of JWT-based verifiers: RS256 signature, issuer, audience and expiry."""

    def __init__(self, public_key_pem: bytes, issuer: str, audience: list[str], require: list[str]) -> None:
        self._key = public_key_pem
        self._issuer = issuer
        self._audience = audience
        self._require = ["exp", "aud", "iss", *require]
        self.last_rejection = ""

    def claims(self, token: str) -> dict[str, Any] | None:
        if token.count(".") != 2:
            return None
        try:
            return jwt.decode(
                token, self._key, algorithms=["RS256"], audience=self._audience, issuer=self._issuer,
                options={"require": self._require},
            )  # fmt: skip
        except jwt.PyJWTError as exc:
            self.last_rejection = type(exc).__name__
            return None


class OidcTokenVerifier(JwtVerifier):
    def __init__(
        self, public_key_pem: bytes, issuer: str, client_id: str, *, username_claim: str = "sub",
        groups_claim: str = "groups",
    ) -> None:  # fmt: skip
        super().__init__(public_key_pem, issuer, [client_id], [username_claim])
        self._username_claim = username_claim
        self._groups_claim = groups_claim
        self.accepted = 0

    def __call__(self, token: str) -> Identity | None:
        claims = self.claims(token)
        if claims is None:
            return None
        name = str(claims[self._username_claim])
        user = name if self._username_claim == "email" else f"{self._issuer}#{name}"
        groups = claims.get(self._groups_claim) or []
        self.accepted += 1
        return Identity(user, (*(str(g) for g in groups), "system:authenticated"))
