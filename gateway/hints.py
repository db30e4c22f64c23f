"""The commands `podgate serve` prints for a newcomer to try, runnable as pasted whatever the listener asks.

A client needs what the listener demands: the address, and with TLS the CA that verifies the server's
certificate (and the name it carries), with client certificates one of them, with tenants a token. The
gateway knows its own certificate and client CA; from them `client_access` finds, without guessing:

- the CA file for the client: the client CA when it issued the server certificate (one dev CA, as
  `podgate dev-certs` makes), else a `ca.crt` beside the server certificate that issued it, else the
  certificate itself when self-signed; none of them: a public CA, the system's roots (PODGATE_TLS=1);
- a server name when the address's host is not among the certificate's names;
- a client certificate `client-NAME.crt` with its `client-NAME.key` beside the client CA (the dev-certs
  layout), issued by it and naming a tenant; none: the hints say a certificate is needed.
A token is never known to the gateway (it keeps hashes): a line before the hints says to export one.

Secure settings go in one `export` line of the CLI's environment defaults (gateway/commands/common.py),
so the commands after it stay short; a plain loopback listener needs at most --gateway.
"""

from __future__ import annotations

import ipaddress
import os
import shlex
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from gateway.client.channel import DEFAULT_ADDRESS
from gateway.commands.common import ENV_DEFAULTS, TLS_ENV, TOKEN_ENV
from gateway.settings import Settings

_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", "[::]", ""})  # noqa: S104 (names, not a bind)


@dataclass(frozen=True, kw_only=True)
class ClientAccess:
    """What a client needs to reach this gateway; each file field is a CLI flag of the same name."""

    gateway: str
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    server_name: str = ""
    needs_token: bool = False
    needs_certificate: bool = False  # client certificates are required and none was found to name

    def environment(self) -> dict[str, str]:
        """The CLI's environment defaults that say all of it (empty for the plain default address)."""
        flags = {"ca_file": self.ca_file, "cert_file": self.cert_file, "key_file": self.key_file,
                 "server_name": self.server_name}  # fmt: skip
        env = {ENV_DEFAULTS[name]: value for name, value in flags.items() if value}
        if self.tls and not self.ca_file and not self.cert_file:
            env[TLS_ENV] = "1"
        if env:
            env = {ENV_DEFAULTS["gateway"]: self.gateway, **env}
        return env


def what_callers_need(access: ClientAccess) -> list[str]:
    """What only the user holds, said before the hints (which stay pure commands)."""
    needs = []
    if access.needs_certificate:
        needs.append(f"callers need a client certificate: export {ENV_DEFAULTS['cert_file']}=FILE "
                     f"{ENV_DEFAULTS['key_file']}=FILE")  # fmt: skip
    if access.needs_token:
        needs.append(f"callers need a tenant token: export {TOKEN_ENV}=ID.SECRET (or {ENV_DEFAULTS['token_file']}=FILE)")
    return needs


def try_hints(access: ClientAccess, *, embedded: bool, program: str = "") -> list[str]:
    """Commands to paste as they are, in order: an `export` line first when the listener is secure."""
    runnable = _runnable(program or sys.argv[0])
    env = access.environment()
    exports = ["export " + " ".join(f"{name}={shlex.quote(value)}" for name, value in env.items())] if env else []
    gateway = "" if env or access.gateway == DEFAULT_ADDRESS else f" --gateway {access.gateway}"
    placed = "--region eu-west-1 --gpus 1 " if embedded else ""
    return [
        *exports,
        f"{runnable} clusters list{gateway}",
        f"{runnable} run{gateway} {placed}--image python:3.12 -- python -c 'print(42)'",
    ]


def _runnable(program: str) -> str:
    """The program as this shell finds it: `podgate` when on PATH, else its path (`.venv/bin/podgate`)."""
    on_path = shutil.which("podgate")
    if not os.path.isfile(program) or (on_path and os.path.samefile(on_path, program)):
        return "podgate"
    return os.path.relpath(program)


def client_access(settings: Settings, address: str) -> ClientAccess:
    """What a client needs to reach the listener bound at `address` (host:port) with these settings."""
    host, _, port = address.rpartition(":")
    tls = settings.tls
    if tls.cert_file is None:
        return ClientAccess(gateway=address, needs_token=settings.auth_enabled)
    chain = x509.load_pem_x509_certificates(tls.cert_file.read_bytes())
    names = _names(chain[0])
    host = next((h for h in ("localhost", "127.0.0.1") if _covers(names, h)), "localhost") if host in _WILDCARD_HOSTS else host
    server_name = "" if _covers(names, host) else next((n for n in names if "*" not in n and not _is_ip(n)), "")
    candidates = [tls.client_ca_file, tls.cert_file.parent / "ca.crt", tls.cert_file]
    ca_file = next((p for p in candidates if p is not None and _issues(p, chain)), None)
    client = _client_certificate(tls.client_ca_file, settings) if tls.client_ca_file is not None else None
    return ClientAccess(
        gateway=f"{host}:{port}",
        tls=True,
        ca_file=str(ca_file.resolve()) if ca_file else "",
        cert_file=str(client[0].resolve()) if client else "",
        key_file=str(client[1].resolve()) if client else "",
        server_name=server_name,
        needs_token=settings.auth_enabled and client is None and tls.client_ca_file is None,
        needs_certificate=tls.client_ca_file is not None and client is None,
    )


def _names(cert: x509.Certificate) -> list[str]:
    """The DNS names and IP addresses a certificate is valid for (its CN when it has no SAN)."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return _cn(cert)
    return [*sans.get_values_for_type(x509.DNSName), *(str(ip) for ip in sans.get_values_for_type(x509.IPAddress))]


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def _covers(names: Iterable[str], host: str) -> bool:
    host = host.strip("[]").lower()
    for name in (n.lower() for n in names):
        if name == host or (name.startswith("*.") and not _is_ip(host) and host.partition(".")[2] == name[2:]):
            return True
    return False


def _issues(ca_path: Path, chain: list[x509.Certificate]) -> bool:
    """Whether a certificate in the file at `ca_path` signed the server certificate or its chain."""
    try:
        authorities = x509.load_pem_x509_certificates(ca_path.read_bytes())
    except (OSError, ValueError):
        return False
    for cert in chain:
        for authority in authorities:
            try:
                cert.verify_directly_issued_by(authority)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return True
    return False


def _client_certificate(client_ca: Path, settings: Settings) -> tuple[Path, Path] | None:
    """A dev-certs client certificate beside the client CA that it issued and a tenant names, with its key."""
    named = frozenset[str]().union(*(t.cert_names for t in settings.tenants.tenants.values()))
    for cert_path in sorted(client_ca.parent.glob("client-*.crt")):
        key_path = cert_path.with_suffix(".key")
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except (OSError, ValueError):
            continue
        if key_path.is_file() and _issues(client_ca, [cert]) and named.intersection(_names(cert) + _cn(cert)):
            return cert_path, key_path
    return None


def _cn(cert: x509.Certificate) -> list[str]:
    return [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
