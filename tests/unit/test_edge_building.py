"""The edge's per-call shortcuts give what the general code gave: timestamps, audit records, wrapped handlers,
the table of served methods."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta, timezone

import grpc
from google.protobuf import timestamp_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from hypothesis import given
from hypothesis import strategies as st

from gateway._proto.podgate.v1 import dispatch_pb2, dispatch_pb2_grpc
from gateway.api import methods
from gateway.api.audit import AuditEvent
from gateway.api.convert_pods import timestamp
from gateway.api.interceptors import PerMethod
from gateway.observability.logging import redact

ZONES = st.builds(lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-23 * 60, 23 * 60))


@given(st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=ZONES))
def test_timestamp_is_what_protobuf_makes_of_the_datetime(value: datetime) -> None:
    expected = timestamp_pb2.Timestamp()
    expected.FromDatetime(value.astimezone(UTC))
    assert timestamp(value) == expected


def _as_record_by_asdict(entry: AuditEvent, when: datetime) -> dict[str, object]:
    """The record as built before (from `asdict`), kept here as the reference."""
    fields = {k: v for k, v in asdict(entry).items() if v and k != "details"}
    fields.update(entry.details)
    if "message" in fields:
        fields["message"] = redact(str(fields["message"]))
    return {"time": when.isoformat(), "actor": entry.identity or "anonymous", **fields}


TEXT = st.sampled_from(["", "a", "platform", "token=hunter2secret", "Bearer abcdefghij"])


@given(
    st.builds(
        AuditEvent, action=TEXT, outcome=TEXT, tenant=TEXT, identity=TEXT, cluster=TEXT, namespace=TEXT, pod=TEXT,
        request_id=TEXT, code=TEXT, message=TEXT,
        details=st.lists(st.tuples(st.sampled_from(["rpc", "message", "why"]), TEXT), max_size=3).map(tuple),
    )
)  # fmt: skip
def test_audit_record_is_the_one_asdict_gave(entry: AuditEvent) -> None:
    when = datetime(2026, 12, 5, tzinfo=UTC)
    assert entry.as_record(when) == _as_record_by_asdict(entry, when)


def test_a_method_is_wrapped_once_and_again_only_for_another_handler() -> None:
    wrapped: list[str] = []

    def wrap(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        wrapped.append(method)
        return handler._replace(request_streaming=False)

    first, second = (grpc.unary_unary_rpc_method_handler(lambda r, c: r) for _ in range(2))
    handlers = PerMethod(wrap)
    once = handlers.get("/s/M", first)
    assert handlers.get("/s/M", first) is once and wrapped == ["/s/M"]
    assert handlers.get("/s/N", first) is not once and wrapped == ["/s/M", "/s/N"]
    assert handlers.get("/s/M", second) is not once and wrapped == ["/s/M", "/s/N", "/s/M"]


def test_every_method_is_wrapped_once_at_start_and_found_by_one_lookup() -> None:
    """The server gets one generic handler: each registered method wrapped at start, a method only a generic
    handler knows wrapped at its first call and kept, an unknown method not served."""
    wrapped: list[str] = []

    def wrap(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        wrapped.append(method)
        return handler._replace(response_serializer=None)

    late = grpc.method_handlers_generic_handler("late.Service", {"Only": grpc.unary_unary_rpc_method_handler(lambda r, c: r)})
    table = methods.served(
        [
            lambda s: dispatch_pb2_grpc.add_DispatchServiceServicer_to_server(dispatch_pb2_grpc.DispatchServiceServicer(), s),
            lambda s: health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), s),
            lambda s: reflection.enable_server_reflection((reflection.SERVICE_NAME,), s),
            lambda s: s.add_generic_rpc_handlers((late,)),
        ],
        wrap,
    )
    dispatch = dispatch_pb2.DESCRIPTOR.services_by_name["DispatchService"]
    checks = health_pb2.DESCRIPTOR.services_by_name["Health"]
    expected = {f"/{service.full_name}/{m.name}" for service in (dispatch, checks) for m in service.methods}
    expected.add("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
    assert table.methods() == expected and sorted(wrapped) == sorted(expected)

    def details(method: str) -> grpc.HandlerCallDetails:
        return type("Details", (grpc.HandlerCallDetails,), {"method": method, "invocation_metadata": ()})()

    submit = table.service(details(f"/{dispatch.full_name}/SubmitPod"))
    assert submit is not None and submit.response_serializer is None  # the wrapped one
    assert table.service(details(f"/{dispatch.full_name}/SubmitPod")) is submit and len(wrapped) == len(expected)
    only = table.service(details("/late.Service/Only"))
    assert only is not None and only.response_serializer is None and wrapped[-1] == "/late.Service/Only"
    assert table.service(details("/late.Service/Only")) is only and len(wrapped) == len(expected) + 1
    assert table.service(details("/late.Service/Unknown")) is None
    assert table.service(details("/podgate.v1.Nothing/At")) is None
