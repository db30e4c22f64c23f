"""AKS-style authentication: Entra ID access tokens (JWTs) for the AKS server application.

A token is accepted when its signature verifies with the identity provider's key, its audience is the
AKS server application, its issuer is the tenant's, and it has not expired. The principal (object id)
is mapped to a simulator identity, as AKS Entra-integrated clusters map users and groups.
"""

from __future__ import annotations

from collections.abc import Mapping

import jwt

from gateway.sim.auth import Identity

AKS_SERVER_APP_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"
AUDIENCES = (AKS_SERVER_APP_ID, f"spn:{AKS_SERVER_APP_ID}")


class AksTokenVerifier:
    def __init__(self, public_key_pem: bytes, issuer: str, users: Mapping[str, Identity]) -> None:
        self._key = public_key_pem
        self._issuer = issuer
        self._users = dict(users)
        self.last_rejection = ""

    def __call__(self, token: str) -> Identity | None:
        if token.count(".") != 2:
            return None
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=["RS256"],
                audience=list(AUDIENCES),
                issuer=self._issuer,
                options={"require": ["exp", "aud", "iss", "oid"]},
            )
        except jwt.PyJWTError as exc:
            self.last_rejection = type(exc).__name__
            return None
        identity = self._users.get(str(claims["oid"]))
        if identity is None:
            self.last_rejection = "principal not mapped"
        return identity
