"""The simulator's error tree: each error knows its HTTP code and renders a Kubernetes `Status` body.

Raise these anywhere in the simulator (store, scheduler, kubelet, API server); the API server turns
them into responses exactly as kube-apiserver would, so clients see the same reasons and codes.
"""

from __future__ import annotations

from typing import Any


class SimError(Exception):
    """Base error: `code` is the HTTP status, `reason` the Kubernetes StatusReason."""

    code = 500
    reason = "InternalError"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.retry_after = retry_after

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        details = dict(self.details or {})
        if self.retry_after is not None:
            details["retryAfterSeconds"] = self.retry_after
        if details:
            body["details"] = details
        return body


def _object_details(resource: str, name: str) -> dict[str, Any]:
    return {"name": name, "group": "", "kind": resource}


class BadRequest(SimError):
    code = 400
    reason = "BadRequest"


class Unauthorized(SimError):
    code = 401
    reason = "Unauthorized"

    def __init__(self, message: str = "Unauthorized") -> None:
        super().__init__(message)


class Forbidden(SimError):
    code = 403
    reason = "Forbidden"


class NotFound(SimError):
    code = 404
    reason = "NotFound"

    def __init__(self, resource: str, name: str) -> None:
        super().__init__(f'{resource} "{name}" not found', details=_object_details(resource, name))


class PathNotFound(SimError):
    code = 404
    reason = "NotFound"

    def __init__(self) -> None:
        super().__init__("the server could not find the requested resource")


class MethodNotAllowed(SimError):
    code = 405
    reason = "MethodNotAllowed"


class AlreadyExists(SimError):
    code = 409
    reason = "AlreadyExists"

    def __init__(self, resource: str, name: str) -> None:
        super().__init__(f'{resource} "{name}" already exists', details=_object_details(resource, name))


class Conflict(SimError):
    code = 409
    reason = "Conflict"

    def __init__(self, resource: str, name: str, why: str | None = None) -> None:
        text = why or "the object has been modified; please apply your changes to the latest version and try again"
        super().__init__(
            f'Operation cannot be fulfilled on {resource} "{name}": {text}', details=_object_details(resource, name)
        )


class Gone(SimError):
    """A watch or list asked for a resourceVersion older than the kept history (410 Expired)."""

    code = 410
    reason = "Expired"


class RequestEntityTooLarge(SimError):
    code = 413
    reason = "RequestEntityTooLarge"


class UnsupportedMediaType(SimError):
    code = 415
    reason = "UnsupportedMediaType"


class Invalid(SimError):
    """422 with one cause per violated field, like kube-apiserver's field.ErrorList."""

    code = 422
    reason = "Invalid"

    def __init__(self, kind: str, name: str, causes: list[tuple[str, str, str]]) -> None:
        """`causes` are (reason, field, message), reason being e.g. FieldValueRequired or FieldValueInvalid."""
        summary = ", ".join(f"{field}: {message}" if field else message for _, field, message in causes)
        text = f'{kind} "{name}" is invalid: {summary}' if causes else f'{kind} "{name}" is invalid'
        super().__init__(
            text,
            details={
                "name": name,
                "group": "",
                "kind": kind,
                "causes": [{"reason": r, "message": m, "field": f} for r, f, m in causes],
            },
        )


class TooManyRequests(SimError):
    code = 429
    reason = "TooManyRequests"


class InternalError(SimError):
    code = 500
    reason = "InternalError"


class ServiceUnavailable(SimError):
    code = 503
    reason = "ServiceUnavailable"
