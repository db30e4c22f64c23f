"""An OpenID Connect issuer over TLS with its own CA: discovery, JWKS, and a token endpoint that answers
the `refresh_token` grant with a new RS256 id-token (and, when asked, a rotated refresh token).

It plays Dex or Keycloak for kubeconfigs with `auth-provider: oidc`; the simulated cluster verifies its
id-tokens with `gateway.sim.cloud.oidc.OidcTokenVerifier` and this issuer's public key.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote_plus

import jwt
from aiohttp import BasicAuth, web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.sim.tls import CertificateAuthority, server_context
from tests.standins.http import serve


@dataclass
class _Grant:
    subject: str
    groups: tuple[str, ...]


@dataclass
class OidcIssuer:
    ca: CertificateAuthority
    client_id: str = "kubernetes"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(16), repr=False)
    url: str = ""
    lifetime_seconds: int = 3600
    rotate_refresh_tokens: bool = False  # Keycloak's "revoke refresh token": each one works once
    refreshes: int = 0  # successful refresh_token grants
    refusals: list[str] = field(default_factory=list)  # the OAuth error of each refused request
    _key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    _kid: str = field(default_factory=lambda: secrets.token_hex(8))
    _grants: dict[str, _Grant] = field(default_factory=dict)

    @property
    def ca_pem(self) -> bytes:
        return self.ca.cert_pem

    @property
    def public_key_pem(self) -> bytes:
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def login(
        self, subject: str, groups: tuple[str, ...] = (), *, lifetime: int | None = None, refresh_token: str = ""
    ) -> tuple[str, str]:
        """What `kubectl oidc-login` would leave in a kubeconfig: (id-token, refresh-token)."""
        refresh = refresh_token or secrets.token_urlsafe(24)
        self._grants[refresh] = _Grant(subject, groups)
        return self.id_token(subject, groups, lifetime=lifetime), refresh

    def id_token(self, subject: str, groups: tuple[str, ...] = (), *, lifetime: int | None = None) -> str:
        now = int(time.time())
        claims = {
            "iss": self.url, "sub": subject, "aud": self.client_id, "iat": now,
            "exp": now + (self.lifetime_seconds if lifetime is None else lifetime), "groups": list(groups),
        }  # fmt: skip
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self._kid})

    def _client_ok(self, request: web.Request, form: dict[str, str]) -> bool:
        header = request.headers.get("Authorization", "")
        if header:
            auth = BasicAuth.decode(header)
            client_id, secret = unquote_plus(auth.login), unquote_plus(auth.password)
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        return client_id == self.client_id and secrets.compare_digest(secret, self.client_secret)

    def _refuse(self, error: str, status: int = 400) -> web.Response:
        self.refusals.append(error)
        return web.json_response({"error": error}, status=status)

    async def _token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        if not self._client_ok(request, form):
            return self._refuse("invalid_client", 401)
        if form.get("grant_type") != "refresh_token":
            return self._refuse("unsupported_grant_type")
        grant = self._grants.get(form.get("refresh_token", ""))
        if grant is None:
            return self._refuse("invalid_grant")
        answer = {"token_type": "Bearer", "expires_in": self.lifetime_seconds, "access_token": secrets.token_hex(8)}
        answer["id_token"] = self.id_token(grant.subject, grant.groups)
        if self.rotate_refresh_tokens:
            del self._grants[form["refresh_token"]]
            answer["refresh_token"] = secrets.token_urlsafe(24)
            self._grants[answer["refresh_token"]] = grant
        self.refreshes += 1
        return web.json_response(answer)

    async def _discovery(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": self.url, "token_endpoint": f"{self.url}/token", "jwks_uri": f"{self.url}/keys",
                "authorization_endpoint": f"{self.url}/auth", "id_token_signing_alg_values_supported": ["RS256"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
            }
        )  # fmt: skip

    async def _keys(self, request: web.Request) -> web.Response:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        return web.json_response({"keys": [{**jwk, "kid": self._kid, "use": "sig", "alg": "RS256"}]})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/keys", self._keys)
        app.router.add_post("/token", self._token)
        return app


@asynccontextmanager
async def oidc_issuer(directory: Path, *, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> AsyncIterator[OidcIssuer]:
    ca = CertificateAuthority("oidc-standin-ca")
    (directory / "oidc-ca.pem").write_bytes(ca.cert_pem)
    issuer = OidcIssuer(ca=ca)
    async with serve(issuer.app(), server_context(ca, ca.issue_server(hosts))) as url:
        issuer.url = url
        yield issuer
