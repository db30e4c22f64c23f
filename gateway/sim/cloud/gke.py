"""GKE-style authentication: Google OAuth access tokens, checked with the identity provider.

GKE asks Google whose an access token is; the simulator asks the same question of whatever `owner_of`
answers it (the Google stand-in's token registry), then maps the service account to an identity.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from gateway.sim.auth import Identity

OwnerLookup = Callable[[str], str | None]


class GkeTokenVerifier:
    def __init__(self, owner_of: OwnerLookup, users: Mapping[str, Identity]) -> None:
        self._owner_of = owner_of
        self._users = dict(users)

    def __call__(self, token: str) -> Identity | None:
        if token.count(".") == 2:  # a JWT: not a Google access token
            return None
        email = self._owner_of(token)
        return self._users.get(email) if email else None
