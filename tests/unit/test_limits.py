"""Input limits: each limit refuses with its field and the number, at the default and at a configured value."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gateway.pods.pod_schema import NotStrictJSON, load_strict
from gateway.pods.validation import pod_violations
from gateway.policy.limits import (
    CLIPPED,
    COMPACT_BYTES_PER_CHAR,
    DEFAULT_LIMITS,
    InputLimits,
    clip_log_line,
    manifest_size_violation,
    pod_limit_violations,
    request_size_violation,
)

P = "pod.pod_json"


def manifest(*, containers: int = 1, init: int = 0, env: int = 0, labels: dict[str, str] | None = None,
             annotations: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    def one(prefix: str, i: int) -> dict[str, Any]:
        return {"name": f"{prefix}{i}", "image": "x", "env": [{"name": f"E{j}", "value": "v"} for j in range(env)]}

    return {
        "metadata": {"name": "p", "labels": labels or {}, "annotations": annotations or {}},
        "spec": {
            "containers": [one("c", i) for i in range(containers)],
            "initContainers": [one("i", i) for i in range(init)],
        },
    }


SMALL = InputLimits(containers=2, env_vars_per_container=3, labels=2, label_key_length=10, label_value_length=5,
                    annotations_bytes=20, manifest_bytes=2000, request_bytes=4000, log_line_bytes=40)  # fmt: skip


@pytest.mark.parametrize(
    ("pod", "limits", "expected"),
    [
        (manifest(containers=2, init=2, env=3, labels={"a": "b", "c": "d"}), SMALL, []),
        (manifest(containers=3), SMALL, [(f"{P}.spec.containers", "at most 2 containers, got 3")]),
        (manifest(init=3), SMALL, [(f"{P}.spec.initContainers", "at most 2 initContainers, got 3")]),
        (manifest(containers=65), DEFAULT_LIMITS, [(f"{P}.spec.containers", "at most 64 containers, got 65")]),
        (manifest(env=4), SMALL, [(f"{P}.spec.containers[0].env", "at most 3 environment variables, got 4")]),
        (manifest(env=257), DEFAULT_LIMITS, [(f"{P}.spec.containers[0].env", "at most 256 environment variables, got 257")]),
        (manifest(init=1, env=4, containers=0), SMALL, [(f"{P}.spec.initContainers[0].env", "at most 3 environment variables, got 4")]),
        (manifest(labels={"a": "1", "b": "2", "c": "3"}), SMALL, [(f"{P}.metadata.labels", "at most 2 labels, got 3")]),
        (manifest(labels={"k" * 11: "v"}), SMALL, [(f"{P}.metadata.labels[{'k' * 11}]", "key is 11 characters, more than 10")]),
        (manifest(labels={"k": "v" * 6}), SMALL, [(f"{P}.metadata.labels[k]", "value is 6 characters, more than 5")]),
        (manifest(annotations={"a.b/c": "x" * 16}), SMALL, [(f"{P}.metadata.annotations", "21 bytes in total, more than the limit of 20")]),
        (manifest(annotations={"a": "é" * 10}), SMALL, [(f"{P}.metadata.annotations", "21 bytes in total, more than the limit of 20")]),
    ],
)  # fmt: skip
def test_pod_limits(pod: dict[str, Any], limits: InputLimits, expected: list[tuple[str, str]]) -> None:
    assert [(v.field, v.description) for v in pod_limit_violations(pod, limits)] == expected


def test_manifest_size() -> None:
    assert manifest_size_violation(manifest(), SMALL) is None
    violation = manifest_size_violation(manifest(env=80), SMALL)
    assert violation is not None and violation.field == P
    assert "more than the limit of 2000" in violation.description


def test_validation_uses_the_configured_limits() -> None:
    """pods/validation.py reports the limits (once) with the rest of its checks."""
    pod = {**manifest(env=4), "apiVersion": None}  # a manifest the schema walk passes: null is "not set" there
    assert [v.field for v in pod_violations(pod, limits=SMALL)] == [f"{P}.spec.containers[0].env", f"{P}.apiVersion"]
    assert [v.field for v in pod_violations(pod)] == [f"{P}.apiVersion"]
    assert [v.field for v in pod_violations(manifest(env=80), limits=SMALL)] == [P]  # too big: nothing else walked


@pytest.mark.parametrize(("size", "refused"), [(4000, False), (4001, True)])
def test_request_size(size: int, refused: bool) -> None:
    assert (request_size_violation(size, SMALL) is not None) is refused


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("short", "short"),
        ("x" * 40, "x" * 40),
        ("x" * 41, "x" * (40 - len(CLIPPED)) + CLIPPED),
        ("é" * 30, "é" * 5 + CLIPPED),  # 60 bytes; 11 bytes kept, cut back to a character boundary
    ],
)
def test_clip_log_line(line: str, expected: str) -> None:
    assert clip_log_line(line, SMALL) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"containers": 0}, "containers must be a positive integer"),
        ({"labels": -1}, "labels must be a positive integer"),
        ({"log_line_bytes": 1.5}, "log_line_bytes must be a positive integer"),
        ({"manifest_bytes": 10, "request_bytes": 5}, "must not exceed request_bytes"),
    ],
)
def test_limits_are_validated(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        InputLimits(**kwargs)


# --- the compact size's bound from the text's length (a short text is not encoded again) -------------------

_NUMBER = st.from_regex(r"\A-?(0|[1-9][0-9]{0,18})(\.[0-9]{1,8})?([eE][+-]?[0-9]{1,3})?\Z")


def _text(value: Any, draw: Any) -> str:
    """`value` as JSON text, numbers and strings written each in one of the ways a caller may write them."""
    if isinstance(value, tuple):  # a number's own text
        return value[0]
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=draw(st.booleans()))  # raw UTF-8 and DEL, or escaped
    if isinstance(value, list):
        return "[" + ", ".join(_text(v, draw) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ",".join(f"{json.dumps(k, ensure_ascii=False)}: {_text(v, draw)}" for k, v in value.items()) + "}"
    return json.dumps(value)


_VALUES = st.recursive(
    st.none() | st.booleans() | _NUMBER.map(lambda n: (n,)) | st.text(st.characters(codec="utf-8"), max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(value=_VALUES, data=st.data())
def test_a_decoded_manifests_compact_size_is_within_the_bound_of_its_texts_length(value: Any, data: Any) -> None:
    text = _text(value, data.draw)
    try:
        decoded = load_strict(text)
    except (NotStrictJSON, ValueError):  # an integer beyond int64: refused before any size check
        assume(False)
    compact = len(json.dumps(decoded, separators=(",", ":"), default=str).encode())
    assert compact <= COMPACT_BYTES_PER_CHAR * len(text)


@pytest.mark.parametrize(
    ("text", "compact"),
    [('"\x7f"', 8), ('"\U0001f600"', 14), ('"\u00e9"', 8), ("1e-6", 10), ("1e5", 6), ('"\\ud83d\\ude00"', 14)],
)
def test_the_bounds_worst_characters(text: str, compact: int) -> None:
    assert len(json.dumps(load_strict(text), separators=(",", ":"), default=str).encode()) == compact
    assert compact <= COMPACT_BYTES_PER_CHAR * len(text)


def test_a_text_short_enough_is_not_measured_again_and_a_longer_one_is() -> None:
    big = manifest(env=80)
    size = len(json.dumps(big, separators=(",", ":")).encode())
    assert manifest_size_violation(big, SMALL) is not None
    assert manifest_size_violation(big, SMALL, text_chars=SMALL.manifest_bytes // COMPACT_BYTES_PER_CHAR) is None
    refused = manifest_size_violation(big, SMALL, text_chars=SMALL.manifest_bytes // COMPACT_BYTES_PER_CHAR + 1)
    assert refused is not None and f"manifest is {size} bytes" in refused.description
