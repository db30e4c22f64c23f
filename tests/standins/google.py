"""Google stand-in: an OAuth token endpoint, Security Token Service, IAM Credentials generateAccessToken,
and the container API.

The token endpoint checks the JWT-bearer assertion as Google does: signed (RS256) by the key of a
service account it knows, addressed to this token URI, not expired; and refresh tokens of authorized
users it knows. STS (`/v1/token`) exchanges the subject tokens of workload identity federation: tokens
the test declared trusted (file, URL and executable sources) and AWS-signed GetCallerIdentity requests
(SigV4 checked with the secret of an access key the test declared). It issues opaque access tokens
with a configurable lifetime and keeps a registry (`token_owner`) that the simulated GKE cluster
consults, the way GKE asks Google who a token belongs to.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote

import jwt
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.standins.http import bearer, serve

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
AWS_SUBJECT = "urn:ietf:params:aws:token-type:aws4_request"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # what google-auth puts in `aud`, whatever token_uri is


@dataclass
class _Issued:
    email: str
    expires_at: float


@dataclass
class GoogleStandin:
    url: str = ""
    lifetime_seconds: int = 3600
    token_requests: int = 0
    impersonation_requests: int = 0
    cluster_requests: int = 0
    _public_keys: dict[str, bytes] = field(default_factory=dict)
    _may_impersonate: dict[str, set[str]] = field(default_factory=dict)
    _tokens: dict[str, _Issued] = field(default_factory=dict)
    _clusters: dict[str, dict[str, object]] = field(default_factory=dict)
    _subject_tokens: dict[str, str] = field(default_factory=dict)  # federated subject token -> principal
    _aws_keys: dict[str, tuple[str, str]] = field(default_factory=dict)  # access key id -> (secret, principal)
    _refresh_tokens: dict[str, str] = field(default_factory=dict)  # refresh token -> user
    sts_requests: int = 0

    @property
    def sts_url(self) -> str:
        return f"{self.url}/v1/token"

    def impersonation_url(self, target: str) -> str:
        return f"{self.url}/v1/projects/-/serviceAccounts/{target}:generateAccessToken"

    def trust_subject_token(self, token: str, principal: str) -> None:
        """STS exchanges `token` (an OIDC id-token or SAML assertion of a trusted provider) for `principal`."""
        self._subject_tokens[token] = principal

    def trust_aws_key(self, access_key_id: str, secret: str, principal: str) -> None:
        """STS accepts GetCallerIdentity requests signed with this AWS key, as `principal`."""
        self._aws_keys[access_key_id] = (secret, principal)

    def new_authorized_user(self, user: str) -> dict[str, str]:
        """The `authorized_user` document `gcloud auth application-default login` writes, for `user`."""
        refresh = "1//standin-" + secrets.token_urlsafe(16)
        self._refresh_tokens[refresh] = user
        return {"type": "authorized_user", "client_id": "standin.apps.googleusercontent.com",
                "client_secret": "standin-secret", "refresh_token": refresh, "token_uri": self.token_uri}  # fmt: skip

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def new_service_account(self, email: str, key_file: Path, *, private_key_marker: str = "") -> Path:
        """A service-account key file whose token_uri is this stand-in; returns its path."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        self._public_keys[email] = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        document = {
            "type": "service_account",
            "project_id": "podgate-test",
            "private_key_id": secrets.token_hex(20) + private_key_marker,
            "private_key": pem.decode(),
            "client_email": email,
            "client_id": "1234567890",
            "token_uri": self.token_uri,
        }
        key_file.write_text(json.dumps(document))
        return key_file

    def allow_impersonation(self, caller: str, target: str) -> None:
        self._may_impersonate.setdefault(caller, set()).add(target)
        self._public_keys.setdefault(target, b"")

    def add_cluster(self, project: str, location: str, name: str, *, server: str, ca_pem: bytes) -> None:
        host = server.removeprefix("https://")
        self._clusters[f"projects/{project}/locations/{location}/clusters/{name}"] = {
            "name": name,
            "endpoint": host,
            "status": "RUNNING",
            "masterAuth": {"clusterCaCertificate": base64.b64encode(ca_pem).decode()},
        }

    def revoke_all(self) -> None:
        """Every access token issued so far stops working (as when a key is disabled and re-enabled)."""
        self._tokens.clear()

    def token_owner(self, token: str) -> str | None:
        """The service account an unexpired access token was issued to."""
        issued = self._tokens.get(token)
        return issued.email if issued and issued.expires_at > time.time() else None

    def _issue(self, email: str) -> tuple[str, float]:
        token = "ya29.standin-" + secrets.token_urlsafe(24)
        expires_at = time.time() + self.lifetime_seconds
        self._tokens[token] = _Issued(email, expires_at)
        return token, expires_at

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = await request.post()
        if form.get("grant_type") == "refresh_token":
            user = self._refresh_tokens.get(str(form.get("refresh_token", "")))
            if user is None:
                return web.json_response({"error": "invalid_grant"}, status=400)
            token, _ = self._issue(user)
            return web.json_response({"access_token": token, "expires_in": self.lifetime_seconds,
                                      "token_type": "Bearer", "scope": str(form.get("scope", ""))})  # fmt: skip
        if form.get("grant_type") != JWT_BEARER:
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        assertion = str(form.get("assertion", ""))
        try:
            email = jwt.decode(assertion, options={"verify_signature": False}).get("iss", "")
            public_key = self._public_keys.get(email)
            if not public_key:
                raise jwt.InvalidTokenError("unknown service account")
            jwt.decode(
                assertion,
                public_key,
                algorithms=["RS256"],
                audience=[GOOGLE_TOKEN_AUDIENCE, self.token_uri],
                issuer=email,
            )
        except jwt.PyJWTError as exc:
            return web.json_response({"error": "invalid_grant", "error_description": str(exc)}, status=400)
        token, _ = self._issue(email)
        return web.json_response({"access_token": token, "expires_in": self.lifetime_seconds, "token_type": "Bearer"})

    async def _sts_token(self, request: web.Request) -> web.Response:
        self.sts_requests += 1
        form = await request.post()
        if form.get("grant_type") != TOKEN_EXCHANGE or not form.get("audience"):
            return web.json_response({"error": "invalid_request"}, status=400)
        subject = str(form.get("subject_token", ""))
        if form.get("subject_token_type") == AWS_SUBJECT:
            principal = self._aws_principal(subject, str(form["audience"]))
        else:
            principal = self._subject_tokens.get(subject)
        if principal is None:
            return web.json_response({"error": "invalid_grant", "error_description": "subject token rejected"}, status=400)
        token, _ = self._issue(principal)
        return web.json_response({"access_token": token, "issued_token_type":
                                  "urn:ietf:params:oauth:token-type:access_token", "token_type": "Bearer",
                                  "expires_in": self.lifetime_seconds})  # fmt: skip

    def _aws_principal(self, subject: str, audience: str) -> str | None:
        """The principal of a serialized, SigV4-signed GetCallerIdentity request, if its signature holds."""
        try:
            signed = json.loads(unquote(subject))
            headers = {h["key"].lower(): h["value"] for h in signed["headers"]}
            fields = dict(part.strip().split("=", 1) for part in headers["authorization"].split(" ", 1)[1].split(","))
            key_id, _, scope = fields["Credential"].partition("/")
            region = scope.split("/")[1]
        except (ValueError, KeyError, IndexError, TypeError):
            return None
        known = self._aws_keys.get(key_id)
        if known is None or headers.get("x-goog-cloud-target-resource") != audience:
            return None
        names = fields["SignedHeaders"].split(";")
        aws = AWSRequest(method=signed["method"], url=signed["url"], headers={n: headers[n] for n in names}, data="")
        aws.context["timestamp"] = headers["x-amz-date"]
        signer = SigV4Auth(Credentials(key_id, known[0], headers.get("x-amz-security-token")), "sts", region)
        expected = signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws)
        return known[1] if hmac.compare_digest(expected, fields["Signature"]) else None

    async def _generate_access_token(self, request: web.Request) -> web.Response:
        self.impersonation_requests += 1
        caller = self.token_owner(bearer(request))
        target = request.match_info["account"]
        if caller is None:
            return web.json_response({"error": {"code": 401, "status": "UNAUTHENTICATED"}}, status=401)
        if target not in self._may_impersonate.get(caller, set()):
            return web.json_response({"error": {"code": 403, "status": "PERMISSION_DENIED"}}, status=403)
        token, expires_at = self._issue(target)
        expire_time = datetime.fromtimestamp(expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return web.json_response({"accessToken": token, "expireTime": expire_time})

    async def _get_cluster(self, request: web.Request) -> web.Response:
        self.cluster_requests += 1
        if self.token_owner(bearer(request)) is None:
            return web.json_response({"error": {"code": 401, "status": "UNAUTHENTICATED"}}, status=401)
        cluster = self._clusters.get(request.match_info["resource"])
        if cluster is None:
            return web.json_response({"error": {"code": 404, "status": "NOT_FOUND"}}, status=404)
        return web.json_response(cluster)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_post("/v1/token", self._sts_token)
        app.router.add_post("/v1/projects/-/serviceAccounts/{account}:generateAccessToken", self._generate_access_token)
        app.router.add_get("/v1/{resource:projects/[^/]+/locations/[^/]+/clusters/[^/]+}", self._get_cluster)
        return app


@asynccontextmanager
async def google_standin() -> AsyncIterator[GoogleStandin]:
    standin = GoogleStandin()
    async with serve(standin.app()) as url:
        standin.url = url
        yield standin
