"""Structured logs: JSON lines that parse, context from contextvars per task, and no secret-shaped values."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.observability import logging as obs

JWT = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YmF0Y2g6cG9kZ2F0ZSJ9.c2lnbmF0dXJlLWJ5dGVz"
CANARIES = {
    "bearer": "Authorization: Bearer s3cr3t-opaque-token-4242",
    "jwt": f"token was {JWT}",
    "eks": "k8s-aws-v1.aHR0cHM6Ly9zdHMuYW1hem9uYXdzLmNvbS8_QWN0aW9uPUdldENhbGxlcklkZW50aXR5",
    "google": "ya29.a0AfH6SMBx-canary-google-access-token",
    "aws-key": "key AKIAIOSFODNN7CANARY1 used",
    "entra": "client secret abc8Q~CanaryCanaryCanaryCanaryCanary12 rejected",
    "presigned": "GET https://sts.amazonaws.com/?X-Amz-Credential=AKIDCANARY%2F20260101&X-Amz-Signature=deadbeefcafe",
    "key-value": 'config {"password": "hunter2-canary", "client_secret": "zz-canary-zz"}',
    "pem": "-----BEGIN RSA PRIVATE KEY-----\nMIIEcanary\n-----END RSA PRIVATE KEY-----",
}
SECRET_PARTS = [
    "s3cr3t-opaque-token-4242",
    JWT.split(".")[1],
    "aHR0cHM6Ly9zdHMuYW1hem9uYXdzLmNvbS8",
    "canary-google-access-token",
    "AKIAIOSFODNN7CANARY1",
    "CanaryCanaryCanary",
    "deadbeefcafe",
    "AKIDCANARY",
    "hunter2-canary",
    "zz-canary-zz",
    "MIIEcanary",
]


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The root logger configured as `podgate serve --log-format json` does, restored afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    obs.configure("json", level=logging.DEBUG, stream=stream)
    yield stream
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_parse_with_their_fields(captured: io.StringIO) -> None:
    log = logging.getLogger("gateway.pods.runner")
    with obs.bound(request_id="req-1", tenant="team-a", cluster="eu-gpu", pod="batch/job-x1"):
        log.info("pod %s is %s", "job-x1", "Running", extra={"attempt": 2, "nodes": ["n1", "n2"]})
    log.warning("outside any request")
    first, second = lines(captured)
    assert first["level"] == "INFO"
    assert first["logger"] == "gateway.pods.runner"
    assert first["message"] == "pod job-x1 is Running"
    assert first["time"].endswith("Z") and "T" in first["time"]
    assert (first["request_id"], first["tenant"], first["cluster"], first["pod"]) == (
        "req-1",
        "team-a",
        "eu-gpu",
        "batch/job-x1",
    )
    assert first["attempt"] == 2 and first["nodes"] == ["n1", "n2"]
    assert second["message"] == "outside any request"
    assert not {"request_id", "tenant", "cluster", "pod"} & second.keys()


async def test_each_task_logs_its_own_context(captured: io.StringIO) -> None:
    log = logging.getLogger("gateway.test")

    async def request(n: int) -> None:
        obs.bind(request_id=f"r{n}", cluster=f"c{n}")
        for step in range(3):
            await asyncio.sleep(0)
            log.info("step %d", step)

    await asyncio.gather(*(request(n) for n in range(5)))
    entries = lines(captured)
    assert len(entries) == 15
    assert all(e["cluster"] == "c" + e["request_id"][1:] for e in entries)
    assert obs.REQUEST_ID.get() == ""  # bound inside the tasks only


def test_an_explicit_extra_wins_over_the_bound_context(captured: io.StringIO) -> None:
    with obs.bound(cluster="bound"):
        logging.getLogger("x").info("m", extra={"cluster": "explicit"})
    assert lines(captured)[0]["cluster"] == "explicit"


def test_exceptions_are_one_line_of_json(captured: io.StringIO) -> None:
    try:
        raise RuntimeError("failed talking to eu-gpu")
    except RuntimeError:
        logging.getLogger("x").exception("it broke")
    (entry,) = lines(captured)
    assert "RuntimeError: failed talking to eu-gpu" in entry["exception"]
    assert len(captured.getvalue().splitlines()) == 1


@pytest.mark.parametrize("shape", sorted(CANARIES))
def test_no_field_carries_a_secret_shaped_value(captured: io.StringIO, shape: str) -> None:
    text = CANARIES[shape]
    log = logging.getLogger("gateway.credentials")
    with obs.bound(request_id=text, tenant=text, cluster=text, pod=text):
        log.warning(text)
        log.warning("got %s", text, extra={"detail": {"nested": [text]}, "header": text})
        try:
            raise ValueError(text)
        except ValueError:
            log.exception("refresh failed")
    output = captured.getvalue()
    assert all(part not in output for part in SECRET_PARTS), output
    entries = lines(captured)
    assert len(entries) == 3
    assert obs.REDACTED in entries[0]["message"]
    assert all(obs.REDACTED in e[k] for e in entries for k in ("request_id", "tenant", "cluster", "pod"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abcdef123456", "Authorization: Bearer [REDACTED]"),
        ("token=abc123; path=/", "token=[REDACTED]; path=/"),
        ('"access_token": "xyz789"', '"access_token": "[REDACTED]"'),
        ("k8s-aws-v1.aHR0cHM6Ly9zdHM", "k8s-aws-v1.[REDACTED]"),
        # ordinary operational text is left alone
        ("token refresh failed: cluster 'eu' answered 503", "token refresh failed: cluster 'eu' answered 503"),
        (
            "tokenDir: /var/run/secrets/kubernetes.io/serviceaccount",
            "tokenDir: /var/run/secrets/kubernetes.io/serviceaccount",
        ),
        ("placed on eu-gpu (score 0.93)", "placed on eu-gpu (score 0.93)"),
        (
            "request 3f2a9c0e-1b7d-4c55-9e1a-0c8f5d2b7a61 Running",
            "request 3f2a9c0e-1b7d-4c55-9e1a-0c8f5d2b7a61 Running",
        ),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert obs.redact(text) == expected


def test_text_format_shows_context_and_redacts() -> None:
    record = logging.LogRecord(
        "gateway.api", logging.INFO, __file__, 1, "caller sent Bearer %s", ("abcdef123456",), None
    )
    with obs.bound(request_id="r9", tenant="t1"):
        line = obs.formatter("text").format(record)
    assert line.endswith("INFO gateway.api: [request_id=r9 tenant=t1] caller sent Bearer [REDACTED]")


def test_unknown_format_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown log format 'xml': choose one of json, text"):
        obs.formatter("xml")  # type: ignore[arg-type]
