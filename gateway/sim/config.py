"""Reads the simulator's side of a cluster file (e.g. clusters/local.yaml): each entry's `sim:` block.

The simulator reads its own view of the file and nothing of the gateway's parser: it is a separate
world. Per cluster it takes the name, region/zone (for node topology labels), allowedNamespaces (created
at start), and the `sim:` block:

    sim:
      nodes:                 # name, labels, taints, allocatable; runtime: process (default) | virtual
        - {name: n1, labels: {...}, taints: [...], allocatable: {cpu: "8", memory: 32Gi}, runtime: virtual}
      runtime: {...}         # handed as-is to the kubelet (default command, missing images, ...)
      users:                 # static identities with bearer tokens, namespaces/resources/verbs ("*" = all)
        - {name: reader, token: s3cret, groups: [], namespaces: [default], resources: [pods], verbs: [get, list]}
      port: 0                # fixed HTTPS port, 0 = any free port
      bookmarkSeconds: 60    # how often watches that allow bookmarks get one
      http2: true            # offer h2 in ALPN (kube-apiserver does); false: HTTP/1.1 only
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_RUNTIMES = ("process", "virtual")


class SimConfigError(ValueError):
    """A cluster file the simulator cannot use; the message names the file, cluster and field."""


@dataclass(frozen=True)
class NodeSpec:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Mapping[str, str], ...] = ()
    allocatable: Mapping[str, str] = field(default_factory=dict)
    runtime: str = "process"


@dataclass(frozen=True)
class UserSpec:
    """A static identity. `namespaces`, `resources`, `verbs` of ("*",) mean all."""

    name: str
    token: str = field(repr=False)
    groups: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ("*",)
    resources: tuple[str, ...] = ("*",)
    verbs: tuple[str, ...] = ("*",)


@dataclass(frozen=True)
class SimClusterSpec:
    name: str
    region: str = ""
    zone: str = ""
    namespaces: tuple[str, ...] = ("default",)
    nodes: tuple[NodeSpec, ...] = ()
    users: tuple[UserSpec, ...] = ()
    runtime: Mapping[str, Any] = field(default_factory=dict)
    port: int = 0
    bookmark_seconds: float = 60.0
    http2: bool = True  # offer h2 in ALPN (kube-apiserver does); False: HTTP/1.1 only, as behind many proxies


@dataclass(frozen=True)
class SimConfig:
    clusters: tuple[SimClusterSpec, ...]


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SimConfigError(f"{where}: expected a list of strings, got {value!r}")
    return tuple(value)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SimConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _node(raw: Any, where: str) -> NodeSpec:
    raw = _mapping(raw, where)
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise SimConfigError(f"{where}: a node needs a name")
    runtime = raw.get("runtime", "process")
    if runtime not in _RUNTIMES:
        raise SimConfigError(f"{where}.runtime: {runtime!r} is not one of {', '.join(_RUNTIMES)}")
    taints = raw.get("taints") or []
    if not isinstance(taints, list) or not all(isinstance(t, dict) and "key" in t for t in taints):
        raise SimConfigError(f"{where}.taints: expected a list of {{key, value, effect}}")
    return NodeSpec(
        name=name,
        labels={str(k): str(v) for k, v in _mapping(raw.get("labels"), f"{where}.labels").items()},
        taints=tuple({str(k): str(v) for k, v in t.items()} for t in taints),
        allocatable={str(k): str(v) for k, v in _mapping(raw.get("allocatable"), f"{where}.allocatable").items()},
        runtime=runtime,
    )


def _user(raw: Any, where: str) -> UserSpec:
    raw = _mapping(raw, where)
    name, token = raw.get("name"), raw.get("token")
    if not isinstance(name, str) or not name or not isinstance(token, str) or not token:
        raise SimConfigError(f"{where}: a user needs a name and a token")
    return UserSpec(
        name=name,
        token=token,
        groups=_strings(raw.get("groups"), f"{where}.groups"),
        namespaces=_strings(raw.get("namespaces", "*"), f"{where}.namespaces"),
        resources=_strings(raw.get("resources", "*"), f"{where}.resources"),
        verbs=_strings(raw.get("verbs", "*"), f"{where}.verbs"),
    )


def cluster_from_dict(raw: Mapping[str, Any], where: str = "cluster") -> SimClusterSpec:
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise SimConfigError(f"{where}: a cluster needs a name")
    where = f"{where} {name}"
    sim = _mapping(raw.get("sim"), f"{where}.sim")
    nodes = sim.get("nodes") or []
    users = sim.get("users") or []
    if not isinstance(nodes, list) or not isinstance(users, list):
        raise SimConfigError(f"{where}.sim: nodes and users must be lists")
    namespaces = ("default", *(n for n in _strings(raw.get("allowedNamespaces"), where) if n != "default"))
    return SimClusterSpec(
        name=name,
        region=str(raw.get("region", "")),
        zone=str(raw.get("zone", "")),
        namespaces=namespaces,
        nodes=tuple(_node(n, f"{where}.sim.nodes[{i}]") for i, n in enumerate(nodes)),
        users=tuple(_user(u, f"{where}.sim.users[{i}]") for i, u in enumerate(users)),
        runtime=_mapping(sim.get("runtime"), f"{where}.sim.runtime"),
        port=int(sim.get("port", 0)),
        bookmark_seconds=float(sim.get("bookmarkSeconds", 60.0)),
        http2=bool(sim.get("http2", True)),
    )


def parse(document: Mapping[str, Any], source: str = "<config>") -> SimConfig:
    """The clusters of a cluster file that have a `sim:` block (real clusters have none)."""
    clusters = document.get("clusters")
    if not isinstance(clusters, list):
        raise SimConfigError(f"{source}: expected a top-level 'clusters' list")
    specs = tuple(
        cluster_from_dict(c, f"{source}: clusters[{i}]")
        for i, c in enumerate(clusters)
        if isinstance(c, dict) and "sim" in c
    )
    names = [c.name for c in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SimConfigError(f"{source}: duplicate cluster names: {', '.join(duplicates)}")
    return SimConfig(specs)


def load(path: str | Path) -> SimConfig:
    try:
        document = yaml.safe_load(Path(path).read_text())
    except OSError as e:
        raise SimConfigError(f"cannot read simulator config {path}: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise SimConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(document, dict):
        raise SimConfigError(f"{path}: expected a mapping with a 'clusters' list")
    return parse(document, str(path))
