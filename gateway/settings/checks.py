"""Start-time checks of settings that parse: files that must exist, listeners that must be protected.

Kept out of parsing because they depend on the machine (files) or are refusals of `podgate serve`
rather than of the file (an exposed listener without TLS or tenants).
"""

from __future__ import annotations

from gateway.settings.model import Settings

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "[::1]", "localhost"})


def missing_files(settings: Settings) -> list[str]:
    """Files the settings name that do not exist, each with its key."""
    named = [
        ("tls.cert_file", settings.tls.cert_file),
        ("tls.key_file", settings.tls.key_file),
        ("tls.client_ca_file", settings.tls.client_ca_file),
        ("database.password_file", settings.database.password_file),
        *((f"clusters.files[{i}]", p) for i, p in enumerate(settings.clusters.files)),
    ]
    return [f"{key}: {path} does not exist" for key, path in named if path is not None and not path.exists()]


def is_loopback(address: str) -> bool:
    host = address.rpartition(":")[0]
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def listener_problems(settings: Settings) -> list[str]:
    """Refusals for an exposed gateway: plain text or no tenants are allowed on loopback only."""
    listen = settings.server.listen
    if is_loopback(listen):
        return []
    problems = []
    if not settings.tls.enabled:
        problems.append(f"server.listen: {listen} is not loopback; a plain-text listener needs tls.cert_file/key_file")
    if not settings.auth_enabled:
        problems.append(f"server.listen: {listen} is not loopback; configure tenants so callers must authenticate")
    return problems


def describe_listener(settings: Settings, address: str) -> str:
    """The line `podgate serve` prints at start (`address` as bound), saying how callers are authenticated."""
    transport = "TLS" if settings.tls.enabled else "PLAIN TEXT (loopback only)"
    if settings.tls.client_ca_file is not None:
        transport += ", client certificates required"
    auth = f"{len(settings.tenants.tenants)} tenant(s)" if settings.auth_enabled else "no authentication (no tenants)"
    return f"{address}: {transport}; {auth}"
