"""Pure container preparation: runtime settings, default commands, $(VAR) expansion, env, mounts, logs."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from gateway.sim.logstore import ContainerLog, LogOptions, format_timestamp, parse_timestamp
from gateway.sim.runtime.base import Mount
from gateway.sim.runtime.config import RuntimeConfig, RuntimeConfigError, image_name
from gateway.sim.runtime.spec import ContainerConfigError, argv, environment, expand, mounts, security, volume_files

CONFIG = RuntimeConfig.from_mapping(
    {"missingImages": ["ghcr.io/acme/*", "private"], "imageCommands": {"node*": "node"}}
)


@pytest.mark.parametrize(
    ("image", "name"),
    [
        ("python", "python"),
        ("python:3.12-slim", "python"),
        ("docker.io/library/python:3.12", "python"),
        ("registry:5000/team/app:1", "app"),
        ("busybox@sha256:abc", "busybox"),
    ],
)
def test_image_name(image: str, name: str) -> None:
    assert image_name(image) == name


@pytest.mark.parametrize(
    ("image", "command"),
    [("python:3.12", ("python3",)), ("busybox", ("sh",)), ("node:20", ("node",)), ("", ("sh",))],
)
def test_default_commands(image: str, command: tuple[str, ...]) -> None:
    config = RuntimeConfig.from_mapping({"imageCommands": {"python*": ["python3"], "node*": "node", "*": ["sh"]}})
    assert config.default_command(image) == command


@pytest.mark.parametrize(
    ("image", "missing"),
    [("ghcr.io/acme/x:1", True), ("private:2", True), ("public", False), ("ghcr.io/other/x", False)],
)
def test_missing_images(image: str, missing: bool) -> None:
    assert CONFIG.image_missing(image) is missing


@pytest.mark.parametrize(("restarts", "delay"), [(1, 10), (2, 20), (3, 40), (6, 300), (20, 300)])
def test_crash_loop_backoff_doubles_to_five_minutes(restarts: int, delay: float) -> None:
    assert RuntimeConfig().backoff(restarts) == delay


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"bogus": 1}, "unknown keys ['bogus']"),
        ({"imageCommands": ["sh"]}, "expected a mapping"),
        ({"imageCommands": {"*": []}}, "non-empty list"),
        ({"restartBackoffSeconds": "soon"}, "sim.runtime"),
    ],
)
def test_bad_runtime_config_is_explained(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(RuntimeConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        RuntimeConfig.from_mapping(raw)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("$(A)-$(B)", "1-$(B)"), ("$$(A)", "$(A)"), ("a$b", "a$b"), ("$(A)$(A)", "11")],
)
def test_expand(text: str, expected: str) -> None:
    assert expand(text, {"A": "1"}) == expected


@pytest.mark.parametrize(
    ("container", "expected"),
    [
        ({"image": "python", "command": ["python3"], "args": ["-c", "$(X)"]}, ("python3", "-c", "x")),
        ({"image": "busybox", "command": ["echo"], "args": ["$(X)"]}, ("echo", "x")),
        ({"image": "busybox"}, ("sh",)),
        ({"image": "python:3.12"}, ("python3",)),
        # args replace the image's CMD: `kubectl run --image=busybox -- sh -c ...` runs `sh -c ...`
        ({"image": "busybox", "args": ["sh", "-c", "$(X)"]}, ("sh", "-c", "x")),
        ({"image": "myapp:1", "args": ["--fast"]}, ("/app/run", "--fast")),
        ({"image": "myapp:1"}, ("/app/run", "serve")),
        ({"image": "myapp:1", "command": ["sh"]}, ("sh",)),  # command replaces ENTRYPOINT and drops CMD
    ],
)
def test_argv_models_entrypoint_and_cmd_as_kubernetes(container: dict[str, Any], expected: tuple[str, ...]) -> None:
    config = RuntimeConfig.from_mapping(
        {"imageEntrypoints": {"myapp*": ["/app/run"]}, "imageCommands": {"myapp*": ["serve"], "python*": ["python3"], "*": ["sh"]}}
    )
    assert argv(container, {"X": "x"}, config) == expected


POD = {"metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"app": "a"}}, "spec": {"nodeName": "n1"}}
OBJECTS = {
    ("secrets", "ns", "s"): {"data": {"k": base64.b64encode(b"secret").decode()}},
    ("configmaps", "ns", "c"): {"data": {"k": "plain", "other": "o"}},
}


def lookup(resource: str, namespace: str, name: str) -> dict[str, Any] | None:
    return OBJECTS.get((resource, namespace, name))


def test_environment_resolves_fields_secrets_configmaps_and_env_from() -> None:
    container = {
        "envFrom": [{"configMapRef": {"name": "c"}, "prefix": "C_"}],
        "env": [
            {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": True}}},
            {"name": "BOTH", "value": "$(S)/$(C_k)"},
        ],
    }
    env = environment(POD, container, lookup, "10.0.0.2", "127.0.0.1", RuntimeConfig())
    assert {k: v for k, v in env.items() if k != "PATH"} == {
        "HOSTNAME": "p",
        "C_k": "plain",
        "C_other": "o",
        "NAME": "p",
        "APP": "a",
        "NODE": "n1",
        "IP": "10.0.0.2",
        "S": "secret",
        "BOTH": "secret/plain",
    }


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ({"secretKeyRef": {"name": "nope", "key": "k"}}, 'secret "nope" not found'),
        ({"configMapKeyRef": {"name": "c", "key": "missing"}}, "couldn't find key missing in ConfigMap ns/c"),
        ({"fieldRef": {"fieldPath": "spec.bogus"}}, "unsupported fieldRef 'spec.bogus'"),
    ],
)
def test_unresolvable_env_is_a_config_error(ref: dict[str, Any], message: str) -> None:
    with pytest.raises(ContainerConfigError, match=message):
        environment(POD, {"env": [{"name": "X", "valueFrom": ref}]}, lookup, "", "", RuntimeConfig())


def test_mounts_and_volume_files() -> None:
    pod = {
        **POD,
        "spec": {
            "volumes": [
                {"name": "data", "emptyDir": {}},
                {"name": "host", "hostPath": {"path": "/srv"}},
                {"name": "cfg", "configMap": {"name": "c", "items": [{"key": "k", "path": "dir/k.txt"}]}},
            ]
        },
    }
    container = {
        "volumeMounts": [
            {"name": "data", "mountPath": "/data", "subPath": "sub"},
            {"name": "host", "mountPath": "/h", "readOnly": True},
        ],
        "terminationMessagePath": "/tmp/msg",
    }
    assert mounts(pod, container, {"data": "/pod/data"}, "/pod/term") == (
        Mount("/pod/data/sub", "/data"),
        Mount("/srv", "/h", True),
        Mount("/pod/term", "/tmp/msg"),
    )
    assert volume_files(pod, lookup) == {"cfg": {"dir/k.txt": "plain"}}
    with pytest.raises(ContainerConfigError, match="volume 'ghost' is mounted but not defined"):
        mounts(pod, {"volumeMounts": [{"name": "ghost", "mountPath": "/g"}]}, {}, "/t")


def test_timestamps_round_trip_with_nanoseconds() -> None:
    ns = 1_795_000_000_123_456_789
    text = format_timestamp(ns)
    assert text.endswith(".123456789Z") and parse_timestamp(text) == ns


async def test_log_options_tail_since_limit_and_partial_lines() -> None:
    log = ContainerLog(max_bytes=1000)
    for i in range(5):
        log.write(f"line {i}\n".encode(), ns=1000 + i)
    log.write(b"partial")
    assert [c async for c in log.read(LogOptions(tail_lines=2))] == [b"line 3\nline 4\n"]  # kept lines: one chunk
    assert [c async for c in log.read(LogOptions(since_ns=1003))] == [b"line 3\nline 4\n"]
    assert b"".join([c async for c in log.read(LogOptions(limit_bytes=10))]) == b"line 0\nlin"
    log.close()
    assert (await anext(log.read(LogOptions(tail_lines=1)))) == b"partial"


async def test_log_is_bounded_dropping_the_oldest_lines() -> None:
    log = ContainerLog(max_bytes=20)
    for i in range(10):
        log.write(f"line {i}\n".encode())
    assert [c async for c in log.read(LogOptions())] == [b"line 8\nline 9\n"]


@pytest.mark.parametrize(
    ("pod_context", "container_context", "expected"),
    [({}, {}, None), ({"runAsUser": 5}, {}, 5), ({"runAsUser": 5}, {"runAsUser": 7}, 7), ({}, {"runAsUser": 0}, 0)],
)
def test_security_context_container_wins(pod_context: dict, container_context: dict, expected: int | None) -> None:
    pod = {"spec": {"securityContext": pod_context}}
    assert security(pod, {"securityContext": container_context}, "runAsUser") == expected


def test_aliases_default_to_python_and_can_be_replaced() -> None:
    assert RuntimeConfig.from_mapping({}).aliases == {"python": "python3"}
    assert RuntimeConfig.from_mapping({"aliases": {"pip": "pip3"}}).aliases == {"pip": "pip3"}


def test_projected_and_downward_api_volumes() -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "ns", "labels": {"b": "2", "a": "1"}},
        "spec": {
            "nodeName": "n1",
            "volumes": [
                {
                    "name": "info",
                    "downwardAPI": {
                        "items": [
                            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                            {"path": "node", "fieldRef": {"fieldPath": "spec.nodeName"}},
                        ]
                    },
                },
                {
                    "name": "api",
                    "projected": {
                        "sources": [
                            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                            {"configMap": {"name": "c", "items": [{"key": "k", "path": "ca.crt"}]}},
                            {
                                "downwardAPI": {
                                    "items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]
                                }
                            },
                        ]
                    },
                },
                {"name": "scratch", "emptyDir": {}},
            ],
        },
    }
    assert volume_files(pod, lookup, token="t0k") == {
        "info": {"labels": 'a="1"\nb="2"', "node": "n1"},
        "api": {"token": "t0k", "ca.crt": "plain", "namespace": "ns"},
    }
