"""The gateway's settings: one frozen `Settings` value from the YAML file, `PODGATE_*` variables and flags.

`load_settings` (I/O) and `parse_settings` (pure) build it; `LiveSettings` holds the one in force and
swaps its reloadable sections; `checks` holds the refusals of `podgate serve` at start.
"""

from gateway.policy.reading import ConfigError
from gateway.settings.checks import describe_listener, listener_problems, missing_files
from gateway.settings.live import LiveSettings
from gateway.settings.loading import load_settings, parse_settings
from gateway.settings.model import (
    RELOADABLE,
    AuditSettings,
    AuthenticationSettings,
    ClusterSettings,
    DatabaseSettings,
    DispatchSettings,
    LoggingSettings,
    MetricsSettings,
    ServerSettings,
    Settings,
    StreamSettings,
    TlsSettings,
    redact_url,
)
from gateway.settings.overrides import ENV_OVERRIDES, apply_overrides, env_name

__all__ = [
    "ENV_OVERRIDES",
    "RELOADABLE",
    "AuditSettings",
    "AuthenticationSettings",
    "ClusterSettings",
    "ConfigError",
    "DatabaseSettings",
    "DispatchSettings",
    "LiveSettings",
    "LoggingSettings",
    "MetricsSettings",
    "ServerSettings",
    "Settings",
    "StreamSettings",
    "TlsSettings",
    "apply_overrides",
    "describe_listener",
    "env_name",
    "listener_problems",
    "load_settings",
    "missing_files",
    "parse_settings",
    "redact_url",
]
