"""Cluster registration files (GitOps): YAML into `ClusterSpec`s, every problem reported per cluster.

`parse_document` is pure (data already loaded from YAML); `load_files` is the thin reader around it.
Credentials are references only: anything that looks like an inline secret is refused. Whether a
reference resolves (the file exists, the variable is set) is asked of `check_credentials`, a separate
function with injectable environment and file test, so parsing stays pure.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from gateway.credentials import aks, eks, gke, in_cluster, kubeconfig, sim
from gateway.domain import PROVIDERS, ClusterSpec, CredentialsRef, Taint, TaintEffect
from gateway.errors import FieldViolation, InvalidArgument
from gateway.placement.labels import dns1123_label_error, label_key_error, label_value_error

API_VERSION = "podgate.io/v1"
WEIGHT_RANGE = (1, 1000)
# YAML key of each credentials source -> (CredentialsRef.source, the parameters its provider accepts)
SOURCES: Mapping[str, tuple[str, frozenset[str]]] = {
    "sim": ("sim", sim.KEYS),
    "kubeconfig": ("kubeconfig", kubeconfig.KEYS),
    "inCluster": ("in-cluster", in_cluster.KEYS),
    "eks": ("eks", eks.KEYS),
    "gke": ("gke", gke.KEYS),
    "aks": ("aks", aks.KEYS),
}
_YAML_KEY = {source: key for key, (source, _) in SOURCES.items()}
_REQUIRED = {"eks": ("region",), "gke": ("project", "location")}
_FILE_PARAMS = {"path", "keyFile", "caFile", "tokenFile", "authorityCaFile"}
_ENV_PARAMS = {"envVar", "clientSecretEnv"}
_SECRET_WORDS = (
    "token",
    "password",
    "passwd",
    "secret",
    "keydata",
    "privatekey",
    "certdata",
    "certificatedata",
    "accesskey",
    "apikey",
    "bearer",
)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Looser than a cluster name: Airflow connection ids such as "k8s_conn" must fit.
ALIAS = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")
_TAINT = re.compile(r"(?P<key>[^=:]+)(?:=(?P<value>[^:]*))?:(?P<effect>\w+)")
_FIELDS = {
    "name",
    "provider",
    "credentials",
    "region",
    "zone",
    "labels",
    "taints",
    "allowedNamespaces",
    "maxConcurrentPods",
    "weight",
    "issuedServer",
    "aliases",
    "sim",
}
_CAMEL = {
    "allowed_namespaces": "allowedNamespaces",
    "max_concurrent_pods": "maxConcurrentPods",
    "issued_server": "issuedServer",
}


@dataclass(frozen=True)
class ClusterFileError:
    file: str
    cluster: str  # the cluster's name, or "#<index>" when it has none
    field: str
    message: str

    def __str__(self) -> str:
        where = f"cluster {self.cluster}" + (f", field {self.field}" if self.field else "")
        return f"{self.file}: {where}: {self.message}"


@dataclass(frozen=True)
class LoadResult:
    """Clusters that loaded, and one error per problem of those that did not."""

    clusters: tuple[ClusterSpec, ...] = ()
    errors: tuple[ClusterFileError, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors

    def __add__(self, other: LoadResult) -> LoadResult:
        return LoadResult(self.clusters + other.clusters, self.errors + other.errors)


# --- semantic checks on a ClusterSpec (shared by files and the API) -------------------------


def _looks_secret(key: str) -> bool:
    folded = re.sub(r"[^a-z]", "", key.lower())
    return any(word in folded for word in _SECRET_WORDS)


def credentials_violations(ref: CredentialsRef) -> list[tuple[str, str]]:
    """(field, problem) pairs for a credentials reference; fields are params keys under the source."""
    if ref.source not in _YAML_KEY:
        return [("credentials", f"unknown credentials source {ref.source!r}; one of {', '.join(sorted(SOURCES))}")]
    _, allowed = SOURCES[_YAML_KEY[ref.source]]
    out: list[tuple[str, str]] = []
    for key, raw in ref.params.items():
        value: object = raw  # YAML may give any type despite the annotation
        if key not in allowed:
            if _looks_secret(key):
                out.append(
                    (
                        key,
                        "looks like an inline secret: cluster registrations never hold secrets; "
                        "put it in a file or an environment variable and reference that",
                    )
                )
            else:
                out.append((key, f"unknown {ref.source} credentials key; allowed: {', '.join(sorted(allowed))}"))
        elif not isinstance(value, str):
            out.append((key, f"must be a string, got {type(value).__name__}"))
        elif key in _ENV_PARAMS and not _ENV_NAME.fullmatch(value):
            out.append(
                (
                    key,
                    f"must name an environment variable (letters, digits, '_'), got a value of {len(value)} characters",
                )
            )
    for key in _REQUIRED.get(ref.source, ()):
        if not str(ref.params.get(key) or "").strip():
            out.append((key, f"required for {ref.source} credentials"))
    if ref.source == "kubeconfig" and bool(ref.params.get("path")) == bool(ref.params.get("envVar")):
        out.append(("", "kubeconfig credentials need exactly one of path or envVar"))
    return out


def server_url_error(url: str) -> str:
    """Why `url` cannot be a kubeconfig's `server` (an https URL with a host, no query or fragment), or ""."""
    if len(url) > 2048:
        return "must be at most 2048 characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        return f"{url[:100]!r} is not a URL"
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment or parts.username:
        return f"must be an https URL of the API server (https://host[:port][/path]), got {url[:100]!r}"
    return ""


def spec_violations(spec: ClusterSpec) -> list[tuple[str, str]]:
    """(field, problem) pairs; field names are snake_case ClusterSpec fields, "" for the whole cluster."""
    out: list[tuple[str, str]] = []
    if error := dns1123_label_error(spec.name):
        out.append(("name", f"cluster name {error}"))
    if spec.provider not in PROVIDERS:
        out.append(("provider", f"unknown provider {spec.provider!r}; one of {', '.join(sorted(PROVIDERS))}"))
    if not spec.region:
        out.append(("region", "required: the cluster's region (placement's data-residency constraint)"))
    for name, value in (("region", spec.region), ("zone", spec.zone)):
        if value and (error := label_value_error(value)):
            out.append((name, error))
    for key, value in spec.labels.items():
        if error := label_key_error(key) or label_value_error(value):
            out.append((f"labels[{key}]", error))
    for i, taint in enumerate(spec.taints):
        if error := label_key_error(taint.key) or label_value_error(taint.value):
            out.append((f"taints[{i}]", f"taint {taint}: {error}"))
    for ns in sorted(spec.allowed_namespaces):
        if ns != "*" and (error := dns1123_label_error(ns)):
            out.append(("allowed_namespaces", f"namespace {error}"))
    if spec.max_concurrent_pods < 0:
        out.append(("max_concurrent_pods", "must be 0 (unlimited) or more"))
    for alias in spec.aliases:
        if not ALIAS.fullmatch(alias):
            out.append(("aliases", f"alias {alias!r}: use 1..253 characters of letters, digits and ._-"))
        elif alias == spec.name:
            out.append(("aliases", f"alias {alias!r} is the cluster's own name"))
    if not WEIGHT_RANGE[0] <= spec.weight <= WEIGHT_RANGE[1]:
        out.append(("weight", f"must be between {WEIGHT_RANGE[0]} and {WEIGHT_RANGE[1]}, got {spec.weight}"))
    if spec.issued_server and (error := server_url_error(spec.issued_server)):
        out.append(("issued_server", error))
    source = _YAML_KEY.get(spec.credentials.source, spec.credentials.source)
    out.extend(
        (f"credentials.{source}" + (f".{k}" if k else ""), m) for k, m in credentials_violations(spec.credentials)
    )
    return out


def check_spec(spec: ClusterSpec) -> None:
    """InvalidArgument listing every problem of a cluster registered through the API."""
    violations = [FieldViolation(f"cluster.{f}" if f else "cluster", m) for f, m in spec_violations(spec)]
    if violations:
        raise InvalidArgument(
            f"invalid cluster {spec.name!r}: {violations[0].field}: {violations[0].description}", violations
        )


# --- YAML data -> ClusterSpec --------------------------------------------------------------


class _Problems(list[tuple[str, str]]):
    def add(self, field: str, message: str) -> None:
        self.append((field, message))


def _string(entry: Mapping[str, Any], key: str, p: _Problems, *, required: bool = False) -> str:
    value = entry.get(key)
    if value is None:
        if required:
            p.add(key, "required")
        return ""
    if not isinstance(value, str):
        p.add(key, f"must be a string, got {type(value).__name__} {value!r} (quote it in YAML)")
        return ""
    return value


def _int(entry: Mapping[str, Any], key: str, default: int, p: _Problems) -> int:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        p.add(key, f"must be an integer, got {value!r}")
        return default
    return value


def _labels(raw: Any, p: _Problems) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        p.add("labels", "must be a mapping of label key to value")
        return {}
    out = {}
    for key, value in raw.items():
        if isinstance(key, str) and isinstance(value, str):
            out[key] = value
        else:
            p.add(f"labels[{key}]", f"keys and values must be strings, got {value!r} (quote it in YAML)")
    return out


def parse_taint(raw: Any) -> Taint:
    """`key=value:Effect`, `key:Effect` or a {key, value, effect} mapping; ValueError saying which form."""
    if isinstance(raw, str):
        match = _TAINT.fullmatch(raw.strip())
        if match is None:
            raise ValueError(f"taint {raw!r} is not key=value:Effect or key:Effect")
        key, value, effect = match["key"], match["value"] or "", match["effect"]
    elif isinstance(raw, Mapping):
        key, value, effect = raw.get("key", ""), raw.get("value", ""), raw.get("effect", TaintEffect.NO_SELECT)
        if not all(isinstance(x, str) for x in (key, value, effect)):
            raise ValueError(f"taint {dict(raw)!r}: key, value and effect must be strings")
    else:
        raise ValueError(f"taint {raw!r} must be a string key=value:Effect or a mapping")
    try:
        return Taint(key=key, value=value, effect=TaintEffect(effect))
    except ValueError:
        raise ValueError(f"taint effect {effect!r} must be NoSelect or PreferNoSelect") from None


def _taints(raw: Any, p: _Problems) -> tuple[Taint, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        p.add("taints", "must be a list")
        return ()
    out = []
    for i, item in enumerate(raw):
        try:
            out.append(parse_taint(item))
        except ValueError as e:
            p.add(f"taints[{i}]", str(e))
    return tuple(out)


def _namespaces(raw: Any, p: _Problems) -> frozenset[str]:
    if raw is None or raw == []:
        return frozenset({"default"})
    if not isinstance(raw, list) or not all(isinstance(n, str) for n in raw):
        p.add("allowedNamespaces", "must be a list of namespace names")
        return frozenset({"default"})
    return frozenset(raw)


def _credentials(raw: Any, provider: str, p: _Problems) -> CredentialsRef:
    if raw is None and provider in ("sim", "in-cluster"):
        return CredentialsRef(source=provider)
    if not isinstance(raw, Mapping) or len(raw) != 1:
        p.add("credentials", f"must be a mapping with exactly one source: {', '.join(SOURCES)}")
        return CredentialsRef(source="")
    [(key, params)] = raw.items()
    if key not in SOURCES:
        p.add("credentials", f"unknown credentials source {key!r}; one of {', '.join(SOURCES)}")
        return CredentialsRef(source="")
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        p.add(f"credentials.{key}", "must be a mapping of parameters")
        params = {}
    return CredentialsRef(source=SOURCES[key][0], params=dict(params))


def parse_cluster(entry: Any, *, source: str) -> tuple[ClusterSpec | None, list[tuple[str, str]]]:
    """One cluster entry: the spec, or None and its (field, problem) pairs."""
    if not isinstance(entry, Mapping):
        return None, [("", "must be a mapping of cluster fields")]
    p = _Problems()
    p.extend((str(k), _unknown_field(str(k))) for k in entry if k not in _FIELDS)
    provider = _string(entry, "provider", p, required=True)
    spec = ClusterSpec(
        name=_string(entry, "name", p, required=True),
        provider=provider,
        credentials=_credentials(entry.get("credentials"), provider, p),
        region=_string(entry, "region", p, required=True),
        zone=_string(entry, "zone", p),
        labels=_labels(entry.get("labels"), p),
        taints=_taints(entry.get("taints"), p),
        allowed_namespaces=_namespaces(entry.get("allowedNamespaces"), p),
        max_concurrent_pods=_int(entry, "maxConcurrentPods", 0, p),
        weight=_int(entry, "weight", 100, p),
        issued_server=_string(entry, "issuedServer", p),
        source=source,
        aliases=_aliases(entry.get("aliases"), p),
    )
    if not p:  # semantic checks only once the shapes are right, so each problem is reported once
        p.extend((_camel(f), m) for f, m in spec_violations(spec))
    return (None if p else spec), list(p)


def _unknown_field(key: str) -> str:
    close = difflib.get_close_matches(key, sorted(_FIELDS), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown field{hint} (known: {', '.join(sorted(_FIELDS))})"


def _aliases(raw: Any, p: _Problems) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(a, str) for a in raw):
        p.add("aliases", "must be a list of names (e.g. Airflow connection ids)")
        return ()
    return tuple(raw)


def _camel(field: str) -> str:
    head, dot, rest = field.partition(".")
    return _CAMEL.get(head, head) + dot + rest


def _entries(data: Any) -> tuple[list[Any], str]:
    """The cluster entries of one YAML document, or an error for the document as a whole."""
    if not isinstance(data, Mapping):
        return [], "a cluster file must be a mapping with apiVersion, kind and clusters"
    if data.get("apiVersion") != API_VERSION:
        return [], f"apiVersion must be {API_VERSION}, got {data.get('apiVersion')!r}"
    kind = data.get("kind")
    if kind == "ClusterList":
        clusters = data.get("clusters")
        if not isinstance(clusters, list):
            return [], "kind ClusterList needs a list under clusters:"
        return clusters, ""
    if kind == "Cluster":
        return [{k: v for k, v in data.items() if k not in ("apiVersion", "kind")}], ""
    return [], f"kind must be ClusterList or Cluster, got {kind!r}"


def parse_document(data: Any, *, source: str, taken: Iterable[str] = ()) -> LoadResult:
    """Clusters of one loaded YAML document; names in `taken` (loaded earlier) are duplicates."""
    entries, problem = _entries(data)
    if problem:
        return LoadResult(errors=(ClusterFileError(source, "", "", problem),))
    seen = set(taken)
    specs: list[ClusterSpec] = []
    errors: list[ClusterFileError] = []
    for i, entry in enumerate(entries):
        spec, problems = parse_cluster(entry, source=source)
        raw_name = entry.get("name") if isinstance(entry, Mapping) else None
        label = raw_name if isinstance(raw_name, str) and raw_name else f"#{i}"
        if spec is not None and spec.name in seen:
            problems = [
                ("name", f"duplicate cluster name {spec.name!r}: already registered by an earlier entry or file")
            ]
        errors.extend(ClusterFileError(source, label, f, m) for f, m in problems)
        if spec is not None and not problems:
            specs.append(spec)
            seen.add(spec.name)
    return LoadResult(tuple(specs), tuple(errors))


# --- resolving references (injectable I/O) -------------------------------------------------


def _default_is_file(path: str) -> bool:
    return os.path.isfile(os.path.expanduser(path))


def check_credentials(
    spec: ClusterSpec,
    *,
    environ: Mapping[str, str] | None = None,
    is_file: Callable[[str], bool] = _default_is_file,
) -> list[tuple[str, str]]:
    """(field, problem) pairs for references that do not resolve: missing files, unset variables."""
    env = os.environ if environ is None else environ
    params, source = spec.credentials.params, _YAML_KEY.get(spec.credentials.source, spec.credentials.source)
    out = []
    for key, value in params.items():
        where = f"credentials.{source}.{key}"
        if key in _FILE_PARAMS and value and not is_file(value):
            out.append((where, f"file {value!r} does not exist or is not a file"))
        elif key in _ENV_PARAMS and value and not env.get(value):
            out.append((where, f"environment variable {value!r} is not set or empty"))
    if spec.credentials.source == "in-cluster":
        token = f"{params.get('tokenDir') or in_cluster.DEFAULT_TOKEN_DIR}/token"
        if not is_file(token):
            out.append(
                (f"credentials.{source}.tokenDir", f"no service account token at {token!r} (not running in a pod?)")
            )
    return out


def resolve(
    result: LoadResult, check: Callable[[ClusterSpec], list[tuple[str, str]]] = check_credentials
) -> LoadResult:
    """Moves clusters whose credentials do not resolve from `clusters` to `errors`."""
    kept: list[ClusterSpec] = []
    errors = list(result.errors)
    for spec in result.clusters:
        problems = check(spec)
        errors.extend(ClusterFileError(spec.source, spec.name, f, m) for f, m in problems)
        if not problems:
            kept.append(spec)
    return LoadResult(tuple(kept), tuple(errors))


# --- reading files --------------------------------------------------------------------------


def _files(paths: Sequence[str | Path]) -> list[Path]:
    out: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")))
        else:
            out.append(path)
    return out


def load_files(
    paths: Sequence[str | Path],
    *,
    taken: Iterable[str] = (),
    check: Callable[[ClusterSpec], list[tuple[str, str]]] | None = check_credentials,
) -> LoadResult:
    """Loads files (a directory means its *.yaml files, in name order); `check=None` skips resolution."""
    result = LoadResult()
    names = set(taken)
    for path in _files(paths):
        try:
            documents = list(yaml.safe_load_all(path.read_text()))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            result += LoadResult(errors=(ClusterFileError(str(path), "", "", f"cannot read: {e}"),))
            continue
        for data in documents:
            if data is None:
                continue
            loaded = parse_document(data, source=str(path), taken=names)
            names.update(s.name for s in loaded.clusters)
            result += loaded
    return resolve(result, check) if check is not None else result
