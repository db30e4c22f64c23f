"""Identities to tenants: hashed static tokens, client certificates, OIDC JWTs verified against a key set."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.errors import PermissionDenied, Unauthenticated
from gateway.policy.identity import (
    Authenticator,
    Credentials,
    OidcSettings,
    StaticToken,
    TokenVerifier,
    check_hash_format,
    claim_groups,
    credentials_from_call,
    hash_secret,
    new_token,
    verify_jwt,
    verify_secret,
)
from gateway.policy.tenants import Tenant, TenantSet

ISSUER, AUDIENCE = "https://idp.example", "podgate"
OIDC = OidcSettings(issuer=ISSUER, audience=AUDIENCE, jwks_url="https://idp.example/jwks", groups_claim="groups")
NOW = 1_800_000_000.0
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks(*pairs: tuple[Any, str, str]) -> jwt.PyJWKSet:
    keys = []
    for private, kid, alg in pairs:
        algorithm = jwt.get_algorithm_by_name(alg)
        jwk = json.loads(algorithm.to_jwk(private.public_key()))
        keys.append({**jwk, "kid": kid, "alg": alg, "use": "sig"})
    return jwt.PyJWKSet.from_dict({"keys": keys})


KEYS = jwks((RSA_KEY, "r1", "RS256"), (EC_KEY, "e1", "ES256"))


def token(claims: dict[str, Any] | None = None, *, key: Any = RSA_KEY, kid: str | None = "r1", alg: str = "RS256",
          drop: tuple[str, ...] = ()) -> str:  # fmt: skip
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": NOW + 300, "groups": ["ml-team"], **(claims or {})}
    for k in drop:
        body.pop(k)
    headers = {"kid": kid} if kid else {}
    return jwt.encode(body, key, algorithm=alg, headers=headers)


def test_valid_tokens_with_either_key() -> None:
    assert verify_jwt(token(), KEYS, OIDC, now=NOW)["sub"] == "alice"
    assert verify_jwt(token(key=EC_KEY, kid="e1", alg="ES256"), KEYS, OIDC, now=NOW)["sub"] == "alice"


@pytest.mark.parametrize(
    ("jwt_text", "message"),
    [
        (token({"exp": NOW - 61}), "expired"),
        (token({"nbf": NOW + 61}), "not valid yet"),
        (token({"iss": "https://evil.example"}), "refused.*issuer"),
        (token({"aud": "someone-else"}), "refused.*Audience"),
        (token(drop=("exp",)), "refused.*exp"),
        (token(key=OTHER_KEY), "refused.*Signature"),
        (token(kid="nope"), "key 'nope' is not in the issuer's key set"),
        (token(kid=None), "names no key"),
        (
            jwt.encode(
                {"iss": ISSUER, "aud": AUDIENCE, "exp": NOW + 60},
                "shared-secret-of-32-bytes-or-more!!",
                algorithm="HS256",
                headers={"kid": "r1"},
            ),
            "refused",
        ),
        ("not-a-jwt", "neither a gateway token nor a well-formed JWT"),
    ],
)
def test_refused_tokens(jwt_text: str, message: str) -> None:
    with pytest.raises(Unauthenticated, match=message):
        verify_jwt(jwt_text, KEYS, OIDC, now=NOW)


def test_leeway_and_the_injected_clock() -> None:
    assert verify_jwt(token({"exp": NOW - 59}), KEYS, OIDC, now=NOW)
    assert verify_jwt(token({"exp": 10}), KEYS, OIDC, now=5)  # long expired in real time; the clock is injected
    single = jwks((RSA_KEY, "r1", "RS256"))
    assert verify_jwt(token(kid=None), single, OIDC, now=NOW)


@pytest.mark.parametrize(
    ("claims", "name", "groups"),
    [
        ({"groups": ["a", "b"]}, "groups", ["a", "b"]),
        ({"roles": "a b"}, "roles", ["a", "b"]),
        ({"realm_access": {"roles": ["x"]}}, "realm_access.roles", ["x"]),
        ({"groups": 3}, "groups", []),
        ({}, "groups", []),
    ],
)
def test_claim_groups(claims: dict[str, Any], name: str, groups: list[str]) -> None:
    assert claim_groups(claims, name) == groups


def test_static_token_round_trip_and_constant_time_verification() -> None:
    issued, stored = new_token("ci-bot")
    assert check_hash_format(stored) == ""
    assert issued.startswith("ci-bot.") and issued.split(".", 1)[1] not in stored
    verifier = TokenVerifier([StaticToken(id="ci-bot", tenant="ml", hash=stored)])
    assert verifier.knows(issued)
    entry = verifier.verify(issued)
    assert entry is not None and entry.tenant == "ml"
    assert verifier.verify(issued + "x") is None
    assert verifier.verify("ci-bot.") is None
    assert verifier.verify(issued) is entry  # served from the cache
    assert stored not in repr(entry) and "ci-bot" in repr(entry)


@pytest.mark.parametrize(
    ("encoded", "problem"),
    [
        ("plain-text", "expected scrypt"),
        ("scrypt$x$8$1$AAAA$BBBB", "integers"),
        ("scrypt$1000$8$1$" + "A" * 22 + "$" + "A" * 43, "power of two"),
        ("scrypt$16384$8$1$AAAA$" + "A" * 43, "salt >= 16 bytes"),
    ],
)
def test_hash_format_errors(encoded: str, problem: str) -> None:
    assert problem in check_hash_format(encoded)
    assert not verify_secret("anything", encoded)


def test_hash_is_salted() -> None:
    a = hash_secret("same", salt=b"0" * 16)
    b = hash_secret("same", salt=b"1" * 16)
    assert a != b and verify_secret("same", a) and verify_secret("same", b) and not verify_secret("other", a)


def test_new_token_refuses_bad_ids() -> None:
    with pytest.raises(ValueError, match="DNS-1123"):
        new_token("Bad_ID")


ML = Tenant(name="ml", cert_names=frozenset({"airflow.ml.internal"}), oidc_groups=frozenset({"ml-team"}))
DATA = Tenant(name="data", cert_names=frozenset({"etl"}), oidc_groups=frozenset({"ml-team", "data-team"}))
TENANTS = TenantSet(tenants={"ml": ML, "data": DATA})
BOT_TOKEN, BOT_HASH = new_token("bot")
AUTH = Authenticator(
    tenants=TENANTS, tokens=TokenVerifier([StaticToken(id="bot", tenant="ml", hash=BOT_HASH)]), oidc=OIDC
)


@pytest.mark.parametrize(
    ("creds", "tenant", "identity"),
    [
        (Credentials(cert_names=("airflow.ml.internal", "spiffe://x")), "ml", "cert:airflow.ml.internal"),
        (Credentials(cert_names=("other", "etl")), "data", "cert:other"),
        (Credentials(bearer=BOT_TOKEN), "ml", "token:bot"),
        (Credentials(bearer=BOT_TOKEN, cert_names=("etl",)), "ml", "token:bot"),  # the bearer token decides
        (Credentials(bearer=token({"groups": ["data-team"]})), "data", f"oidc:{ISSUER}#alice"),
        (Credentials(bearer=token(), requested_tenant="ml"), "ml", f"oidc:{ISSUER}#alice"),
        (Credentials(bearer=token(), requested_tenant="data"), "data", f"oidc:{ISSUER}#alice"),
    ],
)
def test_authenticate(creds: Credentials, tenant: str, identity: str) -> None:
    principal = AUTH.authenticate(creds, jwks=KEYS, now=NOW)
    assert (principal.tenant, principal.identity) == (tenant, identity)


@pytest.mark.parametrize(
    ("creds", "error", "message"),
    [
        (Credentials(), Unauthenticated, "no credentials"),
        (Credentials(bearer="bot.wrong"), Unauthenticated, "not valid"),
        (Credentials(bearer=token({"exp": NOW - 3600})), Unauthenticated, "expired"),
        (Credentials(cert_names=("stranger",)), PermissionDenied, "maps to no tenant"),
        (Credentials(bearer=token()), PermissionDenied, "several tenants.*x-podgate-tenant"),
        (Credentials(bearer=BOT_TOKEN, requested_tenant="data"), PermissionDenied, "may not act as tenant 'data'"),
    ],
)
def test_authentication_failures(creds: Credentials, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        AUTH.authenticate(creds, jwks=KEYS, now=NOW)


def test_jwt_without_oidc_configured_is_unauthenticated() -> None:
    with pytest.raises(Unauthenticated, match="not valid"):
        Authenticator(tenants=TENANTS).authenticate(Credentials(bearer=token()), now=time.time())


def test_credentials_repr_hides_the_bearer_token() -> None:
    assert BOT_TOKEN not in repr(Credentials(bearer=BOT_TOKEN))
    assert BOT_HASH not in repr(AUTH)


@pytest.mark.parametrize(
    ("auth_context", "metadata", "expected"),
    [
        ({}, [], Credentials()),
        ({"x509_common_name": [b"etl"], "x509_subject_alternative_name": [b"etl", b"spiffe://d/etl"]}, [],
         Credentials(cert_names=("etl", "spiffe://d/etl"))),
        ({}, [("authorization", "Bearer abc.def"), ("x-podgate-tenant", "ml")],
         Credentials(bearer="abc.def", requested_tenant="ml")),
        ({}, [("Authorization", b"bearer  tok ")], Credentials(bearer="tok")),
        ({"transport_security_type": [b"ssl"]}, [("user-agent", "grpc")], Credentials()),
    ],
)  # fmt: skip
def test_credentials_from_call(
    auth_context: dict[str, list[bytes]], metadata: list[tuple[str, Any]], expected: Credentials
) -> None:
    got = credentials_from_call(auth_context, metadata)
    assert (got.cert_names, got.bearer, got.requested_tenant) == (
        expected.cert_names,
        expected.bearer,
        expected.requested_tenant,
    )


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "token-without-scheme"])
def test_a_malformed_authorization_header_is_refused(header: str) -> None:
    with pytest.raises(Unauthenticated, match="Bearer <token>"):
        credentials_from_call({"x509_common_name": [b"etl"]}, [("authorization", header)])


def test_only_an_scrypt_or_a_signature_is_slow() -> None:
    issued, stored = new_token("fresh")
    auth = Authenticator(tenants=TENANTS, tokens=TokenVerifier([StaticToken(id="fresh", tenant="ml", hash=stored)]))
    assert not auth.slow(Credentials(cert_names=("etl",)))
    assert not auth.slow(Credentials())  # refused at once: no credentials
    assert auth.slow(Credentials(bearer=token()))  # a JWT: its signature
    assert auth.slow(Credentials(bearer=issued))  # not verified yet: an scrypt
    assert auth.slow(Credentials(bearer=issued + "x"))
    assert auth.authenticate(Credentials(bearer=issued)).tenant == "ml"
    assert not auth.slow(Credentials(bearer=issued))  # verified: a cache lookup
    assert auth.slow(Credentials(bearer=issued + "x"))  # a wrong secret is never cached
    assert auth.slow(Credentials(bearer=issued, cert_names=("etl",))) is False
