"""Cluster registration files for `podgate clusters register`: YAML into the client's Cluster values.

The gateway's own loader (gateway/clusters/files.py) reads the same files for `serve --clusters`, but it pulls
in every credentials provider, which the CLI must not need. This reader checks shapes only (the gateway checks
meaning and answers with field violations); tests/unit/test_cli_registration.py holds the two to the same
field names. Every problem is a one-line CommandError naming the file, the cluster and the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.client import types as t
from gateway.commands.common import CommandError, did_you_mean

API_VERSION = "podgate.io/v1"
FIELDS = frozenset({
    "name", "provider", "credentials", "region", "zone", "labels", "taints", "allowedNamespaces",
    "maxConcurrentPods", "weight", "aliases", "issuedServer", "sim",
})  # fmt: skip
SIM_KUBECONFIG_DIR = ".podgate/kubeconfigs"


def _load(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as e:
        raise CommandError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        import yaml
    except ImportError:
        raise CommandError("reading cluster files needs PyYAML: pip install pyyaml") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise CommandError(f"{path} is not valid YAML{where}: {problem}") from None


def entries_of(document: Any, path: Path) -> list[Mapping[str, Any]]:
    if not isinstance(document, Mapping):
        raise CommandError(f"{path}: a cluster file is a mapping with apiVersion, kind and a cluster or clusters")
    if document.get("apiVersion") != API_VERSION:
        raise CommandError(f"{path}: apiVersion must be {API_VERSION}, got {document.get('apiVersion')!r}")
    kind = document.get("kind")
    if kind == "Cluster":
        return [{k: v for k, v in document.items() if k not in ("apiVersion", "kind")}]
    if kind == "ClusterList":
        clusters = document.get("clusters")
        if not isinstance(clusters, list) or not all(isinstance(c, Mapping) for c in clusters):
            raise CommandError(f"{path}: kind ClusterList needs a list of clusters under clusters:")
        return clusters
    raise CommandError(f"{path}: kind must be Cluster or ClusterList, got {kind!r}")


def _unknown_keys(entry: Mapping[str, Any], where: str) -> None:
    for key in entry:
        if key not in FIELDS:
            raise CommandError(
                f"{where}: unknown key {key!r}." + did_you_mean(str(key), FIELDS) + f" Known: {', '.join(sorted(FIELDS))}"
            )


def _credentials(raw: Any, name: str, where: str) -> dict[str, Any]:
    """The file's credentials in the API's JSON form: the simulator's `path` is `kubeconfigPath` there, and
    `kubeconfigDir` (the file loader's default location) is resolved to the kubeconfig the simulator wrote."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise CommandError(f"{where}: credentials must be a mapping with exactly one source")
    [(source, params)] = raw.items()
    params = dict(params or {})
    if source == "sim":
        unknown = set(params) - {"path", "kubeconfigDir"}
        if unknown:
            raise CommandError(f"{where}: credentials.sim.{sorted(unknown)[0]}: only path or kubeconfigDir")
        directory = params.get("kubeconfigDir") or SIM_KUBECONFIG_DIR
        path = params.get("path") or str(Path(directory) / f"{name}.kubeconfig")
        return {"sim": {"kubeconfigPath": path}}
    return {source: params}


def _taint(value: Any, where: str) -> t.Taint:
    if isinstance(value, Mapping):
        return t.Taint(key=str(value.get("key", "")), value=str(value.get("value", "")),
                       effect=str(value.get("effect", "NoSelect")))  # fmt: skip
    if not isinstance(value, str):
        raise CommandError(f"{where}: a taint is key=value:Effect or a mapping, got {value!r}")
    keyvalue, _, effect = value.partition(":")
    key, _, val = keyvalue.partition("=")
    return t.Taint(key=key, value=val, effect=effect or "NoSelect")


def _strings(value: Any, key: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CommandError(f"{where}: {key} must be a list of strings")
    return tuple(value)


def _int(entry: Mapping[str, Any], key: str, default: int, where: str) -> int:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise CommandError(f"{where}: {key} must be an integer, got {value!r}")
    return value


def cluster_of(entry: Mapping[str, Any], path: Path, index: int) -> t.Cluster:
    name = entry.get("name")
    where = f"{path}: cluster {name if isinstance(name, str) and name else f'#{index}'}"
    _unknown_keys(entry, where)
    for key in ("name", "provider", "region"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise CommandError(f"{where}: {key} is required (a string)")
    labels = entry.get("labels") or {}
    if not isinstance(labels, Mapping):
        raise CommandError(f"{where}: labels must be a mapping")
    return t.Cluster(
        name=entry["name"],
        provider=entry["provider"],
        region=entry["region"],
        credentials=_credentials(entry.get("credentials"), entry["name"], where),
        zone=str(entry.get("zone") or ""),
        labels={str(k): str(v) for k, v in labels.items()},
        taints=tuple(_taint(x, where) for x in entry.get("taints") or ()),
        allowed_namespaces=_strings(entry.get("allowedNamespaces"), "allowedNamespaces", where),
        max_concurrent_pods=_int(entry, "maxConcurrentPods", 0, where),
        weight=_int(entry, "weight", 100, where),
        aliases=_strings(entry.get("aliases"), "aliases", where),
        issued_server=str(entry.get("issuedServer") or ""),
    )


def clusters_of_file(path: Path) -> list[t.Cluster]:
    """Registrations from a cluster file (the `sim:` block, read by the simulator, is left out)."""
    return [cluster_of(e, path, i) for i, e in enumerate(entries_of(_load(path), path))]
