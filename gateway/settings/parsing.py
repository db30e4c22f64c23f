"""Parsed YAML (with overrides applied) to `Settings`, or a ConfigError naming every bad key.

Pure. One table, `SECTIONS`, says which sections the file has and how each key is read; the keys of a
section are its dataclass's fields, so every setting is reachable from the file (and, through
settings.overrides, from a `PODGATE_*` variable) and its default stays on its field: a section's
dataclass is built from the keys that were given, nothing else. Tenants and authentication have
parsers of their own in gateway.policy.tenant_config (a tenants file is re-read on reload).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, get_type_hints

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from gateway.credentials.issuing import MIN_TTL_SECONDS, IssuePolicy
from gateway.placement.scoring import STRATEGIES, PlacementPolicy
from gateway.policy import reading as rd
from gateway.policy.limits import InputLimits
from gateway.policy.tenant_config import check_identities, parse_authentication, parse_tenants
from gateway.settings import model as m
from gateway.store.engine import SQLITE_SYNCHRONOUS

LOG_FORMATS = ("text", "json")
EVENT_LOOPS = ("auto", "uvloop", "asyncio")
API_PROTOCOLS = ("auto", "http/1.1")
LOG_LEVELS = ("debug", "info", "warning", "error")

Kind = Callable[[Any, str, rd.Problems], Any]

# Old top-level key -> its place now. settings.overrides moves an old key there (with a notice);
# an old key left in the mapping means both were given.
MOVED: Mapping[str, str] = {
    "listen": "server.listen",
    "gateway_id": "server.gateway_id",
    "state_dir": "server.state_dir",
    "cluster_files": "clusters.files",
    "probe_interval": "clusters.probe_interval_seconds",
    "gc_interval": "dispatch.gc_interval_seconds",
}


def address(value: Any, path: str, problems: rd.Problems) -> str | None:
    text = rd.text(value, path, problems)
    if text is None:
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        problems.add(path, f"must be host:port (e.g. 0.0.0.0:50051), got {text!r}")
        return None
    return text


def _metrics_address(value: Any, path: str, problems: rd.Problems) -> str | None:
    return m.METRICS_OFF if value == m.METRICS_OFF else address(value, path, problems)


def _database_url(value: Any, path: str, problems: rd.Problems) -> str | None:
    """Never quoted back: the URL may hold a password."""
    if not isinstance(value, str) or not value.strip():
        problems.add(path, "must be a database URL such as postgresql+asyncpg://user:password@host/podgate")
        return None
    try:
        make_url(value)
    except ArgumentError:
        problems.add(path, "is not a database URL (dialect+driver://user:password@host/database)")
        return None
    return value


# Keys whose reading is not implied by their type; the rest are read by their annotation (_BY_TYPE).
_SPECIAL: dict[tuple[type, str], Kind] = {
    (m.ServerSettings, "listen"): address,
    (m.ServerSettings, "health_listen"): address,
    (m.ServerSettings, "event_loop"): rd.one_of(*EVENT_LOOPS),
    (m.ClusterSettings, "api_protocol"): rd.one_of(*API_PROTOCOLS),
    (PlacementPolicy, "strategy"): rd.one_of(*STRATEGIES),
    (m.DatabaseSettings, "url"): _database_url,
    (m.DatabaseSettings, "sqlite_synchronous"): rd.one_of(*SQLITE_SYNCHRONOUS),
    (m.LoggingSettings, "format"): rd.one_of(*LOG_FORMATS),
    (m.LoggingSettings, "level"): rd.one_of(*LOG_LEVELS),
    (m.MetricsSettings, "listen"): _metrics_address,
}

# The file's sections read field by field (tenants and authentication are read by their own parsers).
SECTIONS: dict[str, type] = {
    "server": m.ServerSettings,
    "tls": m.TlsSettings,
    "clusters": m.ClusterSettings,
    "placement": PlacementPolicy,
    "dispatch": m.DispatchSettings,
    "streams": m.StreamSettings,
    "database": m.DatabaseSettings,
    "kubeconfig": IssuePolicy,
    "limits": InputLimits,
    "logging": m.LoggingSettings,
    "metrics": m.MetricsSettings,
    "audit": m.AuditSettings,
}


def _path(base_dir: Path) -> Kind:
    def parse(value: Any, path: str, problems: rd.Problems) -> Path | None:
        name = rd.text(value, path, problems)
        return None if name is None else base_dir / Path(name).expanduser()

    return parse


def _paths(base_dir: Path) -> Kind:
    def parse(value: Any, path: str, problems: rd.Problems) -> tuple[Path, ...] | None:
        names = rd.texts(value, path, problems)
        return None if names is None else tuple(base_dir / Path(n).expanduser() for n in names)

    return parse


def _by_type(annotation: Any, base_dir: Path) -> Kind:
    kinds: dict[Any, Kind] = {
        str: rd.text, int: rd.integer, float: rd.number, bool: rd.boolean,
        Path: _path(base_dir), Path | None: _path(base_dir), tuple[Path, ...]: _paths(base_dir),
    }  # fmt: skip
    return kinds[annotation]


def kind_of(section: type, name: str, base_dir: Path = Path(".")) -> Kind:
    special = _SPECIAL.get((section, name))
    return special if special is not None else _by_type(get_type_hints(section)[name], base_dir)


def is_path(section: type, name: str) -> bool:
    return get_type_hints(section)[name] in (Path, Path | None, tuple[Path, ...])


def _section(cls: type, s: rd.Section, base_dir: Path) -> Any:
    """The section's dataclass from the keys given; a refusal of its own (__post_init__) names the section."""
    given = {}
    for f in fields(cls):
        value = s.raw_value(f.name)
        if value is not None:
            parsed = kind_of(cls, f.name, base_dir)(value, rd.join(s.path, f.name), s.problems)
            if parsed is not None:
                given[f.name] = parsed
    s.done()
    try:
        return cls(**given)
    except ValueError as e:
        s.problems.add(s.path, str(e))
        return cls()


def _check_tls(tls: m.TlsSettings, problems: rd.Problems) -> None:
    if (tls.cert_file is None) != (tls.key_file is None):
        problems.add("tls", "cert_file and key_file go together")
    if tls.client_ca_file is not None and tls.cert_file is None:
        problems.add("tls.client_ca_file", "client certificates need the server's own cert_file and key_file")
    if tls.require_client_cert and tls.client_ca_file is None:
        problems.add("tls.require_client_cert", "needs client_ca_file to verify client certificates")
    if tls.client_ca_file is not None and not tls.require_client_cert:
        problems.add(
            "tls.require_client_cert",
            "must be true with client_ca_file: gRPC's Python server cannot verify optional client certificates "
            "(it requires them or never asks); for token-only callers remove client_ca_file",
        )


def _check(settings: m.Settings, problems: rd.Problems) -> None:
    """Rules across keys, checked once every section is read."""
    _check_tls(settings.tls, problems)
    cap = settings.kubeconfig.max_ttl_seconds
    if cap < MIN_TTL_SECONDS:
        problems.add("kubeconfig.max_ttl_seconds", f"at least {MIN_TTL_SECONDS} (Kubernetes' minimum)")
    if settings.clusters.probe_interval_seconds <= 0:
        problems.add("clusters.probe_interval_seconds", "must be more than 0")
    if settings.database.password_file is not None and not settings.database.url:
        problems.add("database.password_file", "goes with database.url (the SQLite store has no password)")
    if settings.database.lease_seconds < 1:
        problems.add("database.lease_seconds", "must be at least 1")
    if settings.dispatch.gc_interval_seconds <= 0:
        problems.add("dispatch.gc_interval_seconds", "must be more than 0")
    if settings.streams.log_inactivity_seconds <= 0:
        problems.add("streams.log_inactivity_seconds", "must be more than 0")
    for i, tenant in enumerate(settings.tenants.tenants.values()):
        if tenant.kubeconfig.max_ttl_seconds > cap:
            problems.add(
                f"tenants[{i}].kubeconfig.max_ttl_seconds",
                f"{tenant.kubeconfig.max_ttl_seconds} exceeds the gateway's kubeconfig.max_ttl_seconds ({cap})",
            )


def parse_merged(
    merged: Mapping[str, Any], *, base_dir: Path = Path("."), tenants_raw: Any = None, tenants_file: Path | None = None
) -> m.Settings:
    """Settings from the file's mapping with every override already applied (settings.overrides)."""
    problems = rd.Problems()
    top = rd.Section.of(merged, "", problems)
    sections = {name: _section(cls, top.section(name), base_dir) for name, cls in SECTIONS.items()}
    tenants_value = top.raw_value("tenants")
    from_file = isinstance(tenants_value, str)
    tenants = parse_tenants(
        tenants_raw if from_file else tenants_value, problems, f"tenants ({tenants_value})" if from_file else "tenants"
    )
    tokens, oidc = parse_authentication(top.section("authentication"), tenants)
    check_identities(tenants, oidc, problems)
    for old, new in MOVED.items():
        if top.raw_value(old) is not None:
            problems.add(old, f"moved to {new}, which is set too: remove {old}")
    top.done()
    settings = m.Settings(
        **sections,
        authentication=m.AuthenticationSettings(static_tokens=tokens, oidc=oidc),
        tenants=tenants,
        tenants_file=tenants_file,
    )
    _check(settings, problems)
    problems.raise_if_any()
    return settings
