"""Kubeconfig documents for simulated clusters: one per cluster, and one merged with a context each."""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gateway.sim.tls import KeyPair


@dataclass(frozen=True)
class Entry:
    cluster: str
    server: str
    ca_pem: bytes
    user: str
    credentials: Mapping[str, str] = field(repr=False)
    namespace: str = "default"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def client_cert_user(pair: KeyPair) -> dict[str, str]:
    return {"client-certificate-data": _b64(pair.cert_pem), "client-key-data": _b64(pair.key_pem)}


def document(entries: Sequence[Entry]) -> dict[str, Any]:
    """A kubeconfig whose contexts are named after the clusters; the first is current."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [
            {"name": e.cluster, "cluster": {"server": e.server, "certificate-authority-data": _b64(e.ca_pem)}}
            for e in entries
        ],
        "users": [{"name": e.user, "user": dict(e.credentials)} for e in entries],
        "contexts": [
            {"name": e.cluster, "context": {"cluster": e.cluster, "user": e.user, "namespace": e.namespace}}
            for e in entries
        ],
        "current-context": entries[0].cluster if entries else "",
    }


def write(path: Path, doc: Mapping[str, Any]) -> None:
    """Writes atomically with mode 0600: the file holds credentials."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(dict(doc), f, sort_keys=False)
    os.replace(tmp, path)
