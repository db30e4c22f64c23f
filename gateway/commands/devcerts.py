"""`podgate dev-certs`: a local CA, a server certificate for localhost and client certificates, plus a gateway
configuration that uses them, so a newcomer can try TLS, mTLS and tenants on one machine in a minute.

For development only: the CA's key sits next to the certificates. Certificates come from `cryptography`.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import sys
from pathlib import Path

from gateway.commands.common import CommandError

VALID_DAYS = 30
CONFIG = """\
# Written by `podgate dev-certs`: TLS with client certificates, one admin tenant per client certificate.
# podgate serve --config {config}
tls:
  cert_file: server.crt
  key_file: server.key
  client_ca_file: ca.crt
  require_client_cert: true
tenants:
{tenants}
"""
TENANT = """\
  - name: {name}
    admin: true
    clusters: ["*"]
    namespaces: ["*"]
    kubeconfig: {{allowed: true, max_access: edit}}
    identities: {{cert_names: [{name}]}}
"""


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def dev_certs(args: argparse.Namespace) -> int:
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError:
        raise SystemExit("podgate dev-certs needs the server extra: pip install 'podgate[server]'") from None
    out = Path(args.dir)
    clients = args.client or ["admin"]
    if (out / "ca.crt").exists() and not args.force:
        raise CommandError(f"{out} already holds certificates; --force to replace them")
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def issue(subject: str, key: ec.EllipticCurvePrivateKey, signer: ec.EllipticCurvePrivateKey,
              issuer: str, *, ca: bool = False, sans: list[x509.GeneralName] | None = None,
              usage: x509.ObjectIdentifier | None = None) -> x509.Certificate:  # fmt: skip
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(issuer))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        if usage is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    def save(stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        _write(out / f"{stem}.crt", cert.public_bytes(serialization.Encoding.PEM))
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write(out / f"{stem}.key", key_pem, private=True)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    save("ca", issue("podgate dev CA", ca_key, ca_key, "podgate dev CA", ca=True), ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                    x509.IPAddress(ipaddress.ip_address("::1"))]  # fmt: skip
    server = issue("localhost", server_key, ca_key, "podgate dev CA", sans=sans, usage=ExtendedKeyUsageOID.SERVER_AUTH)
    save("server", server, server_key)
    for client in clients:
        if not client or "/" in client:
            raise CommandError(f"--client {client!r}: a plain name, used as the certificate's CN and tenant")
        key = ec.generate_private_key(ec.SECP256R1())
        cert = issue(client, key, ca_key, "podgate dev CA", sans=[x509.DNSName(client)],
                     usage=ExtendedKeyUsageOID.CLIENT_AUTH)  # fmt: skip
        save(f"client-{client}", cert, key)
    config = out / "podgate.yaml"
    tenants = "".join(TENANT.format(name=c) for c in clients)
    config.write_text(CONFIG.format(config=config, tenants=tenants))
    first = clients[0]
    print(f"wrote a CA, a server certificate for localhost and client certificates ({', '.join(clients)}) "
          f"to {out}, valid {VALID_DAYS} days")  # fmt: skip
    print(f"  serve:   podgate serve --config {config}")
    print(f"  clients: export PODGATE_GATEWAY=localhost:50051 PODGATE_CA_FILE={out / 'ca.crt'} "
          f"PODGATE_CERT_FILE={out / f'client-{first}.crt'} PODGATE_KEY_FILE={out / f'client-{first}.key'}")  # fmt: skip
    return 0


def dev_certs_command(args: argparse.Namespace) -> int:
    try:
        return dev_certs(args)
    except CommandError as e:
        print(f"podgate dev-certs: {e}", file=sys.stderr)
        return int(e.code)
