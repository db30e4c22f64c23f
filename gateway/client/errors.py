"""The client's error tree, and the one function that turns a gRPC error into it with rich details decoded."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"
_PLACEMENT_RPCS = frozenset({"SubmitPod", "RunPod", "ExplainPlacement"})


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str

    def __str__(self) -> str:
        return f"{self.field}: {self.description}"


@dataclass(frozen=True)
class PreconditionViolation:
    type: str
    # For placement: the cluster's name.
    subject: str
    description: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.description}"


class GatewayError(Exception):
    """Base of every error the client raises for a failed call. `code` is the gRPC status code; `violations`
    the decoded rich details (field or precondition violations), listed one per line in str()."""

    code: grpc.StatusCode | None = None

    def __init__(
        self, message: str, *, rpc: str = "", violations: Sequence[FieldViolation | PreconditionViolation] = ()
    ) -> None:
        super().__init__(message)
        self.message = message
        self.rpc = rpc
        self.violations = tuple(violations)

    def __str__(self) -> str:
        prefix = f"{self.rpc}: " if self.rpc else ""
        return "\n".join([prefix + self.message, *(f"  - {v}" for v in self.violations)])


class InvalidRequest(GatewayError):
    """The request was refused as malformed; `violations` (FieldViolation) names each bad field."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class FailedPrecondition(GatewayError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class PlacementFailed(FailedPrecondition):
    """No registered cluster can ever take the pod; `violations` gives each cluster's reason."""

    @property
    def reasons(self) -> dict[str, str]:
        return {v.subject: v.description for v in self.violations if isinstance(v, PreconditionViolation)}


class NotFound(GatewayError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(GatewayError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(GatewayError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(GatewayError):
    code = grpc.StatusCode.UNAUTHENTICATED


class ResourceExhausted(GatewayError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, message: str, *, rpc: str = "", retry_after: float = 0.0) -> None:
        super().__init__(message, rpc=rpc)
        self.retry_after = retry_after


class Unavailable(GatewayError):
    """The gateway could not be reached (or went away); retrying later may work."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(GatewayError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unimplemented(GatewayError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Cancelled(GatewayError):
    code = grpc.StatusCode.CANCELLED


class Internal(GatewayError):
    code = grpc.StatusCode.INTERNAL


_SIMPLE: dict[grpc.StatusCode, type[GatewayError]] = {
    cls.code: cls
    for cls in (
        NotFound,
        AlreadyExists,
        PermissionDenied,
        Unauthenticated,
        Unavailable,
        DeadlineExceeded,
        Unimplemented,
        Cancelled,
    )
    if cls.code is not None
}


def _status_details(metadata: Sequence[tuple[str, str | bytes]] | None) -> status_pb2.Status | None:
    for key, value in metadata or ():
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except DecodeError:
                return None
    return None


M = TypeVar("M", error_details_pb2.BadRequest, error_details_pb2.PreconditionFailure, error_details_pb2.RetryInfo)


def _unpack(status: status_pb2.Status | None, kind: type[M]) -> M | None:
    for detail in status.details if status is not None else ():
        if detail.Is(kind.DESCRIPTOR):
            out = kind()
            detail.Unpack(out)
            return out
    return None


def translate(error: grpc.RpcError, rpc: str = "") -> GatewayError:
    """Maps a failed call to the client error tree, decoding google.rpc BadRequest, PreconditionFailure and
    RetryInfo details. Unknown codes become Internal, keeping the gateway's message."""
    code: grpc.StatusCode = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message: str = (error.details() if hasattr(error, "details") else "") or code.name.lower()
    metadata = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    status = _status_details(metadata)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        bad = _unpack(status, error_details_pb2.BadRequest)
        violations = [FieldViolation(v.field, v.description) for v in bad.field_violations] if bad else []
        return InvalidRequest(message, rpc=rpc, violations=violations)
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        failure = _unpack(status, error_details_pb2.PreconditionFailure)
        pre = [PreconditionViolation(v.type, v.subject, v.description) for v in failure.violations] if failure else []
        cls = PlacementFailed if rpc in _PLACEMENT_RPCS else FailedPrecondition
        return cls(message, rpc=rpc, violations=pre)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        info = _unpack(status, error_details_pb2.RetryInfo)
        delay = info.retry_delay.ToNanoseconds() / 1e9 if info else 0.0
        return ResourceExhausted(message, rpc=rpc, retry_after=delay)
    return _SIMPLE.get(code, Internal)(message, rpc=rpc)
