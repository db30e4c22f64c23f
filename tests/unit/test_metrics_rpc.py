"""Requests by RPC and code, counted by the server's interceptor over a real grpc.aio server on port 0."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
from collections.abc import AsyncIterator

import grpc
import pytest

from gateway import errors
from gateway._proto.podgate.v1 import clusters_pb2_grpc, credentials_pb2_grpc, dispatch_pb2, dispatch_pb2_grpc
from gateway.api import server
from gateway.observability import logging as obs
from gateway.observability import metrics

GET = "podgate.v1.DispatchService/GetPod"
WATCH = "podgate.v1.DispatchService/WatchPod"
log = logging.getLogger("tests.rpc")


class _Dispatch(dispatch_pb2_grpc.DispatchServiceServicer):
    async def GetPod(self, request: dispatch_pb2.GetPodRequest, context: object) -> dispatch_pb2.GetPodResponse:
        log.info("GetPod %s", request.request_id)
        if request.request_id == "crash":
            raise RuntimeError("boom")
        if request.request_id == "missing":
            raise errors.NotFound("no such request")
        return dispatch_pb2.GetPodResponse()

    async def WatchPod(
        self, request: dispatch_pb2.WatchPodRequest, context: object
    ) -> AsyncIterator[dispatch_pb2.WatchPodResponse]:
        yield dispatch_pb2.WatchPodResponse()
        if request.request_id == "missing":
            raise errors.NotFound("no such request")
        if request.request_id == "forever":
            await asyncio.sleep(60)


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    servicers = server.Servicers(
        dispatch=_Dispatch(),
        clusters=clusters_pb2_grpc.ClusterServiceServicer(),
        credentials=credentials_pb2_grpc.CredentialsServiceServicer(),
    )
    running = await server.start("127.0.0.1:0", servicers, access=None)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        yield ch
    await running.stop(0)


def count(rpc: str, code: str) -> float:
    return metrics.REGISTRY.get_sample_value("podgate_requests_total", {"rpc": rpc, "code": code}) or 0.0


async def counted(rpc: str, code: str, expected: float) -> float:
    """The count once it reaches expected (within 5 s): the server records after the caller has its status."""
    for _ in range(100):
        if count(rpc, code) >= expected:
            break
        await asyncio.sleep(0.05)
    return count(rpc, code)


@pytest.mark.parametrize(
    ("request_id", "code"),
    [("ok", "OK"), ("missing", "NOT_FOUND"), ("crash", "INTERNAL")],
)
async def test_unary_requests_by_code(channel: grpc.aio.Channel, request_id: str, code: str) -> None:
    before = count(GET, code)
    stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
    try:
        await stub.GetPod(dispatch_pb2.GetPodRequest(request_id=request_id))
    except grpc.aio.AioRpcError as e:
        assert e.code().name == code
    assert await counted(GET, code, before + 1) == before + 1


@pytest.mark.parametrize(("request_id", "code"), [("done", "OK"), ("missing", "NOT_FOUND")])
async def test_stream_requests_by_code(channel: grpc.aio.Channel, request_id: str, code: str) -> None:
    before = count(WATCH, code)
    stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) if code != "OK" else contextlib.nullcontext():
        async for _ in stub.WatchPod(dispatch_pb2.WatchPodRequest(request_id=request_id)):
            pass
    assert await counted(WATCH, code, before + 1) == before + 1


async def test_a_stream_the_caller_leaves_counts_as_cancelled(channel: grpc.aio.Channel) -> None:
    before = count(WATCH, "CANCELLED")
    call = dispatch_pb2_grpc.DispatchServiceStub(channel).WatchPod(dispatch_pb2.WatchPodRequest(request_id="forever"))
    await call.read()
    call.cancel()
    assert await counted(WATCH, "CANCELLED", before + 1) == before + 1


async def test_each_rpc_logs_under_its_request_id(channel: grpc.aio.Channel) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(obs.formatter("json"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
        await stub.GetPod(dispatch_pb2.GetPodRequest(request_id="a"), metadata=(("x-request-id", "trace-42"),))
        await stub.GetPod(dispatch_pb2.GetPodRequest(request_id="b"))
        await stub.GetPod(dispatch_pb2.GetPodRequest(request_id="c"), metadata=(("x-request-id", "trace-43"),))
    finally:
        log.removeHandler(handler)
    first, second, third = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["request_id"] == "trace-42"
    assert second["request_id"] and second["request_id"] != "trace-42"
    assert third["request_id"] == "trace-43", "the handler wrapped once per method reads each call's id"
