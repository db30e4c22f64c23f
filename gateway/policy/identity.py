"""Who is calling: client certificates, static bearer tokens and OIDC JWTs, mapped to a tenant (pure).

Static tokens have the form `<id>.<secret>`; the config stores the id, the tenant and an scrypt hash of
the secret (salted; compared in constant time), never the secret itself. The id selects the one hash to
check, so a wrong token costs one scrypt, not one per configured token. scrypt (hashlib, OpenSSL) is
memory-hard like argon2 and needs no extra dependency; successful checks are cached by SHA-256 of the
token so a busy client pays the KDF once per verifier (one verifier per loaded config).

OIDC: `verify_jwt` checks signature, issuer, audience, expiry and not-before against a key set the
caller fetched (JWKS over HTTP is I/O and lives at the API edge) and a clock it passes in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt

from gateway.errors import PermissionDenied, Unauthenticated
from gateway.policy.tenants import TenantSet

TOKEN_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_LEN = 2**14, 8, 1, 32
_CACHE_MAX = 4096
ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


# --- static tokens --------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_secret(secret: str, *, salt: bytes, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """`scrypt$n$r$p$salt$hash`, the form the config stores."""
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, dklen=SCRYPT_LEN)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def check_hash_format(encoded: str) -> str:
    """ "" when `encoded` is a usable scrypt hash, else what is wrong (for config errors)."""
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return "expected scrypt$<n>$<r>$<p>$<salt>$<hash> (podgate token create prints one)"
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt, digest = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        return "n, r and p must be integers and salt and hash base64url"
    if n < 2**10 or n & (n - 1) or r < 1 or p < 1 or len(salt) < 16 or len(digest) != SCRYPT_LEN:
        return f"weak or malformed parameters: n a power of two >= 1024, salt >= 16 bytes, {SCRYPT_LEN}-byte hash"
    return ""


def verify_secret(secret: str, encoded: str) -> bool:
    if check_hash_format(encoded):
        return False
    _, n, r, p, salt, digest = encoded.split("$")
    # n*r*128 bytes of memory; hashlib's default 32 MiB ceiling would refuse n=2**15 with r=8
    again = hashlib.scrypt(
        secret.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), dklen=SCRYPT_LEN,
        maxmem=256 * int(n) * int(r) + 2**20,
    )  # fmt: skip
    return hmac.compare_digest(again, _unb64(digest))


def new_token(token_id: str) -> tuple[str, str]:
    """(the token to hand to the client, the hash to put in the config)."""
    if not TOKEN_ID.fullmatch(token_id):
        raise ValueError(f"token id {token_id!r} must be a DNS-1123 label (lower-case letters, digits, '-')")
    secret = secrets.token_urlsafe(32)
    return f"{token_id}.{secret}", hash_secret(secret, salt=secrets.token_bytes(16))


@dataclass(frozen=True, kw_only=True)
class StaticToken:
    id: str
    tenant: str
    hash: str = field(repr=False)


class TokenVerifier:
    """Maps a bearer token to its tenant; holds a bounded cache of tokens already verified."""

    def __init__(self, tokens: Iterable[StaticToken]) -> None:
        self._tokens = {t.id: t for t in tokens}
        self._verified: OrderedDict[bytes, StaticToken] = OrderedDict()

    def __repr__(self) -> str:
        return f"TokenVerifier({len(self._tokens)} tokens)"

    def knows(self, token: str) -> bool:
        """Whether the token is shaped like one of ours (else it may be a JWT)."""
        return token.partition(".")[0] in self._tokens and token.count(".") == 1

    def verified(self, token: str) -> bool:
        """Whether `verify` would answer from its cache, without an scrypt."""
        return hashlib.sha256(token.encode()).digest() in self._verified

    def verify(self, token: str) -> StaticToken | None:
        key = hashlib.sha256(token.encode()).digest()
        hit = self._verified.get(key)
        if hit is not None:
            self._verified.move_to_end(key)
            return hit
        token_id, _, secret = token.partition(".")
        entry = self._tokens.get(token_id)
        if entry is None or not secret or not verify_secret(secret, entry.hash):
            return None
        self._verified[key] = entry
        if len(self._verified) > _CACHE_MAX:
            self._verified.popitem(last=False)
        return entry


# --- OIDC -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class OidcSettings:
    issuer: str
    audience: str
    jwks_url: str
    groups_claim: str = "groups"
    algorithms: tuple[str, ...] = ASYMMETRIC_ALGORITHMS
    leeway_seconds: float = 60.0


def _signing_key(token: str, keys: jwt.PyJWKSet) -> jwt.PyJWK:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        raise Unauthenticated("the bearer token is neither a gateway token nor a well-formed JWT") from None
    if kid is None:
        if len(keys.keys) == 1:
            return keys.keys[0]
        raise Unauthenticated("the JWT names no key (kid) and the issuer has several")
    try:
        return keys[str(kid)]
    except KeyError:
        raise Unauthenticated(f"the JWT's key {kid!r} is not in the issuer's key set") from None


def verify_jwt(token: str, keys: jwt.PyJWKSet, settings: OidcSettings, *, now: float) -> Mapping[str, Any]:
    """The token's claims once signature, issuer, audience, exp and nbf hold at `now` (epoch seconds)."""
    key = _signing_key(token, keys)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=list(settings.algorithms),
            audience=settings.audience,
            issuer=settings.issuer,
            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False, "require": ["exp", "iss", "aud"]},
        )
    except jwt.PyJWTError as e:
        raise Unauthenticated(f"the JWT was refused: {e}") from None
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if not isinstance(exp, int | float) or now > exp + settings.leeway_seconds:
        raise Unauthenticated("the JWT has expired")
    if isinstance(nbf, int | float) and now < nbf - settings.leeway_seconds:
        raise Unauthenticated("the JWT is not valid yet (nbf)")
    return claims


def claim_groups(claims: Mapping[str, Any], groups_claim: str) -> list[str]:
    """A list claim or a space-separated string claim; a dotted name reaches into nested objects."""
    value: Any = claims
    for part in groups_claim.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [str(g) for g in value]
    return []


# --- principal ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Credentials:
    """What the API edge read from one call: peer certificate names, bearer token, requested tenant."""

    cert_names: tuple[str, ...] = ()  # subject CN and SAN values of a verified client certificate
    bearer: str = field(default="", repr=False)
    requested_tenant: str = ""  # e.g. an x-podgate-tenant header, needed when an identity maps to several


TENANT_HEADER = "x-podgate-tenant"
_CERT_KEYS = ("x509_common_name", "x509_subject_alternative_name")


def credentials_from_call(
    auth_context: Mapping[str, Iterable[bytes]], metadata: Iterable[tuple[str, str | bytes]]
) -> Credentials:
    """Credentials from a gRPC call's `auth_context()` and `invocation_metadata()` (plain values, no grpc).

    gRPC puts a client certificate's names in the auth context only after verifying it against the
    server's client CA, so their presence is the proof. A malformed authorization header is refused
    rather than ignored, so a typo never falls back to the certificate's identity.
    """
    names: list[str] = []
    for key in _CERT_KEYS:
        names += [v.decode(errors="replace") for v in auth_context.get(key, ())]
    bearer, tenant = "", ""
    for key, value in metadata:
        text = value.decode(errors="replace") if isinstance(value, bytes) else value
        if key.lower() == "authorization":
            scheme, _, token = text.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("the authorization header must be 'Bearer <token>'")
            bearer = token.strip()
        elif key.lower() == TENANT_HEADER:
            tenant = text.strip()
    return Credentials(cert_names=tuple(dict.fromkeys(names)), bearer=bearer, requested_tenant=tenant)


@dataclass(frozen=True, kw_only=True)
class Principal:
    tenant: str
    identity: str  # for audit and logs: "cert:<name>", "token:<id>", "oidc:<iss>#<sub>"


def choose_tenant(candidates: Sequence[str], requested: str, identity: str) -> str:
    unique = sorted(set(candidates))
    if requested:
        if requested in unique:
            return requested
        raise PermissionDenied(f"{identity} may not act as tenant {requested!r}; it maps to {unique or 'no tenant'}")
    if len(unique) == 1:
        return unique[0]
    if not unique:
        raise PermissionDenied(f"{identity} is authenticated but maps to no tenant")
    raise PermissionDenied(f"{identity} maps to several tenants {unique}: name one in the x-podgate-tenant header")


def _by_certificate(names: Sequence[str], tenants: TenantSet) -> tuple[list[str], str]:
    matched = [t.name for t in tenants.tenants.values() if t.cert_names & set(names)]
    return matched, f"cert:{names[0]}"


def _by_claims(claims: Mapping[str, Any], settings: OidcSettings, tenants: TenantSet) -> tuple[list[str], str]:
    groups = set(claim_groups(claims, settings.groups_claim))
    matched = [t.name for t in tenants.tenants.values() if t.oidc_groups & groups]
    return matched, f"oidc:{claims.get('iss')}#{claims.get('sub', '?')}"


@dataclass(frozen=True, kw_only=True)
class Authenticator:
    """One loaded configuration's view of authentication; rebuilt on reload."""

    tenants: TenantSet
    tokens: TokenVerifier = field(default_factory=lambda: TokenVerifier(()))
    oidc: OidcSettings | None = None

    def authenticate(self, creds: Credentials, *, jwks: jwt.PyJWKSet | None = None, now: float = 0.0) -> Principal:
        """A bearer token decides when present, else the client certificate; UNAUTHENTICATED without either."""
        if creds.bearer:
            matched, identity = self._by_bearer(creds.bearer, jwks, now)
        elif creds.cert_names:
            matched, identity = _by_certificate(creds.cert_names, self.tenants)
        else:
            raise Unauthenticated("no credentials: present a client certificate or an authorization: Bearer token")
        return Principal(tenant=choose_tenant(matched, creds.requested_tenant, identity), identity=identity)

    def slow(self, creds: Credentials) -> bool:
        """Whether `authenticate` may take long enough to hold up an event loop: an scrypt for a static token
        not verified yet (tens of milliseconds), or a JWT's signature. A certificate's names and a static
        token verified before are a few set and dict lookups."""
        bearer = creds.bearer
        return bool(bearer) and not (self.tokens.knows(bearer) and self.tokens.verified(bearer))

    def _by_bearer(self, token: str, jwks: jwt.PyJWKSet | None, now: float) -> tuple[list[str], str]:
        if self.tokens.knows(token):
            entry = self.tokens.verify(token)
            if entry is None:
                raise Unauthenticated("the bearer token is not valid")
            return [entry.tenant], f"token:{entry.id}"
        if self.oidc is None or jwks is None:
            raise Unauthenticated("the bearer token is not valid")
        return _by_claims(verify_jwt(token, jwks, self.oidc, now=now), self.oidc, self.tenants)
