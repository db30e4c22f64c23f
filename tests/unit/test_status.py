"""Gateway errors as gRPC statuses: one code per error class, and a message of bounded length."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import status_pb2

from gateway import errors
from gateway.api.status import MAX_MESSAGE, code_for, to_status


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.InvalidArgument("x"), grpc.StatusCode.INVALID_ARGUMENT),
        (errors.NotFound("x"), grpc.StatusCode.NOT_FOUND),
        (errors.Unavailable("x"), grpc.StatusCode.UNAVAILABLE),
        (errors.GatewayError("x"), grpc.StatusCode.INTERNAL),
    ],
)
def test_each_error_class_has_its_code(error: errors.GatewayError, code: grpc.StatusCode) -> None:
    assert code_for(error) == code


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        ("no cluster named 'a'", "no cluster named 'a'"),
        ("x" * MAX_MESSAGE, "x" * MAX_MESSAGE),
        ("x" * 1_000_000, "x" * MAX_MESSAGE + "... (1000000 characters, clipped)"),
    ],
)
def test_a_message_quoting_a_huge_input_is_clipped(message: str, shown: str) -> None:
    status = to_status(errors.NotFound(message))
    assert status.details == shown
    [(_, value)] = status.trailing_metadata
    assert status_pb2.Status.FromString(value).message == shown
