"""The one place where command-line flags and `PODGATE_*` variables are laid over the file.

Precedence: flag > environment > file > the field's default. Both kinds of override name a key by
its path in the file (`server.listen`); a variable spells it in upper case with underscores
(`PODGATE_SERVER_LISTEN`, `PODGATE_DATABASE_URL`), and `podgate serve`'s flags carry the path as their
argparse `dest`. Values stay strings here and are parsed with the file, so a bad override is
refused naming its key, like a bad line of the file. Lists of tenants and tokens come only from files.

Keys that moved into sections (`listen` -> `server.listen`, ...) are still read from old files and
old variables, with a notice, until the files are updated.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import Any

from gateway.settings.parsing import MOVED, SECTIONS, is_path

ENV_PREFIX = "PODGATE_"
_OIDC_KEYS = ("issuer", "audience", "jwks_url", "groups_claim")

def env_name(path: str) -> str:
    return ENV_PREFIX + path.replace(".", "_").upper()


def _scalar_paths() -> Iterable[str]:
    for section, cls in SECTIONS.items():
        yield from (f"{section}.{f.name}" for f in fields(cls))
    yield "tenants"  # a tenants file
    yield from (f"authentication.oidc.{key}" for key in _OIDC_KEYS)


SCALARS: tuple[str, ...] = tuple(_scalar_paths())
ENV_OVERRIDES: Mapping[str, str] = {env_name(p): p for p in SCALARS} | {env_name(old): new for old, new in MOVED.items()}
PATH_KEYS = frozenset(f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in fields(cls) if is_path(cls, f.name))


def _set(node: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        child = node.get(part)
        node[part] = dict(child) if isinstance(child, Mapping) else {}
        node = node[part]
    node[leaf] = value


def moved_keys(raw: Mapping[str, Any]) -> list[str]:
    """Notices for old keys the file still uses."""
    return [f"{old}: moved to {new}; update the file" for old, new in MOVED.items() if old in raw]


def _move(raw: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in raw.items() if k not in MOVED}
    for old, new in MOVED.items():
        if old in raw:
            section, key = new.split(".")
            given = raw.get(section)
            if isinstance(given, Mapping) and key in given:
                out[old] = raw[old]  # left in place for the parser to refuse
            else:
                _set(out, new, raw[old])
    return out


def apply_overrides(
    raw: Mapping[str, Any] | None, *, env: Mapping[str, str] | None = None, flags: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A copy of the file's mapping with the environment's, then the flags', values at their keys.

    A flag's path is relative to the working directory (a file's to the file): it is made absolute.
    """
    merged = _move(raw or {})
    environ = env or {}
    for name, path in ENV_OVERRIDES.items():
        if name in environ:
            _set(merged, path, environ[name])
    for path, value in (flags or {}).items():
        if path not in SCALARS:
            raise KeyError(f"{path} is not a settings key")  # a wiring bug in the CLI, not the operator's
        if path in PATH_KEYS:
            value = [os.path.abspath(v) for v in value] if isinstance(value, list | tuple) else os.path.abspath(value)
        _set(merged, path, value)
    return merged
