"""AKS-style authentication: Entra ID access tokens (JWTs) for the AKS server application.

A token is accepted when its signature verifies with the identity provider's key, its audience is the
AKS server application, its issuer is the tenant's, and it has not expired. The principal (object id)
is mapped to a simulator identity, as AKS Entra-integrated clusters map users and groups.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.sim.auth import Identity
from gateway.sim.cloud.oidc import JwtVerifier

AKS_SERVER_APP_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"
AUDIENCES = (AKS_SERVER_APP_ID, f"spn:{AKS_SERVER_APP_ID}")


class AksTokenVerifier(JwtVerifier):
    def __init__(self, public_key_pem: bytes, issuer: str, users: Mapping[str, Identity]) -> None:
        super().__init__(public_key_pem, issuer, list(AUDIENCES), ["oid"])
        self._users = dict(users)

    def __call__(self, token: str) -> Identity | None:
        claims = self.claims(token)
        if claims is None:
            return None
        identity = self._users.get(str(claims["oid"]))
        if identity is None:
            self.last_rejection = "principal not mapped"
        return identity
