"""Authentication over the wire: TLS, client certificates (mTLS) and OIDC tokens checked against a JWKS
served over HTTPS by a local identity-provider stand-in."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway._proto.podgate.v1 import clusters_pb2, clusters_pb2_grpc
from gateway.app import Gateway, start_gateway
from gateway.sim.cluster import SimWorld
from gateway.sim.tls import CertificateAuthority, KeyPair, server_context
from tests.conftest import BIN, clean_env
from tests.e2e.conftest import gateway_settings

TENANTS = [
    {"name": "data-eng", "clusters": ["local-eu-cpu"], "namespaces": ["default"],
     "identities": {"cert_names": ["data-eng-client"], "oidc_groups": ["data"]}},
    {"name": "platform", "admin": True, "clusters": ["*"], "namespaces": ["*"],
     "identities": {"oidc_groups": ["sre"]}},
]  # fmt: skip


def write_pair(directory: Path, name: str, pair: KeyPair) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    cert.write_bytes(pair.cert_pem)
    key.write_bytes(pair.key_pem)
    key.chmod(0o600)
    return cert, key


async def visible_clusters(channel: grpc.aio.Channel, metadata: Any = None) -> set[str]:
    reply = await clusters_pb2_grpc.ClusterServiceStub(channel).ListClusters(
        clusters_pb2.ListClustersRequest(), metadata=metadata, timeout=10
    )
    return {c.cluster.name for c in reply.clusters}


# --- TLS and client certificates -------------------------------------------------------------------


@pytest.fixture
async def tls_gateway(world: SimWorld, tmp_path: Path) -> AsyncIterator[tuple[Gateway, CertificateAuthority]]:
    ca = CertificateAuthority("podgate-test-ca")
    cert, key = write_pair(tmp_path, "server", ca.issue_server(("127.0.0.1", "localhost")))
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    settings = gateway_settings(
        tmp_path,
        {
            "tenants": [{**t, "identities": {"cert_names": [f"{t['name']}-client"]}} for t in TENANTS],
            "tls": {
                "cert_file": str(cert),
                "key_file": str(key),
                "client_ca_file": str(tmp_path / "ca.crt"),
                "require_client_cert": True,
            },
        },
    )
    gw = await start_gateway(settings)
    yield gw, ca
    await gw.stop()


async def test_client_certificates_name_the_tenant_and_are_required(
    tls_gateway: tuple[Gateway, CertificateAuthority],
) -> None:
    gateway, ca = tls_gateway
    target = f"localhost:{gateway.port}"

    def creds(client: KeyPair | None) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(ca.cert_pem, *((client.key_pem, client.cert_pem) if client else ()))

    async def refusal(channel_creds: grpc.ChannelCredentials | None) -> grpc.aio.AioRpcError:
        channel = grpc.aio.secure_channel(target, channel_creds) if channel_creds else grpc.aio.insecure_channel(target)
        async with channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await visible_clusters(channel)
        return caught.value

    async with grpc.aio.secure_channel(target, creds(ca.issue_client("data-eng-client"))) as channel:
        assert await visible_clusters(channel) == {"local-eu-cpu"}
    # no certificate: required, so the handshake itself is refused
    assert (await refusal(creds(None))).code() == grpc.StatusCode.UNAVAILABLE
    unknown = await refusal(creds(ca.issue_client("somebody-else")))
    assert unknown.code() == grpc.StatusCode.PERMISSION_DENIED and "maps to no tenant" in (unknown.details() or "")
    forged = await refusal(creds(CertificateAuthority("not-our-ca").issue_client("data-eng-client")))
    assert forged.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED)
    # plain text to a TLS port: no answer at all
    assert (await refusal(None)).code() == grpc.StatusCode.UNAVAILABLE


# --- OIDC ----------------------------------------------------------------------------------------

ISSUER, AUDIENCE = "https://idp.test", "podgate"


@pytest.fixture
async def oidc_gateway(
    world: SimWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Gateway, rsa.RSAPrivateKey]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**json.loads(jwt.get_algorithm_by_name("RS256").to_jwk(key.public_key())), "kid": "k1", "alg": "RS256"}
    fetches: list[float] = []

    async def jwks(_: web.Request) -> web.Response:
        fetches.append(time.monotonic())
        return web.json_response({"keys": [jwk]})

    app = web.Application()
    app.router.add_get("/jwks", jwks)
    ca = CertificateAuthority("idp-test-ca")
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context(ca, ca.issue_server(("127.0.0.1",))))
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    (tmp_path / "idp-ca.crt").write_bytes(ca.cert_pem)
    monkeypatch.setenv(
        "SSL_CERT_FILE", str(tmp_path / "idp-ca.crt")
    )  # the identity provider's CA, as a deployment's trust store
    oidc = {"issuer": ISSUER, "audience": AUDIENCE, "jwks_url": f"https://127.0.0.1:{port}/jwks"}
    gw = await start_gateway(gateway_settings(tmp_path, {"tenants": TENANTS, "authentication": {"oidc": oidc}}))
    yield gw, key
    await gw.stop()
    await runner.cleanup()
    assert len(fetches) == 1, "the key set is fetched once and cached"


def id_token(key: Any, **claims: Any) -> str:
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": time.time() + 300, "groups": ["data"], **claims}
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "k1"})


async def test_oidc_tokens_map_groups_to_tenants(oidc_gateway: tuple[Gateway, rsa.RSAPrivateKey]) -> None:
    gateway, key = oidc_gateway

    def bearer(token: str) -> Any:
        return (("authorization", f"Bearer {token}"),)

    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        assert await visible_clusters(channel, bearer(id_token(key))) == {"local-eu-cpu"}
        admin = await visible_clusters(channel, bearer(id_token(key, groups=["sre"])))
        assert admin == {"local-eu-gpu", "local-eu-cpu", "local-us-gpu"}
        other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        for token, code, words in (
            (id_token(key, exp=time.time() - 3600), grpc.StatusCode.UNAUTHENTICATED, "expired"),
            (id_token(key, aud="someone-else"), grpc.StatusCode.UNAUTHENTICATED, "refused"),
            (id_token(other_key), grpc.StatusCode.UNAUTHENTICATED, "refused"),
            (id_token(key, groups=["nobody"]), grpc.StatusCode.PERMISSION_DENIED, "no tenant"),
            (id_token(key, groups=["data", "sre"]), grpc.StatusCode.PERMISSION_DENIED, "x-podgate-tenant"),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await visible_clusters(channel, bearer(token))
            assert caught.value.code() == code and words in (caught.value.details() or ""), caught.value.details()
        both = (*bearer(id_token(key, groups=["data", "sre"])), ("x-podgate-tenant", "data-eng"))
        assert await visible_clusters(channel, both) == {"local-eu-cpu"}


async def podgate(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "podgate"), *args, env={**clean_env(), **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_the_cli_authenticates_with_a_client_certificate(
    tls_gateway: tuple[Gateway, CertificateAuthority], tmp_path: Path
) -> None:
    gateway, ca = tls_gateway
    cert, key = write_pair(tmp_path, "cli", ca.issue_client("data-eng-client"))
    tls = ("--gateway", f"localhost:{gateway.port}", "--ca-file", str(tmp_path / "ca.crt"))
    code, out, err = await podgate("clusters", "list", *tls, "--cert-file", str(cert), "--key-file", str(key))
    assert code == 0, err
    assert "local-eu-cpu" in out and "local-us-gpu" not in out
    code, out, err = await podgate("clusters", "list", *tls)
    assert code != 0 and "local-eu-cpu" not in out


async def test_the_cli_sends_the_token_from_the_environment(oidc_gateway: tuple[Gateway, rsa.RSAPrivateKey]) -> None:
    gateway, key = oidc_gateway
    address = ("--gateway", f"127.0.0.1:{gateway.port}")
    code, out, err = await podgate("clusters", "list", *address, env={"PODGATE_TOKEN": id_token(key)})
    assert code == 0, err
    assert "local-eu-cpu" in out and "local-us-gpu" not in out
    code, out, err = await podgate("clusters", "list", *address)
    assert code != 0 and "no credentials" in err
