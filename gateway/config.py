"""The gateway's one YAML configuration file plus PODGATE_<SECTION>_<KEY> environment overrides.

`parse_config` is pure (parsed YAML and an environment mapping in, `Settings` or a ConfigError naming
every bad key out); `load_config` reads the file and a separate tenants file when `tenants:` is a path.
Reloading is calling `load_config` again: tenants, authentication and limits can be swapped into a
running gateway (`Settings.reloadable_changes`), the rest needs a restart (`Settings.restart_changes`).

Environment overrides name a scalar key by its path in upper case, dots as underscores:
`PODGATE_LISTEN`, `PODGATE_TLS_CERT_FILE`, `PODGATE_LIMITS_REQUEST_BYTES`,
`PODGATE_AUTHENTICATION_OIDC_ISSUER`, `PODGATE_TENANTS` (a tenants file), `PODGATE_CLUSTER_FILES`
(comma-separated). Lists of tenants and tokens come only from files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from gateway.clusters.kubeapi.timeouts import LOG_INACTIVITY_SECONDS
from gateway.credentials.issuing import MIN_TTL_SECONDS
from gateway.placement.scoring import STRATEGIES
from gateway.policy import reading as rd
from gateway.policy.identity import Authenticator, OidcSettings, StaticToken, TokenVerifier
from gateway.policy.limits import InputLimits
from gateway.policy.tenant_config import check_identities, parse_authentication, parse_tenants
from gateway.policy.tenants import TenantSet

ENV_PREFIX = "PODGATE_"
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")


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
class Settings:
    listen: str = "127.0.0.1:50051"
    gateway_id: str = "podgate"
    state_dir: Path = Path(".podgate")
    cluster_files: tuple[Path, ...] = ()
    probe_interval: float = 5.0
    gc_interval: float = 60.0
    placement_strategy: str = "least-loaded"
    kubeconfig_max_ttl_seconds: int = 8 * 3600
    audit_sink: str = ""  # a JSON-lines file; "-" for standard output; "" for the store only
    log_format: str = "text"
    log_level: str = "info"
    log_inactivity_seconds: float = LOG_INACTIVITY_SECONDS  # a log stream silent this long is reopened
    metrics_listen: str = ""  # e.g. 0.0.0.0:9090; "" serves no metrics endpoint
    tls: TlsSettings = field(default_factory=TlsSettings)
    limits: InputLimits = field(default_factory=InputLimits)
    tenants: TenantSet = field(default_factory=TenantSet)
    tenants_file: Path | None = None  # where tenants came from, when not inline (watch it to reload)
    static_tokens: tuple[StaticToken, ...] = field(default=(), repr=False)
    oidc: OidcSettings | None = None

    @property
    def auth_enabled(self) -> bool:
        """With no tenants configured the gateway runs open, which is allowed on loopback only."""
        return bool(self.tenants.tenants)

    def authenticator(self) -> Authenticator:
        return Authenticator(tenants=self.tenants, tokens=TokenVerifier(self.static_tokens), oidc=self.oidc)

    def restart_changes(self, new: Settings) -> list[str]:
        """Keys whose change takes a restart (listen address, TLS files, state...)."""
        return [
            f.name for f in fields(self) if f.name not in RELOADABLE and getattr(self, f.name) != getattr(new, f.name)
        ]

    def reloadable_changes(self, new: Settings) -> list[str]:
        return [f.name for f in fields(self) if f.name in RELOADABLE and getattr(self, f.name) != getattr(new, f.name)]


RELOADABLE = frozenset({"tenants", "tenants_file", "static_tokens", "oidc", "limits"})


# --- environment overrides -------------------------------------------------------------------

_SCALARS: tuple[str, ...] = (
    "listen", "gateway_id", "state_dir", "cluster_files", "probe_interval", "gc_interval", "tenants",
    "placement.strategy", "kubeconfig.max_ttl_seconds", "audit.sink", "logging.format", "logging.level",
    "streams.log_inactivity_seconds", "metrics.listen", "tls.cert_file", "tls.key_file", "tls.client_ca_file",
    "tls.require_client_cert",
    *(f"limits.{f.name}" for f in fields(InputLimits)),
    "authentication.oidc.issuer", "authentication.oidc.audience", "authentication.oidc.jwks_url",
    "authentication.oidc.groups_claim",
)  # fmt: skip


def env_name(path: str) -> str:
    return ENV_PREFIX + path.replace(".", "_").upper()


ENV_OVERRIDES: Mapping[str, str] = {env_name(p): p for p in _SCALARS}


def apply_env(raw: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """A copy of `raw` with every known PODGATE_* variable set at its key (as a string, parsed later)."""
    merged: dict[str, Any] = dict(raw)
    for name, path in ENV_OVERRIDES.items():
        if name not in env:
            continue
        *parents, leaf = path.split(".")
        node = merged
        for part in parents:
            child = node.get(part)
            node[part] = dict(child) if isinstance(child, Mapping) else {}
            node = node[part]
        node[leaf] = env[name]
    return merged


# --- parsing -------------------------------------------------------------------------------


def _path(base_dir: Path) -> Callable[[Any, str, rd.Problems], Path | None]:
    def parse(value: Any, path: str, problems: rd.Problems) -> Path | None:
        name = rd.text(value, path, problems)
        return None if name is None else base_dir / Path(name).expanduser()

    return parse


def _address(value: Any, path: str, problems: rd.Problems) -> str | None:
    text = rd.text(value, path, problems)
    if text is None:
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        problems.add(path, f"must be host:port (e.g. 0.0.0.0:50051), got {text!r}")
        return None
    return text


def _tls(s: rd.Section, base_dir: Path) -> TlsSettings:
    as_path = _path(base_dir)
    tls = TlsSettings(
        cert_file=s.get("cert_file", as_path, None),
        key_file=s.get("key_file", as_path, None),
        client_ca_file=s.get("client_ca_file", as_path, None),
        require_client_cert=s.get("require_client_cert", rd.boolean, False),
    )
    if (tls.cert_file is None) != (tls.key_file is None):
        s.problems.add(s.path, "cert_file and key_file go together")
    if tls.client_ca_file is not None and tls.cert_file is None:
        s.problems.add(
            rd.join(s.path, "client_ca_file"), "client certificates need the server's own cert_file and key_file"
        )
    if tls.require_client_cert and tls.client_ca_file is None:
        s.problems.add(rd.join(s.path, "require_client_cert"), "needs client_ca_file to verify client certificates")
    if tls.client_ca_file is not None and not tls.require_client_cert:
        s.problems.add(
            rd.join(s.path, "require_client_cert"),
            "must be true with client_ca_file: gRPC's Python server cannot verify optional client certificates "
            "(it requires them or never asks); for token-only callers remove client_ca_file",
        )
    s.done()
    return tls


def _limits(s: rd.Section) -> InputLimits:
    defaults = InputLimits()
    values = {f.name: s.get(f.name, rd.integer, getattr(defaults, f.name)) for f in fields(InputLimits)}
    s.done()
    try:
        return InputLimits(**values)
    except ValueError as e:
        s.problems.add(s.path, str(e))
        return defaults


def _one(s: rd.Section, key: str, kind: Callable[[Any, str, rd.Problems], Any], default: Any) -> Any:
    """One key of a small section that has nothing else."""
    value = s.get(key, kind, default)
    s.done()
    return value


def parse_config(
    raw: Any, *, env: Mapping[str, str] | None = None, base_dir: Path = Path("."), tenants_raw: Any = None,
    tenants_file: Path | None = None,
) -> Settings:  # fmt: skip
    """Settings from parsed YAML; ConfigError listing every problem with its key path.

    Relative paths are resolved against `base_dir` (the config file's directory). When `tenants:` names
    a file, the loader passes that file's parsed content as `tenants_raw`.
    """
    problems = rd.Problems()
    top = rd.Section.of(apply_env(raw if isinstance(raw, Mapping) else {}, env or {}), "", problems)
    if raw is not None and not isinstance(raw, Mapping):
        problems.add("", f"the configuration must be a mapping, got {type(raw).__name__}")
    as_path = _path(base_dir)
    log_format, log_level = _logging(top.section("logging"))
    tenants_value = top.raw_value("tenants")
    tenants = parse_tenants(tenants_raw if isinstance(tenants_value, str) else tenants_value, problems,
                            "tenants" if not isinstance(tenants_value, str) else f"tenants ({tenants_value})")  # fmt: skip
    tokens, oidc = parse_authentication(top.section("authentication"), tenants)
    check_identities(tenants, oidc, problems)
    settings = Settings(
        listen=top.get("listen", _address, "127.0.0.1:50051"),
        gateway_id=top.get("gateway_id", rd.text, "podgate"),
        state_dir=top.get("state_dir", as_path, Path(".podgate")),
        cluster_files=tuple(base_dir / p for p in top.get("cluster_files", rd.texts, rd.NO_TEXTS)),
        probe_interval=top.get("probe_interval", rd.number, 5.0),
        gc_interval=top.get("gc_interval", rd.number, 60.0),
        placement_strategy=_one(top.section("placement"), "strategy", rd.one_of(*STRATEGIES), "least-loaded"),
        kubeconfig_max_ttl_seconds=_one(top.section("kubeconfig"), "max_ttl_seconds", rd.integer, 8 * 3600),
        audit_sink=_one(top.section("audit"), "sink", rd.text, ""),
        log_inactivity_seconds=_one(top.section("streams"), "log_inactivity_seconds", rd.number, LOG_INACTIVITY_SECONDS),
        metrics_listen=_one(top.section("metrics"), "listen", _address, ""),
        tls=_tls(top.section("tls"), base_dir),
        limits=_limits(top.section("limits")),
        tenants=tenants,
        tenants_file=tenants_file,
        static_tokens=tokens,
        oidc=oidc,
        log_format=log_format,
        log_level=log_level,
    )
    top.done()
    if settings.kubeconfig_max_ttl_seconds < MIN_TTL_SECONDS:
        problems.add("kubeconfig.max_ttl_seconds", f"at least {MIN_TTL_SECONDS} (Kubernetes' minimum)")
    if settings.probe_interval <= 0:
        problems.add("probe_interval", "must be more than 0")
    if settings.log_inactivity_seconds <= 0:
        problems.add("streams.log_inactivity_seconds", "must be more than 0")
    for i, tenant in enumerate(settings.tenants.tenants.values()):
        if tenant.kubeconfig.max_ttl_seconds > settings.kubeconfig_max_ttl_seconds:
            problems.add(
                f"tenants[{i}].kubeconfig.max_ttl_seconds",
                f"{tenant.kubeconfig.max_ttl_seconds} exceeds the gateway's kubeconfig.max_ttl_seconds "
                f"({settings.kubeconfig_max_ttl_seconds})",
            )
    problems.raise_if_any()
    return settings


def _logging(s: rd.Section) -> tuple[str, str]:
    values = (s.get("format", rd.one_of(*LOG_FORMATS), "text"), s.get("level", rd.one_of(*LOG_LEVELS), "info"))
    s.done()
    return values


# --- loading (I/O) ---------------------------------------------------------------------------


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except OSError as e:
        raise rd.ConfigError([f"cannot read {path}: {e.strerror or e}"]) from None
    except yaml.YAMLError as e:
        raise rd.ConfigError([f"{path} is not valid YAML: {e}"]) from None


def load_config(path: Path | str, env: Mapping[str, str] | None = None) -> Settings:
    """Reads the config file (and its tenants file), applies the environment, validates everything."""
    path = Path(path)
    environ = os.environ if env is None else env
    raw = _read_yaml(path)
    merged = apply_env(raw if isinstance(raw, Mapping) else {}, environ)
    tenants_value = merged.get("tenants")
    tenants_raw, tenants_file = None, None
    if isinstance(tenants_value, str):
        tenants_file = path.parent / tenants_value
        loaded = _read_yaml(tenants_file)
        tenants_raw = loaded.get("tenants") if isinstance(loaded, Mapping) else loaded
    try:
        return parse_config(raw, env=environ, base_dir=path.parent, tenants_raw=tenants_raw, tenants_file=tenants_file)
    except rd.ConfigError as e:
        raise rd.ConfigError(e.problems, str(path)) from None


def missing_files(settings: Settings) -> list[str]:
    """Files the settings name that do not exist, each with its key; checked at start, not on parse."""
    named = [
        ("tls.cert_file", settings.tls.cert_file),
        ("tls.key_file", settings.tls.key_file),
        ("tls.client_ca_file", settings.tls.client_ca_file),
        *((f"cluster_files[{i}]", p) for i, p in enumerate(settings.cluster_files)),
    ]
    return [f"{key}: {path} does not exist" for key, path in named if path is not None and not path.exists()]


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "[::1]", "localhost"})


def listener_problems(settings: Settings) -> list[str]:
    """Refusals for an exposed gateway: plain text or no tenants are allowed on loopback only."""
    host = settings.listen.rpartition(":")[0]
    if host in LOOPBACK_HOSTS or host.startswith("127."):
        return []
    problems = []
    if not settings.tls.enabled:
        problems.append(
            f"listen: {settings.listen} is not loopback; a plain-text listener needs tls.cert_file/key_file"
        )
    if not settings.auth_enabled:
        problems.append(f"listen: {settings.listen} is not loopback; configure tenants so callers must authenticate")
    return problems


def describe_listener(settings: Settings) -> str:
    """The line `podgate serve` prints at start, saying how callers are authenticated."""
    transport = "TLS" if settings.tls.enabled else "PLAIN TEXT (loopback only)"
    if settings.tls.client_ca_file is not None:
        transport += ", client certificates required"
    auth = f"{len(settings.tenants.tenants)} tenant(s)" if settings.auth_enabled else "no authentication (no tenants)"
    return f"{settings.listen}: {transport}; {auth}"
