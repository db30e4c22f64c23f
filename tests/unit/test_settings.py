"""The gateway settings: the example loads, every bad key is named, environment overrides, tenants files, reloads."""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.cli import build_parser
from gateway.credentials.issuing import KubeconfigAccess
from gateway.placement.selectors import format_selector
from gateway.policy.identity import Credentials, new_token
from gateway.policy.pod_security import Level
from gateway.policy.tenants import ANY
from gateway.settings import (
    ENV_OVERRIDES,
    ConfigError,
    LiveSettings,
    ServerSettings,
    Settings,
    describe_listener,
    env_name,
    listener_problems,
    load_settings,
    missing_files,
    parse_settings,
)
from gateway.settings.overrides import SCALARS
from gateway.store.engine import DEFAULT_SQLITE_SYNCHRONOUS, SQLITE_SYNCHRONOUS

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "podgate.yaml"
GiB = 2**30


def example_raw() -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return raw


def test_the_example_loads_with_every_section() -> None:
    settings = load_settings(EXAMPLE, env={})
    assert settings.server.listen == "0.0.0.0:50051" and settings.server.gateway_id == "podgate-eu"
    assert settings.clusters.files == (EXAMPLE.parent / "../clusters/local.yaml",)
    assert settings.tls.enabled and settings.tls.client_ca_file == Path("/etc/podgate/tls/clients-ca.crt")
    assert (settings.logging.format, settings.metrics.listen, settings.placement.strategy) == (
        "json",
        "0.0.0.0:9090",
        "least-loaded",
    )
    assert settings.limits.log_line_bytes == 65536
    oidc = settings.authentication.oidc
    assert oidc is not None and oidc.groups_claim == "groups"
    assert [t.id for t in settings.authentication.static_tokens] == ["ci-bot", "ops-cli"]
    ml = settings.tenants.tenants["ml"]
    assert ml.clusters == {"local-eu-cpu"} and format_selector(ml.cluster_selector) == "accelerator in (nvidia)"
    assert ml.pod_caps.cpu_millis == 16000 and ml.pod_caps.memory_bytes == 64 * GiB and ml.total_caps.gpus == 8
    assert ml.kubeconfig.allowed and ml.kubeconfig.max_access is KubeconfigAccess.VIEW
    assert ml.rate_limit.per_second == 5 and ml.rate_limit.burst == 20
    assert ml.cert_names == {"airflow-ml.workers.internal"} and ml.oidc_groups == {"ml-engineers"}
    analytics = settings.tenants.tenants["analytics"]
    assert analytics.pod_security.level is Level.RESTRICTED
    assert analytics.pod_security.exceptions == {"running-as-non-root"}
    assert settings.tenants.tenants["ops"].admin and settings.tenants.tenants["ops"].regions == {ANY}
    assert settings.auth_enabled
    principal = settings.authenticator().authenticate(Credentials(cert_names=("ops.podgate.internal",)))
    assert principal.tenant == "ops"
    assert "scrypt$" not in repr(settings)


def test_missing_files_name_their_keys() -> None:
    settings = load_settings(EXAMPLE, env={})
    assert missing_files(settings) == [
        "tls.cert_file: /etc/podgate/tls/tls.crt does not exist",
        "tls.key_file: /etc/podgate/tls/tls.key does not exist",
        "tls.client_ca_file: /etc/podgate/tls/clients-ca.crt does not exist",
    ]


def test_an_empty_config_is_the_open_loopback_default() -> None:
    settings = parse_settings(None)
    assert settings == Settings() and not settings.auth_enabled and not settings.tls.enabled


def edit(path: str, value: Any) -> dict[str, Any]:
    """The example with one key set (or removed when value is ...); path like "tenants.0.regions"."""
    raw = copy.deepcopy(example_raw())
    *parents, last = path.split(".")
    node: Any = raw
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    key: Any = int(last) if isinstance(node, list) else last
    if value is ...:
        del node[key]
    else:
        node[key] = value
    return raw


BAD = [
    ("server.listen", "nowhere", "server.listen: must be host:port"),
    ("clusters.probe_interval_seconds", "soon", "clusters.probe_interval_seconds: must be a non-negative number"),
    ("placement.strategy", "random", "placement.strategy: must be one of least-loaded, bin-packing"),
    ("logging.format", "xml", "logging.format: must be one of text, json"),
    ("server.event_loop", "fast", "server.event_loop: must be one of auto, uvloop, asyncio"),
    ("database.sqlite_synchronous", "off", "database.sqlite_synchronous: must be one of normal, full, got 'off'"),
    ("kubeconfig.max_ttl_seconds", 60, "kubeconfig.max_ttl_seconds: at least 600"),
    ("tls.key_file", ..., "tls: cert_file and key_file go together"),
    ("tls.require_client_cert", "maybe", "tls.require_client_cert: must be true or false"),
    ("limits.containers", 0, "limits: containers must be a positive integer"),
    ("limits.env_vars", 3, "limits.env_vars: unknown key"),
    ("colour", "blue", "colour: unknown key"),
    ("tenants.0.regions.1", 7, "tenants[0].regions[1]: must be a non-empty string"),
    ("tenants.0.namespaces", ["ML"], "tenants[0].namespaces[0]: namespace name 'ML' is not a DNS-1123 label"),
    ("tenants.0.namespace", ["ml"], "tenants[0].namespace: unknown key"),
    ("tenants.1.name", "ml", "tenants[1].name: duplicate tenant 'ml'"),
    ("tenants.1.name", ..., "tenants[1].name: required"),
    ("tenants.0.cluster_selector", "gpu in (", "tenants[0].cluster_selector: 'gpu in ('"),
    ("tenants.0.pod_caps.memory", "lots", "tenants[0].pod_caps.memory: 'lots' is not a quantity"),
    ("tenants.0.kubeconfig.max_access", "admin", "tenants[0].kubeconfig.max_access: must be one of view, edit"),
    ("tenants.0.pod_security.level", "privileged", "tenants[0].pod_security.level: must be one of baseline, restricted"),
    ("tenants.0.pod_security.exceptions", ["privileged", "nope"], "tenants[0].pod_security.exceptions[1]: unknown control 'nope'"),
    ("tenants.0.rate_limit.per_second", -1, "tenants[0].rate_limit.per_second: must be a non-negative number"),
    ("tenants.0.max_concurrent_pods", "many", "tenants[0].max_concurrent_pods: must be a non-negative integer"),
    ("tenants", {"ml": {}}, "tenants: must be a list of tenants"),
    ("authentication.static_tokens.0.tenant", "nobody", "authentication.static_tokens[0].tenant: no tenant named 'nobody'"),
    ("authentication.static_tokens.1.id", "ci-bot", "authentication.static_tokens[1].id: duplicate token id 'ci-bot'"),
    ("authentication.static_tokens.0.hash", "plaintext-secret", "authentication.static_tokens[0].hash: expected scrypt$"),
    ("authentication.oidc.jwks_url", "http://idp/jwks", "authentication.oidc.jwks_url: must be an https:// URL"),
    ("authentication.oidc.audience", ..., "authentication.oidc.audience: required when oidc is configured"),
    ("authentication.oidc", ..., "tenants[0].identities.oidc_groups: set, but authentication.oidc is not configured"),
    ("kubeconfig.max_ttl_seconds", 1800, "tenants[0].kubeconfig.max_ttl_seconds: 3600 exceeds the gateway's"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "value", "problem"), BAD, ids=[f"{p}={v!r}" for p, v, _ in BAD])
def test_each_problem_names_its_key(path: str, value: Any, problem: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_settings(edit(path, value))
    assert any(p.startswith(problem) for p in e.value.problems), e.value.problems
    assert "plaintext-secret" not in str(e.value)


def test_every_problem_at_once() -> None:
    raw = edit("server.listen", "nowhere")
    raw["tenants"][0]["regions"] = [1]
    raw["logging"]["format"] = "xml"
    with pytest.raises(ConfigError, match="3 configuration problem") as e:
        parse_settings(raw)
    assert len(e.value.problems) == 3


@pytest.mark.parametrize(
    ("env", "check"),
    [
        ({"PODGATE_SERVER_LISTEN": "127.0.0.1:6000"}, lambda s: s.server.listen == "127.0.0.1:6000"),
        ({"PODGATE_TLS_REQUIRE_CLIENT_CERT": "true"}, lambda s: s.tls.require_client_cert),
        ({"PODGATE_LIMITS_REQUEST_BYTES": "8388608"}, lambda s: s.limits.request_bytes == 8 * 2**20),
        ({"PODGATE_CLUSTERS_PROBE_INTERVAL_SECONDS": "2.5"}, lambda s: s.clusters.probe_interval_seconds == 2.5),
        ({"PODGATE_CLUSTERS_FILES": "a.yaml, b.yaml"}, lambda s: [p.name for p in s.clusters.files] == ["a.yaml", "b.yaml"]),
        ({"PODGATE_AUTHENTICATION_OIDC_ISSUER": "https://other"}, lambda s: s.authentication.oidc.issuer == "https://other"),
        ({"PODGATE_METRICS_LISTEN": "127.0.0.1:9100"}, lambda s: s.metrics.listen == "127.0.0.1:9100"),
        ({"PODGATE_SOMETHING_ELSE": "x"}, lambda s: s.server.listen == "0.0.0.0:50051"),  # not ours: ignored
        ({"PODGATE_DATABASE_URL": "sqlite+aiosqlite:////tmp/x.db"}, lambda s: s.database_url == "sqlite+aiosqlite:////tmp/x.db"),
        ({"PODGATE_DISPATCH_ORPHAN_TTL_SECONDS": "30"}, lambda s: s.dispatch.orphan_ttl_seconds == 30),
        ({"PODGATE_PLACEMENT_STRATEGY": "bin-packing"}, lambda s: s.placement.strategy == "bin-packing"),
        ({"PODGATE_SERVER_HEALTH_LISTEN": "0.0.0.0:8081"}, lambda s: s.server.health_listen == "0.0.0.0:8081"),
    ],
)  # fmt: skip
def test_environment_overrides(env: dict[str, str], check: Any) -> None:
    assert check(parse_settings(example_raw(), env=env))


def test_a_bad_environment_override_is_named_by_its_key() -> None:
    with pytest.raises(ConfigError, match=r"limits\.request_bytes: must be a non-negative integer, got 'big'"):
        parse_settings(example_raw(), env={"PODGATE_LIMITS_REQUEST_BYTES": "big"})


def test_every_override_name_is_documented_shape() -> None:
    assert ENV_OVERRIDES["PODGATE_TLS_CERT_FILE"] == "tls.cert_file"
    assert ENV_OVERRIDES["PODGATE_AUTHENTICATION_OIDC_JWKS_URL"] == "authentication.oidc.jwks_url"
    assert all(name.startswith("PODGATE_") and name.isupper() for name in ENV_OVERRIDES)


def write(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_tenants_from_a_file_and_reload(tmp_path: Path) -> None:
    token, hashed = new_token("bot")
    config = {"server": {"listen": "127.0.0.1:0"}, "tenants": "tenants.yaml",
              "authentication": {"static_tokens": [{"id": "bot", "tenant": "a", "hash": hashed}]}}  # fmt: skip
    write(tmp_path / "tenants.yaml", {"tenants": [{"name": "a", "namespaces": ["x"]}]})
    first = load_settings(write(tmp_path / "podgate.yaml", config), env={})
    assert first.tenants_file == tmp_path / "tenants.yaml"
    assert first.authenticator().authenticate(Credentials(bearer=token)).tenant == "a"
    write(tmp_path / "tenants.yaml", [{"name": "a", "namespaces": ["x", "y"]}, {"name": "b", "namespaces": ["z"]}])
    second = load_settings(tmp_path / "podgate.yaml", env={})
    assert second.tenants.tenants["a"].namespaces == {"x", "y"} and "b" in second.tenants.tenants
    assert first.reloadable_changes(second) == ["tenants"] and first.restart_changes(second) == []
    third = load_settings(tmp_path / "podgate.yaml", env={"PODGATE_SERVER_LISTEN": "127.0.0.1:1"})
    assert second.restart_changes(third) == ["server.listen"]


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({"podgate.yaml": "server: [unclosed"}, "is not valid YAML"),
        ({"podgate.yaml": "tenants: missing.yaml\n"}, "cannot read"),
        ({"podgate.yaml": "tenants: t.yaml\n", "t.yaml": "- name: BAD\n"}, "tenants (t.yaml)[0].name: tenant name 'BAD'"),
        ({"podgate.yaml": "- a list\n"}, "the configuration must be a mapping"),
    ],
)  # fmt: skip
def test_load_errors_name_the_file_and_key(tmp_path: Path, files: dict[str, str], problem: str) -> None:
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    with pytest.raises(ConfigError, match="configuration problem") as e:
        load_settings(tmp_path / "podgate.yaml", env={})
    assert any(problem in p for p in e.value.problems), e.value.problems


@pytest.mark.parametrize("listen", ["0.0.0.0:50051", "127.0.0.1:50051", "[::1]:50051"])
def test_the_example_may_listen_anywhere(listen: str) -> None:
    assert listener_problems(parse_settings(example_raw(), env={"PODGATE_SERVER_LISTEN": listen})) == []


def test_an_empty_override_is_a_key_error() -> None:
    with pytest.raises(ConfigError, match=r"tls\.cert_file: must be a non-empty string"):
        parse_settings(example_raw(), env={"PODGATE_TLS_CERT_FILE": ""})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"server": {"listen": "127.0.0.1:1"}}, []),
        ({"server": {"listen": "localhost:1"}}, []),
        ({"server": {"listen": "0.0.0.0:1"}}, ["needs tls.cert_file/key_file", "configure tenants"]),
        ({"server": {"listen": "10.0.0.5:1"}, "tls": {"cert_file": "c", "key_file": "k"}}, ["configure tenants"]),
    ],
)
def test_exposed_listeners_need_tls_and_tenants(raw: dict[str, Any], expected: list[str]) -> None:
    problems = listener_problems(parse_settings(raw))
    assert len(problems) == len(expected)
    assert all(fragment in problem for fragment, problem in zip(expected, problems, strict=True))


def test_describe_listener() -> None:
    default = parse_settings(None)
    assert (
        describe_listener(default, default.server.listen)
        == "127.0.0.1:50051: PLAIN TEXT (loopback only); no authentication (no tenants)"
    )
    example = load_settings(EXAMPLE, env={})
    assert describe_listener(example, example.server.listen) == (
        "0.0.0.0:50051: TLS, client certificates required; 3 tenant(s)"
    )


# --- every key reachable, overrides in one order ------------------------------------------------------

NON_DEFAULT_TEXT = {
    "server.listen": "127.0.0.1:1", "server.health_listen": "127.0.0.1:2", "metrics.listen": "off",
    "placement.strategy": "bin-packing", "logging.format": "json", "logging.level": "debug",
    "database.url": "postgresql+asyncpg://podgate:hunter2@db/podgate", "tls.require_client_cert": "true",
    "placement.wait_on_unavailable": "false", "tenants": "", "server.event_loop": "asyncio",
    "clusters.api_protocol": "http/1.1",
    "database.sqlite_synchronous": next(v for v in SQLITE_SYNCHRONOUS if v != DEFAULT_SQLITE_SYNCHRONOUS),
}  # fmt: skip


def non_default(path: str) -> str:
    """A value for the key, as a variable would carry it, that differs from the default."""
    if path in NON_DEFAULT_TEXT:
        return NON_DEFAULT_TEXT[path]
    default: Any = Settings()
    for part in path.split("."):
        default = getattr(default, part)
    if isinstance(default, bool | str | Path | tuple) or default is None:
        return f"/elsewhere/{path}"
    return str(default + 7)


def test_every_key_of_every_section_is_reachable_from_the_environment() -> None:
    scalars = [p for p in SCALARS if not p.startswith(("authentication.", "tenants"))]
    env = {env_name(p): non_default(p) for p in scalars}
    env["PODGATE_TLS_CLIENT_CA_FILE"] = "/elsewhere/ca.crt"
    settings = parse_settings(None, env=env)
    unchanged = [p for p in scalars if leaf(settings, p) == leaf(Settings(), p)]
    assert unchanged == []
    assert {env_name(p) for p in SCALARS} <= ENV_OVERRIDES.keys()


def leaf(settings: Settings, path: str) -> Any:
    value: Any = settings
    for part in path.split("."):
        value = getattr(value, part)
    return value


def test_flags_win_over_the_environment_which_wins_over_the_file(tmp_path: Path) -> None:
    config = write(tmp_path / "podgate.yaml", {"server": {"listen": "127.0.0.1:1", "gateway_id": "from-file",
                                                          "state_dir": "state"}})  # fmt: skip
    env = {"PODGATE_SERVER_LISTEN": "127.0.0.1:2", "PODGATE_SERVER_GATEWAY_ID": "from-env"}
    settings = load_settings(config, env=env, flags={"server.listen": "127.0.0.1:3"})
    assert (settings.server.listen, settings.server.gateway_id) == ("127.0.0.1:3", "from-env")
    assert settings.server.state_dir == tmp_path / "state"  # the file's paths are relative to the file
    moved = load_settings(config, env={}, flags={"server.state_dir": "here", "clusters.files": ["a.yaml"]})
    assert moved.server.state_dir == Path.cwd() / "here"  # a flag's to the working directory
    assert moved.clusters.files == (Path.cwd() / "a.yaml",)


def test_serve_flags_are_settings_keys() -> None:
    serve = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices["serve"]
    dests = {a.dest for a in serve._actions if a.option_strings and a.dest not in ("help", "config")}
    assert dests and dests <= set(SCALARS)
    assert {"database.url", "server.health_listen", "clusters.files"} <= dests


def test_old_top_level_keys_still_load_with_a_notice(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    old = {"listen": "127.0.0.1:7", "gateway_id": "old", "state_dir": "s", "cluster_files": ["c.yaml"],
           "probe_interval": 2, "gc_interval": 30}  # fmt: skip
    settings = load_settings(write(tmp_path / "podgate.yaml", old), env={"PODGATE_LISTEN": "127.0.0.1:8"})
    assert settings.server == ServerSettings(listen="127.0.0.1:8", gateway_id="old", state_dir=tmp_path / "s")
    assert settings.clusters.files == (tmp_path / "c.yaml",) and settings.clusters.probe_interval_seconds == 2
    assert settings.dispatch.gc_interval_seconds == 30
    assert "cluster_files: moved to clusters.files" in caplog.text
    with pytest.raises(ConfigError, match=r"listen: moved to server\.listen, which is set too"):
        parse_settings({"listen": "127.0.0.1:1", "server": {"listen": "127.0.0.1:2"}})


# --- the database URL -------------------------------------------------------------------------------


def test_the_database_defaults_to_sqlite_under_the_state_dir() -> None:
    settings = parse_settings({"server": {"state_dir": "/var/lib/podgate"}})
    assert settings.database_url == "sqlite+aiosqlite:////var/lib/podgate/podgate.db"


def test_a_database_password_is_never_shown() -> None:
    url = "postgresql+asyncpg://podgate:hunter2@db:5432/podgate?sslpassword=opensesame"
    settings = parse_settings({"database": {"url": url}})
    assert settings.database_url == url
    shown = repr(settings) + str(settings) + settings.database.describe() + repr(settings.database)
    assert "hunter2" not in shown and "opensesame" not in shown
    assert "postgresql+asyncpg://podgate:***@db:5432/podgate" in settings.database.describe()
    with pytest.raises(ConfigError) as e:
        parse_settings({"database": {"url": "hunter2 is not a url"}})
    assert "database.url: is not a database URL" in str(e.value) and "hunter2" not in str(e.value)


# --- the live holder --------------------------------------------------------------------------------


def test_a_reload_takes_the_reloadable_sections_and_keeps_the_rest() -> None:
    first = parse_settings({"server": {"listen": "127.0.0.1:1"}, "limits": {"log_line_bytes": 1000}})
    live = LiveSettings(first)
    seen: list[Settings] = []
    live.subscribe(seen.append)
    new = parse_settings({"server": {"listen": "127.0.0.1:2"}, "limits": {"log_line_bytes": 2000, "request_bytes": 5 * 2**20},
                          "placement": {"strategy": "bin-packing"}})  # fmt: skip
    assert live.reload(new) == ["server.listen", "limits.request_bytes"]
    assert live.current.server.listen == "127.0.0.1:1"  # as started, until a restart
    assert live.current.limits.log_line_bytes == 2000 and live.current.placement.strategy == "bin-packing"
    assert seen == [live.current]
    assert first.reloadable_changes(new) == ["placement.strategy", "limits.log_line_bytes"]


def test_every_duration_key_says_its_unit() -> None:
    """One spelling: a duration is a number of seconds and its key ends in `_seconds`."""
    durations = ("interval", "ttl", "retention", "timeout", "inactivity", "leeway")
    keys = [p for p in SCALARS if any(word in p.rsplit(".", 1)[-1] for word in durations)]
    assert keys and [k for k in keys if not k.endswith("_seconds")] == []
