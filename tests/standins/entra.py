"""Entra ID stand-in over TLS with its own CA: OpenID configuration, token endpoint (client credentials
with a client secret or a client assertion), JWKS, and ARM's listClusterUserCredential.

Access tokens are RS256 JWTs for the requested resource (`<resource>/.default`), as Entra issues them;
the simulated AKS cluster verifies them with this stand-in's public key.
"""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import jwt
import yaml
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.sim.tls import CertificateAuthority, server_context
from tests.standins.http import bearer, serve

TENANT = "0c6a4b7e-2f7f-4d0b-9d65-5b1f7e8f0a11"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class _App:
    object_id: str
    secret: str = field(default="", repr=False)
    assertion: str = field(default="", repr=False)


@dataclass
class EntraStandin:
    ca: CertificateAuthority
    ca_file: Path
    url: str = ""
    lifetime_seconds: int = 3600
    token_requests: int = 0
    arm_requests: int = 0
    _key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    _kid: str = field(default_factory=lambda: secrets.token_hex(8))
    _apps: dict[str, _App] = field(default_factory=dict)
    _clusters: dict[str, bytes] = field(default_factory=dict)
    _identities: dict[str, _App] = field(default_factory=dict)
    identity_header: str = field(default_factory=lambda: secrets.token_urlsafe(16), repr=False)

    @property
    def issuer(self) -> str:
        return f"https://sts.windows.net/{TENANT}/"

    @property
    def public_key_pem(self) -> bytes:
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def add_secret_app(self, client_id: str, secret: str) -> str:
        """Registers a confidential client; returns its object id (what AKS RBAC binds)."""
        app = _App(object_id=str(uuid.uuid4()), secret=secret)
        self._apps[client_id] = app
        return app.object_id

    def add_federated_app(self, client_id: str, assertion: str) -> str:
        """A workload-identity client whose federated (projected ServiceAccount) token is `assertion`."""
        app = _App(object_id=str(uuid.uuid4()), assertion=assertion)
        self._apps[client_id] = app
        return app.object_id

    def add_cluster(self, subscription: str, group: str, name: str, *, server: str, ca_pem: bytes) -> None:
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": name,
                    "cluster": {"server": server, "certificate-authority-data": base64.b64encode(ca_pem).decode()},
                }
            ],
            "contexts": [{"name": name, "context": {"cluster": name, "user": "clusterUser"}}],
            "current-context": name,
            "users": [
                {
                    "name": "clusterUser",
                    "user": {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "kubelogin"}},
                }
            ],
        }
        path = f"/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.ContainerService/managedClusters/{name}"
        self._clusters[path] = yaml.safe_dump(kubeconfig).encode()

    def add_managed_identity(self, client_id: str) -> str:
        """A user-assigned managed identity, reachable through the App Service identity endpoint."""
        app = _App(object_id=str(uuid.uuid4()))
        self._identities[client_id] = app
        return app.object_id

    def _authenticate(self, client_id: str, form: dict[str, str]) -> _App | None:
        app = self._apps.get(client_id)
        if app is None:
            return None
        if app.secret and secrets.compare_digest(form.get("client_secret", ""), app.secret):
            return app
        if app.assertion and form.get("client_assertion_type") == ASSERTION_TYPE:
            return app if secrets.compare_digest(form.get("client_assertion", ""), app.assertion) else None
        return None

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = {k: str(v) for k, v in (await request.post()).items()}
        if request.match_info["tenant"] != TENANT or form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "invalid_request"}, status=400)
        client_id = form.get("client_id", "")
        app = self._authenticate(client_id, form)
        if app is None:
            return web.json_response({"error": "invalid_client", "error_description": "AADSTS7000215"}, status=401)
        scope = form.get("scope", "")
        if not scope.endswith("/.default"):
            return web.json_response({"error": "invalid_scope"}, status=400)
        token = self._access_token(scope.removesuffix("/.default"), client_id, app)
        return web.json_response(
            {
                "token_type": "Bearer",
                "expires_in": self.lifetime_seconds,
                "ext_expires_in": self.lifetime_seconds,
                "access_token": token,
            }
        )

    def _access_token(self, audience: str, client_id: str, app: _App) -> str:
        now = int(time.time())
        claims = {
            "aud": audience,
            "iss": self.issuer,
            "iat": now,
            "nbf": now,
            "exp": now + self.lifetime_seconds,
            "appid": client_id,
            "oid": app.object_id,
            "sub": app.object_id,
            "tid": TENANT,
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self._kid})

    async def _managed_identity_token(self, request: web.Request) -> web.Response:
        """The App Service identity endpoint (api-version 2019-08-01), as IDENTITY_ENDPOINT points to it."""
        self.token_requests += 1
        if not secrets.compare_digest(request.headers.get("X-IDENTITY-HEADER", ""), self.identity_header):
            return web.json_response({"error": "unauthorized"}, status=401)
        client_id = request.query.get("client_id", "")
        app = self._identities.get(client_id)
        if app is None or request.query.get("api-version") != "2019-08-01":
            return web.json_response({"error": "invalid_request"}, status=400)
        resource = request.query.get("resource", "")
        token = self._access_token(resource, client_id, app)
        expires_on = int(time.time()) + self.lifetime_seconds
        return web.json_response(
            {"access_token": token, "expires_on": str(expires_on), "resource": resource, "token_type": "Bearer"}
        )

    async def _openid_configuration(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        return web.json_response(
            {
                "issuer": f"{self.url}/{tenant}/v2.0",
                "token_endpoint": f"{self.url}/{tenant}/oauth2/v2.0/token",
                "authorization_endpoint": f"{self.url}/{tenant}/oauth2/v2.0/authorize",
                "jwks_uri": f"{self.url}/{tenant}/discovery/v2.0/keys",
                "tenant_region_scope": "EU",
            }
        )

    async def _list_cluster_user_credential(self, request: web.Request) -> web.Response:
        self.arm_requests += 1
        try:
            jwt.decode(
                bearer(request), self.public_key_pem, algorithms=["RS256"], audience=self.url, issuer=self.issuer
            )
        except jwt.PyJWTError:
            return web.json_response({"error": {"code": "InvalidAuthenticationToken"}}, status=401)
        kubeconfig = self._clusters.get(request.path.removesuffix("/listClusterUserCredential"))
        if kubeconfig is None:
            return web.json_response({"error": {"code": "ResourceNotFound"}}, status=404)
        return web.json_response(
            {"kubeconfigs": [{"name": "clusterUser", "value": base64.b64encode(kubeconfig).decode()}]}
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self._openid_configuration)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        app.router.add_get("/msi/token", self._managed_identity_token)
        app.router.add_post("/subscriptions/{tail:.+}/listClusterUserCredential", self._list_cluster_user_credential)
        return app


@asynccontextmanager
async def entra_standin(directory: Path) -> AsyncIterator[EntraStandin]:
    ca = CertificateAuthority("entra-standin-ca")
    ca_file = directory / "entra-ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    standin = EntraStandin(ca=ca, ca_file=ca_file)
    async with serve(standin.app(), server_context(ca, ca.issue_server())) as url:
        standin.url = url
        yield standin
