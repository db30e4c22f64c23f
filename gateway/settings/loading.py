"""Reading the configuration file (and its tenants file) from disk; everything else is pure.

`load_settings` is what `podgate serve` calls at start and on every reload, with the same flags and
the process's environment, so a reload compares like with like: a key changes only when the file did.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from gateway.policy.reading import ConfigError
from gateway.settings.model import Settings
from gateway.settings.overrides import apply_overrides, moved_keys
from gateway.settings.parsing import parse_merged

log = logging.getLogger(__name__)


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError([f"cannot read {path}: {e.strerror or e}"]) from None
    except yaml.YAMLError as e:
        raise ConfigError([f"{path} is not valid YAML: {e}"]) from None


def parse_settings(
    raw: Any,
    *,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
    base_dir: Path = Path("."),
    tenants_raw: Any = None,
    tenants_file: Path | None = None,
) -> Settings:
    """Settings from parsed YAML and overrides (pure); ConfigError listing every problem with its key path.

    Relative paths in the file resolve against `base_dir` (the file's directory). When `tenants:` names
    a file, the loader passes that file's parsed content as `tenants_raw`.
    """
    if raw is not None and not isinstance(raw, Mapping):
        raise ConfigError([f"the configuration must be a mapping, got {type(raw).__name__}"])
    merged = apply_overrides(raw, env=env, flags=flags)
    return parse_merged(merged, base_dir=base_dir, tenants_raw=tenants_raw, tenants_file=tenants_file)


def load_settings(
    config_file: Path | str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> Settings:
    """The file (if any) and its tenants file, `PODGATE_*` variables (`env`, default os.environ), flags."""
    environ = os.environ if env is None else env
    path = Path(config_file) if config_file else None
    raw = _read_yaml(path) if path is not None else None
    if path is not None and raw is not None and not isinstance(raw, Mapping):
        raise ConfigError([f"the configuration must be a mapping, got {type(raw).__name__}"], str(path))
    base_dir = path.parent if path is not None else Path(".")
    for notice in moved_keys(raw or {}):
        log.warning("%s: %s", path, notice)
    tenants_value = apply_overrides(raw, env=environ, flags=flags).get("tenants")
    tenants_raw, tenants_file = None, None
    if isinstance(tenants_value, str):
        tenants_file = base_dir / tenants_value
        loaded = _read_yaml(tenants_file)
        tenants_raw = loaded.get("tenants") if isinstance(loaded, Mapping) else loaded
    try:
        return parse_settings(
            raw, env=environ, flags=flags, base_dir=base_dir, tenants_raw=tenants_raw, tenants_file=tenants_file
        )
    except ConfigError as e:
        raise ConfigError(e.problems, str(path or "")) from None
