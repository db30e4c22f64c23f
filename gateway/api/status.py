"""Maps the gateway's error tree to gRPC status codes with google.rpc rich details, always small enough to send.

A status travels in the trailers: `grpc-message` (percent-encoded) and `grpc-status-details-bin` (the
google.rpc.Status, base64'd). Clients refuse trailers over gRPC's metadata limit (8 KiB soft, where a
receiver starts refusing at random, 16 KiB hard) with RESOURCE_EXHAUSTED, which would hide the real
answer; so the message, each violation's text and their number are clipped here, for every status the
gateway sends, to about 7 KiB of trailers in all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from gateway import errors

_CODES: dict[type[errors.GatewayError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.OutOfRange: grpc.StatusCode.OUT_OF_RANGE,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.Unimplemented: grpc.StatusCode.UNIMPLEMENTED,
}


MAX_MESSAGE = 1024  # bytes of percent-encoded grpc-message (characters when ASCII): enough to act on
MAX_FIELD = 200  # bytes of one violation's field path or subject
MAX_DESCRIPTION = 400  # bytes of one violation's description
MAX_VIOLATIONS = 30  # listed in the details; the rest are counted in a last "and N more"
MAX_DETAILS = 3 * 1024  # bytes of serialized details: base64'd with the message, ~5.5 KiB of trailer
MORE_FIELD = "..."


def code_for(error: errors.GatewayError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in _CODES:
            return _CODES[cls]
    return grpc.StatusCode.INTERNAL


def _encoded_size(text: str) -> int:
    """Bytes of `text` as grpc-message sends it: printable ASCII except '%' as is, every other byte as %XX."""
    return sum(1 if 0x20 <= b <= 0x7E and b != 0x25 else 3 for b in text.encode())


def clip(text: str, limit: int) -> str:
    """`text` when its encoded size is within `limit`, else its longest prefix that is, marked as clipped.

    Reads at most `limit` characters (each encodes to at least one byte), so a megabyte costs no more.
    """
    size = 0
    for end, char in enumerate(text[: limit + 1]):
        size += _encoded_size(char)
        if size > limit:
            return f"{text[:end]}... ({len(text)} characters, clipped)"
    return text


def _bounded(items: list[Any], make: Callable[[Any], Any], more: Callable[[int], Any]) -> list[Any]:
    """The first violations that fit MAX_VIOLATIONS and MAX_DETAILS, then one counting the rest."""
    out: list[Any] = []
    size = 0
    for i, item in enumerate(items):
        message = make(item)
        size += message.ByteSize() + 4
        if i >= MAX_VIOLATIONS or size > MAX_DETAILS:
            out.append(more(len(items) - i))
            break
        out.append(message)
    return out


def _bad_request(violations: list[errors.FieldViolation]) -> Any:
    def make(v: errors.FieldViolation) -> Any:
        return error_details_pb2.BadRequest.FieldViolation(
            field=clip(v.field, MAX_FIELD), description=clip(v.description, MAX_DESCRIPTION)
        )

    def more(n: int) -> Any:
        return error_details_pb2.BadRequest.FieldViolation(field=MORE_FIELD, description=f"and {n} more")

    return error_details_pb2.BadRequest(field_violations=_bounded(violations, make, more))


def _precondition_failure(violations: list[errors.PreconditionViolation]) -> Any:
    def make(v: errors.PreconditionViolation) -> Any:
        return error_details_pb2.PreconditionFailure.Violation(
            type=clip(v.type, MAX_FIELD), subject=clip(v.subject, MAX_FIELD),
            description=clip(v.description, MAX_DESCRIPTION),
        )  # fmt: skip

    def more(n: int) -> Any:
        return error_details_pb2.PreconditionFailure.Violation(subject=MORE_FIELD, description=f"and {n} more")

    return error_details_pb2.PreconditionFailure(violations=_bounded(violations, make, more))


def _details(error: errors.GatewayError) -> list[any_pb2.Any]:
    detail: Message | None = None
    if isinstance(error, errors.InvalidArgument) and error.violations:
        detail = _bad_request(error.violations)
    elif isinstance(error, errors.FailedPrecondition) and error.violations:
        detail = _precondition_failure(error.violations)
    elif isinstance(error, errors.ResourceExhausted) and error.retry_after_seconds > 0:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(error.retry_after_seconds * 1e9))
        detail = error_details_pb2.RetryInfo(retry_delay=delay)
    if detail is None:
        return []
    packed = any_pb2.Any()
    packed.Pack(detail)
    return [packed]


def to_status(error: errors.GatewayError) -> grpc.Status:
    """The status for `error`, its message and details clipped to fit any client's metadata limit."""
    code = code_for(error)
    message = clip(str(error), MAX_MESSAGE)
    proto = status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=_details(error))
    return rpc_status.to_status(proto)


async def abort(context: grpc.aio.ServicerContext, error: errors.GatewayError) -> None:
    """Ends the RPC with the error's status and rich details (raises)."""
    await context.abort_with_status(to_status(error))
