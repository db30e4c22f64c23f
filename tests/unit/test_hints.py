"""What `podgate serve` tells a client it needs (gateway/hints.py), for each shape of TLS setup.

tests/e2e/test_serve_hints.py runs the printed hints against real gateways; these cover the shapes a
test gateway cannot easily take: a wildcard listener, a certificate without the address's host, a
self-signed certificate, a public CA, mTLS without a client certificate at hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.hints import ClientAccess, client_access, try_hints, what_callers_need
from gateway.settings import parse_settings
from gateway.sim.tls import CertificateAuthority, KeyPair

TENANT = {"name": "team", "clusters": ["*"], "namespaces": ["*"], "identities": {"cert_names": ["alice"]}}


def _save(directory: Path, stem: str, pair: KeyPair) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{stem}.crt").write_bytes(pair.cert_pem)
    (directory / f"{stem}.key").write_bytes(pair.key_pem)


def _access(tmp_path: Path, listen: str, tls: dict[str, Any], *, tenants: bool = False) -> ClientAccess:
    raw: dict[str, Any] = {"tls": tls, "server": {"listen": listen}}
    if tenants:
        raw["tenants"] = [TENANT]
    settings = parse_settings(raw, env={}, base_dir=tmp_path)
    return client_access(settings, listen)


def test_a_dev_ca_beside_the_server_certificate_is_the_clients_ca(tmp_path: Path) -> None:
    ca = CertificateAuthority("dev")
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    _save(tmp_path, "server", ca.issue_server(("127.0.0.1", "localhost")))
    access = _access(tmp_path, "127.0.0.1:7000", {"cert_file": "server.crt", "key_file": "server.key"})
    assert access == ClientAccess(gateway="127.0.0.1:7000", tls=True, ca_file=str(tmp_path / "ca.crt"))
    assert access.environment() == {"PODGATE_GATEWAY": "127.0.0.1:7000", "PODGATE_CA_FILE": str(tmp_path / "ca.crt")}


@pytest.mark.parametrize(
    ("listen", "sans", "gateway", "server_name"),
    [
        ("0.0.0.0:7000", ("localhost",), "localhost:7000", ""),  # a wildcard bind: a client dials a name it holds
        ("0.0.0.0:7000", ("127.0.0.1",), "127.0.0.1:7000", ""),
        ("[::]:7000", ("gw.internal",), "localhost:7000", "gw.internal"),
        ("10.1.2.3:7000", ("gw.internal", "*.corp.example"), "10.1.2.3:7000", "gw.internal"),
        ("api.corp.example:7000", ("*.corp.example",), "api.corp.example:7000", ""),
        ("127.0.0.1:7000", ("127.0.0.1",), "127.0.0.1:7000", ""),
    ],
)
def test_the_address_and_server_name_match_the_certificate(
    tmp_path: Path, listen: str, sans: tuple[str, ...], gateway: str, server_name: str
) -> None:
    ca = CertificateAuthority("dev")
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    _save(tmp_path, "server", ca.issue_server(sans))
    access = _access(tmp_path, listen, {"cert_file": "server.crt", "key_file": "server.key"}, tenants=True)
    assert (access.gateway, access.server_name) == (gateway, server_name)
    assert access.environment().get("PODGATE_SERVER_NAME", "") == server_name


def test_a_self_signed_certificate_is_its_own_ca(tmp_path: Path) -> None:
    ca = CertificateAuthority("localhost")  # self-signed, named localhost (no SAN: its CN is its name)
    _save(tmp_path, "server", KeyPair(ca.cert_pem, b"key"))
    (tmp_path / "ca.crt").write_bytes(CertificateAuthority("another").cert_pem)  # beside it, but not its issuer
    access = _access(tmp_path, "0.0.0.0:7000", {"cert_file": "server.crt", "key_file": "server.key"}, tenants=True)
    assert (access.gateway, access.ca_file) == ("localhost:7000", str(tmp_path / "server.crt"))


def test_a_certificate_from_an_unknown_ca_trusts_the_system_roots(tmp_path: Path) -> None:
    _save(tmp_path, "server", CertificateAuthority("public").issue_server(("127.0.0.1",)))
    access = _access(tmp_path, "127.0.0.1:7000", {"cert_file": "server.crt", "key_file": "server.key"})
    assert access.environment() == {"PODGATE_GATEWAY": "127.0.0.1:7000", "PODGATE_TLS": "1"}


def test_mtls_names_the_client_certificate_a_tenant_accepts(tmp_path: Path) -> None:
    ca = CertificateAuthority("dev")
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    _save(tmp_path, "server", ca.issue_server(("127.0.0.1",)))
    _save(tmp_path, "client-aaron", ca.issue_client("aaron"))  # no tenant names it
    _save(tmp_path, "client-alice", CertificateAuthority("other").issue_client("alice"))  # another CA's
    tls = {"cert_file": "server.crt", "key_file": "server.key", "client_ca_file": "ca.crt", "require_client_cert": True}
    assert _access(tmp_path, "127.0.0.1:7000", tls, tenants=True).needs_certificate
    _save(tmp_path / "other", "client-alice", ca.issue_client("alice"))
    tls["client_ca_file"] = "other/ca.crt"
    (tmp_path / "other" / "ca.crt").write_bytes(ca.cert_pem)
    access = _access(tmp_path, "127.0.0.1:7000", tls, tenants=True)
    assert (access.ca_file, access.cert_file, access.key_file) == (
        str(tmp_path / "other" / "ca.crt"), str(tmp_path / "other" / "client-alice.crt"),
        str(tmp_path / "other" / "client-alice.key"),
    )  # fmt: skip
    assert not access.needs_certificate and not access.needs_token


def test_hints_are_commands_and_needs_come_apart() -> None:
    plain = ClientAccess(gateway="127.0.0.1:50051", needs_token=True)
    assert try_hints(plain, embedded=False, program="podgate") == [
        "podgate clusters list",
        "podgate run --image python:3.12 -- python -c 'print(42)'",
    ]
    assert what_callers_need(plain) == [
        "callers need a tenant token: export PODGATE_TOKEN=ID.SECRET (or PODGATE_TOKEN_FILE=FILE)"
    ]
    secure = ClientAccess(gateway="localhost:7000", tls=True, ca_file="/my certs/ca.crt", needs_certificate=True)
    hints = try_hints(secure, embedded=True, program="podgate")
    assert hints[0] == "export PODGATE_GATEWAY=localhost:7000 PODGATE_CA_FILE='/my certs/ca.crt'"
    assert hints[1:] == [
        "podgate clusters list",
        "podgate run --region eu-west-1 --gpus 1 --image python:3.12 -- python -c 'print(42)'",
    ]
    assert what_callers_need(secure) == [
        "callers need a client certificate: export PODGATE_CERT_FILE=FILE PODGATE_KEY_FILE=FILE"
    ]
