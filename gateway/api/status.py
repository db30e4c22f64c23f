"""Maps the gateway's error tree to gRPC status codes with google.rpc rich details."""

from __future__ import annotations

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
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.Unimplemented: grpc.StatusCode.UNIMPLEMENTED,
}


MAX_MESSAGE = 1024  # characters: enough to act on; a message quoting a caller's megabyte is clipped


def code_for(error: errors.GatewayError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in _CODES:
            return _CODES[cls]
    return grpc.StatusCode.INTERNAL


def _details(error: errors.GatewayError) -> list[any_pb2.Any]:
    detail: Message | None = None
    if isinstance(error, errors.InvalidArgument) and error.violations:
        detail = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in error.violations
            ]
        )
    elif isinstance(error, errors.FailedPrecondition) and error.violations:
        detail = error_details_pb2.PreconditionFailure(
            violations=[
                error_details_pb2.PreconditionFailure.Violation(
                    type=v.type, subject=v.subject, description=v.description
                )
                for v in error.violations
            ]
        )
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
    code = code_for(error)
    message = str(error)
    if len(message) > MAX_MESSAGE:
        message = f"{message[:MAX_MESSAGE]}... ({len(message)} characters, clipped)"
    proto = status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=_details(error))
    return rpc_status.to_status(proto)


async def abort(context: grpc.aio.ServicerContext, error: errors.GatewayError) -> None:
    """Ends the RPC with the error's status and rich details (raises)."""
    await context.abort_with_status(to_status(error))
