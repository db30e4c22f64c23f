"""Structured logs: one JSON object per line, or readable text for development.

Every line carries the context of the work it belongs to (request id, tenant, cluster, pod), taken
from context variables: an RPC or a pod's runner task binds them once and every log call below it,
in any module, inherits them. A redaction pass over every string field removes values shaped like
secrets (bearer tokens, JWTs, presigned cloud tokens, private keys) as defence in depth: code must
still never log a secret, and the credentials tests check that it does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import re
import sys
from collections.abc import Coroutine, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TextIO, TypeVar

T = TypeVar("T")
LogFormat = Literal["json", "text"]
FORMATS: tuple[LogFormat, ...] = ("json", "text")
REDACTED = "[REDACTED]"

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("podgate_request_id", default="")
TENANT: contextvars.ContextVar[str] = contextvars.ContextVar("podgate_tenant", default="")
CLUSTER: contextvars.ContextVar[str] = contextvars.ContextVar("podgate_cluster", default="")
POD: contextvars.ContextVar[str] = contextvars.ContextVar("podgate_pod", default="")
CONTEXT: Mapping[str, contextvars.ContextVar[str]] = {
    "request_id": REQUEST_ID,
    "tenant": TENANT,
    "cluster": CLUSTER,
    "pod": POD,
}

# Known secret shapes, as (prefix kept to say what was redacted, secret) pairs; one combined pattern scans
# each string once.
SECRET_SHAPES: tuple[tuple[str, str], ...] = (
    ("", r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"),
    (r"(?i:\b(?:bearer|basic)\s+)", r"[A-Za-z0-9._~+/=-]{6,}"),
    ("", r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),  # JWT: SA, OIDC, Entra tokens
    (r"\bk8s-aws-v1\.", r"[A-Za-z0-9_=-]+"),  # EKS presigned STS token
    (r"\bya29\.", r"[A-Za-z0-9._-]+"),  # Google OAuth access token
    ("", r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"),  # AWS access key id
    ("", r"\b[A-Za-z0-9_.-]{3}\dQ~[A-Za-z0-9_.~-]{31,34}"),  # Entra ID client secret
    (r"(?i:\bX-Amz-(?:Signature|Credential|Security-Token)=)", r"[^&\s\"']+"),
    (
        r"(?i:\b(?:password|passwd|secret|client[_-]?secret|token|access[_-]?token|refresh[_-]?token|api[_-]?key)"
        r"[\"']?\s*[:=]\s*[\"']?)",
        r"[^\s\"',;&}]+",
    ),
)
SECRETS = re.compile("|".join(f"(?P<keep{i}>{keep}){secret}" for i, (keep, secret) in enumerate(SECRET_SHAPES)))
# Every shape above contains one of these (lower-cased): most text has none and skips the scan.
_HINTS = ("private key", "bearer", "basic", "eyj", "k8s-aws-v1.", "ya29.", "akia", "asia", "q~", "x-amz-",
          "passw", "secret", "token", "api")  # fmt: skip

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged as a field.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def _replace(match: re.Match[str]) -> str:
    keep = next(v for k, v in match.groupdict().items() if v is not None)
    return keep + REDACTED


def redact(text: str) -> str:
    lowered = text.lower()
    if not any(hint in lowered for hint in _HINTS):
        return text
    return SECRETS.sub(_replace, text)


def _scrub(value: Any) -> Any:
    """A JSON-ready copy of value with every string redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _scrub(v) for k, v in value.items()}  # keys are field names from code
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(v) for v in value]
    return redact(str(value))


def bind(**fields: str) -> None:
    """Sets context fields for the rest of the current task (each asyncio task has its own copy)."""
    for name, value in fields.items():
        CONTEXT[name].set(value)


def background(coro: Coroutine[Any, Any, T], *, name: str, **fields: str) -> asyncio.Task[T]:
    """Starts background work with a clean logging context plus `fields`. A task copies the context of whatever
    created it, so work started from an RPC would otherwise log that RPC's request id and tenant forever."""
    context = contextvars.Context()
    for field_name, value in fields.items():
        context.run(CONTEXT[field_name].set, value)
    return asyncio.get_running_loop().create_task(coro, name=name, context=context)


@contextlib.contextmanager
def bound(**fields: str) -> Iterator[None]:
    """Sets context fields for the block only."""
    tokens = [(CONTEXT[name], CONTEXT[name].set(value)) for name, value in fields.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def context_fields(record: logging.LogRecord) -> dict[str, str]:
    """The record's context: an explicit `extra={"cluster": ...}` wins over the bound value."""
    found = {name: str(getattr(record, name, "") or var.get()) for name, var in CONTEXT.items()}
    return {k: v for k, v in found.items() if v}


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """time, level, logger, message, the context fields, `extra=` fields, exception: one object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **context_fields(record),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in CONTEXT and not key.startswith("_"):
                entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(_scrub(entry), ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """For a terminal: `time LEVEL logger [request_id=.. cluster=..] message`, redacted like JSON."""

    def format(self, record: logging.LogRecord) -> str:
        context = " ".join(f"{k}={v}" for k, v in context_fields(record).items())
        line = f"{_timestamp(record)} {record.levelname} {record.name}: {f'[{context}] ' if context else ''}"
        line += record.getMessage()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return redact(line)


def formatter(fmt: LogFormat) -> logging.Formatter:
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}: choose one of {', '.join(FORMATS)}")
    return JsonFormatter() if fmt == "json" else TextFormatter()


def configure(fmt: LogFormat = "text", *, level: int = logging.INFO, stream: TextIO | None = None) -> logging.Handler:
    """Makes the root logger write fmt to stream (stderr): the one logging setup of a gateway process."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
