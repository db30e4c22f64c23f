"""Merging a KUBECONFIG-style list of kubeconfig documents the way client-go does (pure: no file reads).

client-go's rules: the first file that defines a cluster, user or context of a given name wins, and
so does the first non-empty `current-context`. Relative file references are resolved against the
directory of the file that holds them, before merging, so a merged entry keeps meaning what it meant.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

_NAMED = ("clusters", "users", "contexts")
_FILE_KEYS = {
    "clusters": ("certificate-authority",),
    "users": ("client-certificate", "client-key", "tokenFile"),
}


def split_path_list(value: str) -> list[Path]:
    """`a:b` (`a;b` on Windows) into paths, empty entries dropped, as client-go reads KUBECONFIG."""
    return [Path(part).expanduser() for part in value.split(os.pathsep) if part.strip()]


def _absolute(value: object, base_dir: Path) -> object:
    if not isinstance(value, str) or not value:
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else base_dir / path)


def _absolutize_body(kind: str, body: Mapping[str, Any], base_dir: Path) -> dict[str, Any]:
    out = dict(body)
    for key in _FILE_KEYS.get(kind, ()):
        if key in out:
            out[key] = _absolute(out[key], base_dir)
    spec = out.get("exec")
    if kind == "users" and isinstance(spec, Mapping) and "/" in str(spec.get("command", "")):
        out["exec"] = {**spec, "command": _absolute(spec["command"], base_dir)}
    provider = out.get("auth-provider")
    config = provider.get("config") if isinstance(provider, Mapping) else None
    if isinstance(provider, Mapping) and isinstance(config, Mapping) and config.get("idp-certificate-authority"):
        # client-go leaves this one relative to the working directory; a server's working directory
        # means nothing to whoever wrote the kubeconfig, so it is relative to the file like the others.
        config = {**config, "idp-certificate-authority": _absolute(config["idp-certificate-authority"], base_dir)}
        out["auth-provider"] = {**provider, "config": config}
    return out


def absolutize(doc: Mapping[str, Any], base_dir: Path) -> dict[str, Any]:
    """`doc` with its relative file references (and relative exec commands) made absolute."""
    out = dict(doc)
    for kind in _FILE_KEYS:
        items = []
        for item in doc.get(kind) or ():
            body = item.get(kind[:-1]) if isinstance(item, Mapping) else None
            items.append({**item, kind[:-1]: _absolutize_body(kind, body, base_dir)} if isinstance(body, Mapping) else item)
        if kind in doc:
            out[kind] = items
    return out


def merge(docs: Sequence[object]) -> dict[str, Any]:
    """One document from several, earlier documents winning per name and for current-context."""
    merged: dict[str, Any] = {kind: [] for kind in _NAMED}
    seen: dict[str, set[str]] = {kind: set() for kind in _NAMED}
    for doc in docs:
        if not isinstance(doc, Mapping):
            continue
        if not merged.get("current-context") and doc.get("current-context"):
            merged["current-context"] = doc["current-context"]
        for kind in _NAMED:
            for item in doc.get(kind) or ():
                name = item.get("name") if isinstance(item, Mapping) else None
                if isinstance(name, str) and name not in seen[kind]:
                    seen[kind].add(name)
                    merged[kind].append(item)
    return merged
