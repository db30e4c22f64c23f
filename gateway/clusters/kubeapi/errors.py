"""The Kubernetes API client's error tree, built from the HTTP status and the `Status` body.

KubeError ─┬─ ClientError (4xx) ─ BadRequest 400, Unauthorized 401, Forbidden 403, NotFound 404,
           │                      Conflict 409 ─ AlreadyExists, Gone 410, Invalid 422, TooManyRequests 429
           ├─ ServerError (5xx)
           ├─ ApiUnreachable (connection refused, TLS failure, timeout)
           └─ GatewayExhausted (this process out of file descriptors: says nothing about the cluster)

Messages name the cluster, the call and the server's own message (truncated); never a token or a body
we sent. `create_outcome` says what a failed create means for the object: whether sending it elsewhere
is safe.
"""

from __future__ import annotations

import enum
import json
from typing import Any

from gateway.observability.descriptors import is_exhaustion

MESSAGE_LIMIT = 300


class KubeError(Exception):
    """Any failure talking to one cluster's API server."""

    def __init__(
        self, message: str, *, cluster: str = "", status: int = 0, reason: str = "", retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.cluster = cluster
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


class ApiUnreachable(KubeError):
    """No HTTP answer: connection refused or reset, TLS failure, DNS, timeout.

    `maybe_sent` is False only when no connection was made, so the server cannot have acted on the
    request (a create that failed so is safe to send elsewhere; otherwise look before retrying).
    """

    maybe_sent: bool = True


class GatewayExhausted(KubeError):
    """The gateway could not open a connection because it ran out of descriptors (EMFILE/ENFILE). Not the
    cluster's fault: health never counts it, and it is not retried (the caller sheds the work)."""


class StreamSilent(ApiUnreachable):
    """A stream (watch, log) produced nothing for longer than its inactivity timeout."""


class ServerError(KubeError):
    """A 5xx answer."""


class ClientError(KubeError):
    """A 4xx answer: retrying the same request will not help (except 429)."""


class BadRequest(ClientError):
    pass


class Unauthorized(ClientError):
    pass


class Forbidden(ClientError):
    pass


class NotFound(ClientError):
    pass


class Conflict(ClientError):
    pass


class AlreadyExists(Conflict):
    pass


class Gone(ClientError):
    """The resourceVersion asked for is too old: list again."""


class Invalid(ClientError):
    pass


class TooManyRequests(ClientError):
    pass


_BY_STATUS: dict[int, type[ClientError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: Invalid,
    429: TooManyRequests,
}


def truncate(text: str, limit: int = MESSAGE_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_status(body: bytes | str | dict[str, Any] | None) -> dict[str, Any]:
    """The `Status` object of an error body, or {} when the body is not one (HTML from a proxy, empty)."""
    if isinstance(body, dict):
        return body if body.get("kind") == "Status" else {}
    try:
        data = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) and data.get("kind") == "Status" else {}


def error_class(status: int, reason: str) -> type[KubeError]:
    if status == 409 and reason == "AlreadyExists":
        return AlreadyExists
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ServerError if status >= 500 else ClientError


def error_for(
    status: int,
    body: bytes | str | dict[str, Any] | None,
    *,
    cluster: str,
    call: str,
    retry_after: float | None = None,
) -> KubeError:
    """The error for an HTTP answer `status` to `call` (e.g. "GET /api/v1/pods")."""
    parsed = parse_status(body)
    reason = str(parsed.get("reason", ""))
    detail = str(parsed.get("message", "")) or _text(body)
    if retry_after is None:
        retry_after = _details_retry_after(parsed)
    message = f"cluster {cluster!r}: {call}: HTTP {status}"
    message += f" {reason}" if reason else ""
    message += f": {truncate(detail)}" if detail.strip() else ""
    return error_class(status, reason)(message, cluster=cluster, status=status, reason=reason, retry_after=retry_after)


def _text(body: bytes | str | dict[str, Any] | None) -> str:
    if isinstance(body, bytes):
        return body.decode("utf-8", "replace")
    return body if isinstance(body, str) else ""


def _details_retry_after(parsed: dict[str, Any]) -> float | None:
    details = parsed.get("details")
    value = details.get("retryAfterSeconds") if isinstance(details, dict) else None
    return float(value) if isinstance(value, int | float) else None


def parse_retry_after(header: str | None) -> float | None:
    """Seconds from a Retry-After header (Kubernetes sends whole seconds; HTTP dates are ignored)."""
    if not header:
        return None
    try:
        return max(0.0, float(header.strip()))
    except ValueError:
        return None


def unreachable(cluster: str, call: str, exc: BaseException, *, maybe_sent: bool = True) -> KubeError:
    """ApiUnreachable for `exc`, unless it is the gateway's own exhaustion (GatewayExhausted)."""
    detail = truncate(str(exc)) or type(exc).__name__
    if is_exhaustion(exc):
        return GatewayExhausted(f"cluster {cluster!r}: {call}: the gateway is out of file descriptors: {detail}",
                                cluster=cluster)  # fmt: skip
    error = ApiUnreachable(f"cluster {cluster!r}: {call}: API server unreachable: {detail}", cluster=cluster)
    error.maybe_sent = maybe_sent
    return error


class CreateOutcome(enum.Enum):
    """What a create that raised says about the object; `created` / `not created` / `unknown`, with
    "not created" split by whose fault it is, as only one of the two makes another cluster worth trying."""

    EXISTS = "exists"  # an object of that name is there: ours from an earlier try, or another's (read it to tell)
    NOT_CREATED = "not-created"  # certainly not applied, for this cluster's reasons: another cluster may take it
    REFUSED = "refused"  # certainly not applied, for the object's own reasons (400, 422): no cluster will take it
    UNKNOWN = "unknown"  # the server may have applied it (no answer, 5xx): read it back before anything else


def create_outcome(error: KubeError) -> CreateOutcome:
    """The outcome of a create that raised `error` (the retries of the client already spent).

    401/403/404 are this cluster's credentials, RBAC or namespace; 429 and a connection never made were
    refused before the server acted. Anything that is not a known refusal, including an answer that could
    not be decoded, may have been applied.
    """
    if isinstance(error, AlreadyExists):
        return CreateOutcome.EXISTS
    if isinstance(error, TooManyRequests | Unauthorized | Forbidden | NotFound):
        return CreateOutcome.NOT_CREATED
    if isinstance(error, ApiUnreachable):
        return CreateOutcome.UNKNOWN if error.maybe_sent else CreateOutcome.NOT_CREATED
    if isinstance(error, ClientError):
        return CreateOutcome.REFUSED
    return CreateOutcome.UNKNOWN
