"""The gRPC frame over a real grpc.aio server on port 0: health, reflection, error mapping, loopback rule."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from gateway import errors
from gateway._proto.podgate.v1 import clusters_pb2_grpc, credentials_pb2_grpc, dispatch_pb2, dispatch_pb2_grpc
from gateway.api import server


class _FailingDispatch(dispatch_pb2_grpc.DispatchServiceServicer):
    async def GetPod(self, request: dispatch_pb2.GetPodRequest, context: object) -> dispatch_pb2.GetPodResponse:
        if request.request_id == "crash":
            raise RuntimeError("secret-ish internal detail")
        raise errors.InvalidArgument(
            "bad request_id", [errors.FieldViolation(field="request_id", description="must not contain spaces")]
        )


def _servicers() -> server.Servicers:
    return server.Servicers(
        dispatch=_FailingDispatch(),
        clusters=clusters_pb2_grpc.ClusterServiceServicer(),
        credentials=credentials_pb2_grpc.CredentialsServiceServicer(),
    )


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    servicers = _servicers()
    running = await server.start("127.0.0.1:0", servicers, access=None)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        yield ch
    await running.stop(0)


@pytest.mark.parametrize("service", ["", *server.SERVICE_NAMES])
async def test_health_is_serving_for_every_service(channel: grpc.aio.Channel, service: str) -> None:
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_our_services(channel: grpc.aio.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def one_request() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    names = set()
    async for reply in stub.ServerReflectionInfo(one_request()):
        names |= {s.name for s in reply.list_services_response.service}
    assert set(server.SERVICE_NAMES) <= names
    assert "grpc.health.v1.Health" in names


async def test_gateway_error_becomes_status_with_field_violations(channel: grpc.aio.Channel) -> None:
    stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetPod(dispatch_pb2.GetPodRequest(request_id="a b"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(caught.value)
    assert status is not None
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    assert [(v.field, v.description) for v in bad.field_violations] == [("request_id", "must not contain spaces")]


async def test_unexpected_error_is_internal_without_its_message(channel: grpc.aio.Channel) -> None:
    stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetPod(dispatch_pb2.GetPodRequest(request_id="crash"))
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "secret-ish" not in (caught.value.details() or "")
    assert "incident" in (caught.value.details() or "")


@pytest.mark.parametrize("address", ["0.0.0.0:0", "192.0.2.1:0", "example.com:0"])
async def test_plain_text_listener_refused_off_loopback(address: str) -> None:
    with pytest.raises(errors.FailedPrecondition, match="only allowed on loopback"):
        await server.start(address, _servicers(), access=None)


@pytest.mark.parametrize(
    ("address", "loopback"), [("127.0.0.1:1", True), ("[::1]:1", True), ("localhost:1", True), ("10.0.0.1:1", False)]
)
def test_is_loopback(address: str, loopback: bool) -> None:
    assert server.is_loopback(address) is loopback


async def test_bytes_that_are_not_a_message_are_invalid_argument(channel: grpc.aio.Channel) -> None:
    call = channel.unary_unary("/podgate.v1.DispatchService/GetPod")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(b"\xff\xff\xff\xff\x0f", timeout=10)  # a field tag with a truncated varint
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid GetPod request message" in (caught.value.details() or "")
