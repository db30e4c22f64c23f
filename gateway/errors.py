"""The gateway's own error tree. The API layer maps each class to one gRPC status code."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


@dataclass(frozen=True)
class PreconditionViolation:
    type: str
    subject: str
    description: str


class GatewayError(Exception):
    """Base of every error a caller may see; the message must be safe to show (no secrets)."""


class InvalidArgument(GatewayError):
    def __init__(self, message: str, violations: list[FieldViolation] | None = None) -> None:
        super().__init__(message)
        self.violations = violations or []


class NotFound(GatewayError):
    pass


class AlreadyExists(GatewayError):
    pass


class FailedPrecondition(GatewayError):
    def __init__(self, message: str, violations: list[PreconditionViolation] | None = None) -> None:
        super().__init__(message)
        self.violations = violations or []


class PermissionDenied(GatewayError):
    pass


class Unauthenticated(GatewayError):
    pass


class ResourceExhausted(GatewayError):
    def __init__(self, message: str, retry_after_seconds: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class OutOfRange(GatewayError):
    """A position (a stream cursor) past the end of what exists."""


class Unavailable(GatewayError):
    pass


class DeadlineExceeded(GatewayError):
    pass


class Unimplemented(GatewayError):
    pass
