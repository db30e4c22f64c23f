"""Input limits: every size the gateway accepts from a caller, in one value, each refusal naming its field.

pods/validation.py calls these checks for a manifest's sizes, after the schema walk, so each limit is
stated and checked once. The request size is enforced by gRPC itself (the server's
`grpc.max_receive_message_length` option set from `request_bytes`, answered RESOURCE_EXHAUSTED before
any handler runs); log lines longer than `log_line_bytes` are clipped when streamed, not refused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from gateway.domain import MANIFEST_FIELD as ROOT
from gateway.errors import FieldViolation
from gateway.placement.labels import DNS1123_SUBDOMAIN_MAX, LABEL_NAME_MAX, LABEL_VALUE_MAX

KiB, MiB = 2**10, 2**20
CONTAINER_KINDS = ("containers", "initContainers", "ephemeralContainers")
CLIPPED = " [... clipped by the gateway]"


@dataclass(frozen=True, kw_only=True)
class InputLimits:
    request_bytes: int = 4 * MiB  # one gRPC message; gRPC's own default receive limit
    manifest_bytes: int = 1 * MiB  # well under etcd's 1.5 MiB object limit, leaving room for what we add
    containers: int = 64  # of each kind: containers, initContainers, ephemeralContainers
    env_vars_per_container: int = 256
    labels: int = 64
    label_key_length: int = DNS1123_SUBDOMAIN_MAX + 1 + LABEL_NAME_MAX  # Kubernetes' own maximum
    label_value_length: int = LABEL_VALUE_MAX
    annotations_bytes: int = 256 * KiB  # the API server's limit on all annotations together
    log_line_bytes: int = 64 * KiB

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{f.name} must be a positive integer, got {value!r}")
        if self.manifest_bytes > self.request_bytes:
            raise ValueError(
                f"manifest_bytes ({self.manifest_bytes}) must not exceed request_bytes ({self.request_bytes})"
            )


DEFAULT_LIMITS = InputLimits()


# A manifest decoded from a JSON text of n characters (pods/pod_schema.load_strict) is at most this many times
# n bytes as compact ASCII JSON: a character of a string becomes at most one \uXXXX escape (6 bytes: DEL,
# a non-ASCII BMP character) or two (12: a character beyond the BMP, one character of a Python str), an
# escape of the text (2-12 characters) at most two; a number keeps its digits (an integer) or becomes its
# Decimal's text quoted (at most 4 more than the number's own: "1e5" -> "1E+5" in quotes); what is left
# (structure, literals) is copied or dropped (whitespace). tests/unit/test_limits.py holds it to json.dumps.
COMPACT_BYTES_PER_CHAR = 12


def manifest_size_violation(
    pod: Mapping[str, Any], limits: InputLimits = DEFAULT_LIMITS, *, text_chars: int | None = None
) -> FieldViolation | None:
    """The manifest's compact JSON size; checked first, so a huge manifest is not walked further.

    `text_chars`: the length of the JSON text `pod` was decoded from (by pod_schema.load_strict), when the
    caller has it: a text short enough that its compact form cannot pass the limit is not encoded again
    (validate_request 19.1 -> 13.3 us on the throughput bench's pod: bench/README.md, helper edge6)."""
    if text_chars is not None and COMPACT_BYTES_PER_CHAR * text_chars <= limits.manifest_bytes:
        return None
    size = len(json.dumps(pod, separators=(",", ":"), default=str).encode())
    if size > limits.manifest_bytes:
        return FieldViolation(ROOT, f"manifest is {size} bytes, more than the limit of {limits.manifest_bytes}")
    return None


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _as_mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _container_violations(spec: Mapping[str, Any], limits: InputLimits) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    for kind in CONTAINER_KINDS:
        items = _as_list(spec.get(kind))
        if len(items) > limits.containers:
            out.append(FieldViolation(f"{ROOT}.spec.{kind}", f"at most {limits.containers} {kind}, got {len(items)}"))
            continue
        for i, c in enumerate(items):
            env = _as_list(_as_mapping(c).get("env"))
            if len(env) > limits.env_vars_per_container:
                out.append(
                    FieldViolation(
                        f"{ROOT}.spec.{kind}[{i}].env",
                        f"at most {limits.env_vars_per_container} environment variables, got {len(env)}",
                    )
                )
    return out


def _label_violations(labels: Mapping[str, Any], limits: InputLimits) -> list[FieldViolation]:
    field = f"{ROOT}.metadata.labels"
    if len(labels) > limits.labels:
        return [FieldViolation(field, f"at most {limits.labels} labels, got {len(labels)}")]
    out = []
    for key, value in labels.items():
        if len(str(key)) > limits.label_key_length:
            out.append(
                FieldViolation(
                    f"{field}[{key}]", f"key is {len(str(key))} characters, more than {limits.label_key_length}"
                )
            )
        if isinstance(value, str) and len(value) > limits.label_value_length:
            out.append(
                FieldViolation(
                    f"{field}[{key}]", f"value is {len(value)} characters, more than {limits.label_value_length}"
                )
            )
    return out


def _annotation_violations(annotations: Mapping[str, Any], limits: InputLimits) -> list[FieldViolation]:
    size = sum(len(str(k).encode()) + len(str(a).encode()) for k, a in annotations.items())
    if size > limits.annotations_bytes:
        return [
            FieldViolation(
                f"{ROOT}.metadata.annotations",
                f"{size} bytes in total, more than the limit of {limits.annotations_bytes}",
            )
        ]
    return []


def pod_limit_violations(pod: Mapping[str, Any], limits: InputLimits = DEFAULT_LIMITS) -> list[FieldViolation]:
    """Counts and lengths inside a manifest (containers per kind, env vars, labels, annotation bytes)."""
    metadata = _as_mapping(pod.get("metadata"))
    return [
        *_label_violations(_as_mapping(metadata.get("labels")), limits),
        *_annotation_violations(_as_mapping(metadata.get("annotations")), limits),
        *_container_violations(_as_mapping(pod.get("spec")), limits),
    ]


def request_size_violation(size_bytes: int, limits: InputLimits = DEFAULT_LIMITS) -> FieldViolation | None:
    """For request bodies that do not come through gRPC's own limit (e.g. a file given to the CLI)."""
    if size_bytes > limits.request_bytes:
        return FieldViolation("request", f"{size_bytes} bytes, more than the limit of {limits.request_bytes}")
    return None


def clip_log_line(text: str, limits: InputLimits = DEFAULT_LIMITS) -> str:
    """The line itself when within the limit, else its first bytes (on a UTF-8 boundary) and a marker."""
    data = text.encode()
    if len(data) <= limits.log_line_bytes:
        return text
    keep = max(0, limits.log_line_bytes - len(CLIPPED.encode()))
    return data[:keep].decode(errors="ignore") + CLIPPED
