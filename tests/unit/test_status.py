"""Gateway errors as gRPC statuses: one code per error class, and a message of bounded length."""

from __future__ import annotations

import base64

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import errors
from gateway.api.status import MAX_MESSAGE, MORE_FIELD, code_for, to_status


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


def _trailer_bytes(status: grpc.Status) -> int:
    [(_, value)] = status.trailing_metadata
    message = sum(1 if 0x20 <= b <= 0x7E and b != 0x25 else 3 for b in status.details.encode())
    return message + len(base64.b64encode(value))


texts = st.text(max_size=3000) | st.sampled_from(["x" * 1_000_000, "é" * 300_000, "%" * 50_000, "\U0001f600" * 9000])


@settings(max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    message=texts,
    items=st.lists(st.tuples(texts, texts), max_size=40) | st.integers(0, 5000).map(lambda n: [("f", "d")] * n),
)
def test_every_status_fits_the_metadata_limit(message: str, items: list[tuple[str, str]]) -> None:
    """Whatever the caller's input made of the message and the violations, the trailers stay under 8 KiB
    (gRPC's soft limit, past which clients refuse at random) and the violations left out are counted."""
    bad = to_status(errors.InvalidArgument(message, [errors.FieldViolation(f, d) for f, d in items]))
    failed = to_status(
        errors.FailedPrecondition(message, [errors.PreconditionViolation(f, d, d) for f, d in items])
    )
    for status in (bad, failed):
        assert _trailer_bytes(status) <= 7 * 1024
    [(_, value)] = bad.trailing_metadata
    detail = error_details_pb2.BadRequest()
    for packed in status_pb2.Status.FromString(value).details:
        assert packed.Unpack(detail)
    shown = list(detail.field_violations)
    if shown and shown[-1].field == MORE_FIELD:
        assert shown[-1].description == f"and {len(items) - len(shown) + 1} more"
    else:
        assert len(shown) == len(items)
