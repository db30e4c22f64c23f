"""The gateway's settings: one frozen value, nested in sections that mirror the YAML file key for key.

Each default is written once, on its field here (or on the field of a value another layer owns and
the file exposes as a section: `PlacementPolicy`, `InputLimits`, `IssuePolicy`, `OidcSettings`); the parser passes only the keys a file, the
environment or a flag set, so nothing else restates a default. `tests/unit/test_settings_defaults.py`
checks that no other module of the server writes a literal default for a setting.

Sections in `RELOADABLE` may change in a running gateway (`LiveSettings.reload`); the others take a
restart, and `restart_changes` names them for the operator.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy.exc import ArgumentError

from gateway.clusters.kubeapi.timeouts import LOG_INACTIVITY_SECONDS
from gateway.credentials.issuing import IssuePolicy
from gateway.placement.scoring import PlacementPolicy
from gateway.policy.identity import Authenticator, OidcSettings, StaticToken, TokenVerifier
from gateway.policy.limits import InputLimits
from gateway.policy.tenants import TenantSet
from gateway.store.engine import DEFAULT_SQLITE_SYNCHRONOUS, sqlite_url
from gateway.store.url import describe as describe_url

EMBEDDED_CLUSTERS = Path("clusters/local.yaml")  # the simulated clusters `podgate serve` runs with no files
DATABASE_FILE = "podgate.db"  # the SQLite store's file under server.state_dir
METRICS_OFF = "off"


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    """The gRPC listener and this gateway's identity and state."""

    listen: str = "127.0.0.1:50051"
    # A second, plain-text listener serving only grpc.health.v1, for kubelet probes (they cannot speak TLS).
    health_listen: str = ""
    gateway_id: str = "podgate"  # labels the pods this gateway owns; replicas of one gateway share it
    state_dir: Path = Path(".podgate")  # the SQLite store (unless database.url says otherwise) and kubeconfigs
    # auto: uvloop when installed (it allocates a TLS connection's read buffer lazily, where asyncio holds
    # 256 KiB per followed log), else asyncio's own loop; or uvloop, or asyncio to choose. The embedded
    # local clusters run pod processes that need asyncio's loop: auto keeps it with them.
    event_loop: str = "auto"

    @property
    def kubeconfig_dir(self) -> Path:
        return self.state_dir / "kubeconfigs"


@dataclass(frozen=True, kw_only=True)
class TlsSettings:
    cert_file: Path | None = None
    key_file: Path | None = None
    client_ca_file: Path | None = None  # verifies client certificates (mTLS)
    # gRPC's Python server either requires and verifies client certificates or never asks for one, so
    # a client CA needs require_client_cert: true (a bearer token may still name the tenant on top).
    require_client_cert: bool = False

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None


@dataclass(frozen=True, kw_only=True)
class ClusterSettings:
    files: tuple[Path, ...] = ()  # registration files or directories; none: the embedded local clusters
    probe_interval_seconds: float = 5.0  # between health probes of each cluster
    # "auto": every request to an API server (creates, deletes, reads, watches, followed logs; not exec's
    # WebSocket) rides HTTP/2 streams, up to 100 on a connection, when the server offers h2 in ALPN and no proxy
    # is in the way, HTTP/1.1 otherwise; "http/1.1": HTTP/1.1 only (a connection per open watch or log).
    api_protocol: str = "auto"

    @property
    def embedded(self) -> bool:
        """No files: `podgate serve` runs the simulated clusters of EMBEDDED_CLUSTERS in-process."""
        return not self.files

    @property
    def sources(self) -> tuple[Path, ...]:
        """The files the registry loads at start."""
        return self.files or (EMBEDDED_CLUSTERS,)


@dataclass(frozen=True, kw_only=True)
class DispatchSettings:
    """Housekeeping of the dispatch core."""

    gc_interval_seconds: float = 60.0  # how often orphan pods and expired journals are collected
    orphan_ttl_seconds: float = 600.0  # a gateway pod no live request owns is deleted after this long
    journal_retention_seconds: float = 7 * 86400.0  # logs and events of a finished request are kept this long


@dataclass(frozen=True, kw_only=True)
class StreamSettings:
    # A followed log silent this long is reopened from its last line (the price of noticing a connection a
    # middlebox dropped without a FIN or RST); the value is the Kubernetes client's own default.
    log_inactivity_seconds: float = LOG_INACTIVITY_SECONDS


@dataclass(frozen=True, kw_only=True)
class DatabaseSettings:
    # A SQLAlchemy async URL (e.g. postgresql+asyncpg://user:password@host/podgate); empty: the SQLite file
    # under server.state_dir. It may hold a password: repr and describe() mask it.
    url: str = field(default="", repr=False)
    # A file holding the password (a mounted Secret), when the URL has none; giving both is refused.
    password_file: Path | None = None
    # Replicas on PostgreSQL (docs/decisions/0021): how long a replica's lease lasts; renewed every third
    # of it. A dead replica's requests are taken over after about this long (SIGTERM: at once).
    lease_seconds: float = 15.0
    # SQLite's PRAGMA synchronous (ignored on PostgreSQL, whose commits are flushed): "full", an acknowledged
    # write survives a power cut or kernel crash too (an fsync a group commit); "normal", a crash or kill of
    # the gateway only. The default (full) is the store's, written once there (docs/decisions/0032).
    sqlite_synchronous: str = DEFAULT_SQLITE_SYNCHRONOUS

    def describe(self) -> str:
        if self.url:
            return redact_url(self.url)
        return f"SQLite ({DATABASE_FILE} under server.state_dir, synchronous={self.sqlite_synchronous})"

    def __repr__(self) -> str:
        return f"DatabaseSettings(url={redact_url(self.url)!r})"


@dataclass(frozen=True, kw_only=True)
class AuthenticationSettings:
    static_tokens: tuple[StaticToken, ...] = field(default=(), repr=False)
    oidc: OidcSettings | None = None


@dataclass(frozen=True, kw_only=True)
class LoggingSettings:
    format: str = "text"  # or json: one object per line with request_id, tenant, cluster, pod
    level: str = "info"


@dataclass(frozen=True, kw_only=True)
class MetricsSettings:
    # Prometheus /metrics. At this default address a taken port is a warning; any other is an error. "off": none.
    listen: str = "127.0.0.1:9464"

    @property
    def address(self) -> str | None:
        return None if self.listen == METRICS_OFF else self.listen

    @property
    def is_default(self) -> bool:
        return self.listen == MetricsSettings().listen


@dataclass(frozen=True, kw_only=True)
class AuditSettings:
    sink: str = ""  # a JSON-lines file; "-" for standard output; empty for the store only


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything `podgate serve` is told, from the file, `PODGATE_*` variables and flags (settings.overrides)."""

    server: ServerSettings = field(default_factory=ServerSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    clusters: ClusterSettings = field(default_factory=ClusterSettings)
    placement: PlacementPolicy = field(default_factory=PlacementPolicy)
    dispatch: DispatchSettings = field(default_factory=DispatchSettings)
    streams: StreamSettings = field(default_factory=StreamSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    kubeconfig: IssuePolicy = field(default_factory=IssuePolicy)  # the gateway-wide cap on issued kubeconfigs
    limits: InputLimits = field(default_factory=InputLimits)
    authentication: AuthenticationSettings = field(default_factory=AuthenticationSettings)
    tenants: TenantSet = field(default_factory=TenantSet)
    tenants_file: Path | None = None  # where tenants came from, when not inline (watched to reload)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)

    @property
    def auth_enabled(self) -> bool:
        """With no tenants configured the gateway runs open, which is allowed on loopback only."""
        return bool(self.tenants.tenants)

    @property
    def database_url(self) -> str:
        return self.database.url or sqlite_url(self.server.state_dir / DATABASE_FILE)

    def authenticator(self) -> Authenticator:
        auth = self.authentication
        return Authenticator(tenants=self.tenants, tokens=TokenVerifier(auth.static_tokens), oidc=auth.oidc)

    def restart_changes(self, new: Settings) -> list[str]:
        """Keys whose change takes a restart (listener, TLS, store...), each by its path in the file."""
        changed = [k for k in _changed_keys(self, new) if k.split(".")[0] not in RELOADABLE or k in STARTUP_ONLY]
        return changed

    def reloadable_changes(self, new: Settings) -> list[str]:
        return [k for k in _changed_keys(self, new) if k.split(".")[0] in RELOADABLE and k not in STARTUP_ONLY]

    def reloaded(self, new: Settings) -> Settings:
        """These settings with the reloadable sections of `new`; the rest stays as the gateway started."""
        return replace(self, **{name: getattr(new, name) for name in RELOADABLE})


# Read on every use through LiveSettings, so a reload reaches every reader at once.
RELOADABLE = frozenset({"tenants", "tenants_file", "authentication", "kubeconfig", "limits", "placement"})
# Inside a reloadable section, but applied once at start: gRPC's receive limit is a server option.
STARTUP_ONLY = frozenset({"limits.request_bytes"})


def _changed_keys(old: Any, new: Any, path: str = "") -> list[str]:
    """Dotted paths of the leaves that differ; a section is walked, any other value compared whole."""
    if not (is_dataclass(old) and type(old) is type(new) and isinstance(old, _SECTIONS)):
        return [path] if old != new else []
    out: list[str] = []
    for f in fields(old):
        key = f"{path}.{f.name}" if path else f.name
        out += _changed_keys(getattr(old, f.name), getattr(new, f.name), key)
    return out


_SECTIONS = (
    Settings, ServerSettings, TlsSettings, ClusterSettings, PlacementPolicy, DispatchSettings, StreamSettings,
    DatabaseSettings,
    IssuePolicy, InputLimits, LoggingSettings, MetricsSettings, AuditSettings,
)  # fmt: skip



def redact_url(url: str) -> str:
    """The URL with its password (and password-like query parameters) masked, for logs and messages."""
    try:
        return describe_url(url)
    except (ArgumentError, ValueError):
        return "<not a database URL>"
