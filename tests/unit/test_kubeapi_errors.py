"""The error tree from HTTP answers, and the retry policy as a table."""

from __future__ import annotations

import json

import pytest

from gateway.clusters.kubeapi import errors as ke
from gateway.clusters.kubeapi.retry import NO_RETRY, RetryPolicy, decide


def status_body(code: int, reason: str, message: str, **details: object) -> bytes:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason,
            "message": message}  # fmt: skip
    if details:
        body["details"] = details
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("status", "reason", "cls"),
    [
        (400, "BadRequest", ke.BadRequest),
        (401, "Unauthorized", ke.Unauthorized),
        (403, "Forbidden", ke.Forbidden),
        (404, "NotFound", ke.NotFound),
        (409, "AlreadyExists", ke.AlreadyExists),
        (409, "Conflict", ke.Conflict),
        (410, "Expired", ke.Gone),
        (422, "Invalid", ke.Invalid),
        (429, "TooManyRequests", ke.TooManyRequests),
        (418, "", ke.ClientError),
        (500, "InternalError", ke.ServerError),
        (503, "ServiceUnavailable", ke.ServerError),
    ],
)
def test_status_code_and_reason_choose_the_class(status: int, reason: str, cls: type[ke.KubeError]) -> None:
    error = ke.error_for(status, status_body(status, reason, "why"), cluster="c1", call="GET /api/v1/pods")
    assert type(error) is cls
    assert (error.status, error.reason, error.cluster) == (status, reason, "c1")
    expected_reason = f" {reason}" if reason else ""
    assert str(error) == f"cluster 'c1': GET /api/v1/pods: HTTP {status}{expected_reason}: why"


def test_conflict_and_already_exists_share_a_base() -> None:
    assert issubclass(ke.AlreadyExists, ke.Conflict)
    assert issubclass(ke.StreamSilent, ke.ApiUnreachable)


def test_non_status_body_is_quoted_truncated_on_one_line() -> None:
    error = ke.error_for(502, b"<html>\n" + b"x" * 1000, cluster="c", call="GET /version")
    assert type(error) is ke.ServerError
    assert len(str(error)) < 400 and "\n" not in str(error) and str(error).endswith("...")


def test_retry_after_comes_from_header_or_status_details() -> None:
    body = status_body(429, "TooManyRequests", "slow down", retryAfterSeconds=3)
    assert ke.error_for(429, body, cluster="c", call="x").retry_after == 3.0
    assert ke.error_for(429, body, cluster="c", call="x", retry_after=7.0).retry_after == 7.0


@pytest.mark.parametrize(("header", "seconds"), [("5", 5.0), (" 0 ", 0.0), ("", None), (None, None),
                                                 ("Wed, 21 Oct 2026 07:28:00 GMT", None), ("-3", 0.0)])  # fmt: skip
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert ke.parse_retry_after(header) == seconds


POLICY = RetryPolicy(backoff=(0.1, 0.2, 0.4), max_retry_after=10.0)
DOWN = ke.ApiUnreachable("down")


def http(cls: type[ke.KubeError], status: int, retry_after: float | None = None) -> ke.KubeError:
    return cls("x", status=status, retry_after=retry_after)


@pytest.mark.parametrize(
    ("error", "attempt", "retry", "delay"),
    [
        (DOWN, 1, True, 0.1),
        (DOWN, 3, True, 0.4),
        (DOWN, 4, False, 0.0),  # 4 attempts made: the policy's last
        (http(ke.ServerError, 500), 1, True, 0.1),
        (http(ke.ServerError, 503), 2, True, 0.2),
        (http(ke.ServerError, 501), 1, False, 0.0),
        (http(ke.TooManyRequests, 429, retry_after=2.0), 1, True, 2.1),  # Retry-After, then the jittered backoff
        (http(ke.TooManyRequests, 429), 2, True, 0.2),
        (http(ke.TooManyRequests, 429, retry_after=60.0), 1, False, 0.0),  # over max_retry_after
        (http(ke.NotFound, 404), 1, False, 0.0),
        (http(ke.Conflict, 409), 1, False, 0.0),
        (http(ke.Forbidden, 403), 1, False, 0.0),
        (http(ke.Invalid, 422), 1, False, 0.0),
        (http(ke.Gone, 410), 1, False, 0.0),
        (http(ke.Unauthorized, 401), 1, False, 0.0),  # the client refreshes the token once itself
    ],
)
def test_retry_decisions(error: ke.KubeError, attempt: int, retry: bool, delay: float) -> None:
    decision = decide(POLICY, error, attempt, draw=1.0)  # the top of the jitter range: the backoff ceiling
    assert (decision.retry, decision.delay) == pytest.approx((retry, delay))
    assert decision.why


def test_no_retry_policy_makes_one_attempt() -> None:
    assert NO_RETRY.attempts == 1
    assert decide(NO_RETRY, DOWN, 1, draw=0.5).retry is False


def test_negative_backoff_is_refused() -> None:
    with pytest.raises(ValueError, match="backoff"):
        RetryPolicy(backoff=(1.0, -1.0))


def test_websocket_handshake_message_is_quoted() -> None:
    error = ke.error_for(403, "Forbidden: exec not allowed", cluster="c", call="GET /api/v1/namespaces/n/pods/p/exec")
    assert type(error) is ke.Forbidden and str(error).endswith("HTTP 403: Forbidden: exec not allowed")


def unreachable(*, maybe_sent: bool) -> ke.KubeError:
    return ke.unreachable("c1", "POST /api/v1/namespaces/ns/pods", ConnectionResetError("reset"), maybe_sent=maybe_sent)


def answered(status: int, reason: str) -> ke.KubeError:
    call = "POST /api/v1/namespaces/ns/pods"
    return ke.error_for(status, status_body(status, reason, "why"), cluster="c1", call=call)


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (answered(409, "AlreadyExists"), ke.CreateOutcome.EXISTS),
        (answered(401, "Unauthorized"), ke.CreateOutcome.NOT_CREATED),
        (answered(403, "Forbidden"), ke.CreateOutcome.NOT_CREATED),
        (answered(404, "NotFound"), ke.CreateOutcome.NOT_CREATED),  # the namespace is missing on this cluster
        (answered(429, "TooManyRequests"), ke.CreateOutcome.NOT_CREATED),
        (unreachable(maybe_sent=False), ke.CreateOutcome.NOT_CREATED),  # no connection was ever made
        (answered(400, "BadRequest"), ke.CreateOutcome.REFUSED),
        (answered(422, "Invalid"), ke.CreateOutcome.REFUSED),
        (answered(409, "Conflict"), ke.CreateOutcome.REFUSED),
        (answered(418, ""), ke.CreateOutcome.REFUSED),
        (unreachable(maybe_sent=True), ke.CreateOutcome.UNKNOWN),  # sent, answer lost: may have been applied
        (ke.StreamSilent("silent", cluster="c1"), ke.CreateOutcome.UNKNOWN),
        (answered(500, "InternalError"), ke.CreateOutcome.UNKNOWN),
        (answered(503, "ServiceUnavailable"), ke.CreateOutcome.UNKNOWN),
        (answered(504, "Timeout"), ke.CreateOutcome.UNKNOWN),
        (ke.KubeError("answer is not JSON", cluster="c1"), ke.CreateOutcome.UNKNOWN),  # a 2xx we could not decode
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, ke.KubeError) else v.name,
)
def test_create_outcome_of_each_error(error: ke.KubeError, outcome: ke.CreateOutcome) -> None:
    assert ke.create_outcome(error) is outcome
