"""The client against a real grpc.aio server on port 0 (a test peer): error translation with rich details,
stream resume from the last cursor after UNAVAILABLE, bounded retries, bearer token metadata."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from hypothesis import given
from hypothesis import strategies as st

from gateway._proto.podgate.v1 import dispatch_pb2, dispatch_pb2_grpc
from gateway.client import (
    ChannelSpec,
    GatewayClient,
    InvalidRequest,
    Log,
    NotFound,
    PermissionDenied,
    PlacementFailed,
    PodSpecRequest,
    ResourceExhausted,
    Result,
    RetryPolicy,
    Unavailable,
    run_blocking,
    run_to_result,
    with_client,
)
from gateway.client.errors import FailedPrecondition, Internal

FAST = RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.02)


def _status(code: grpc.StatusCode, message: str, detail: Any = None) -> grpc.Status:
    details = []
    if detail is not None:
        packed = any_pb2.Any()
        packed.Pack(detail)
        details.append(packed)
    return rpc_status.to_status(status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=details))


def _events(n: int) -> list[dispatch_pb2.PodEvent]:
    out = [
        dispatch_pb2.PodEvent(cursor=f"c{i}", log=dispatch_pb2.LogLine(container="base", text=f"line {i}"))
        for i in range(1, n)
    ]
    result = dispatch_pb2.PodResult(phase=dispatch_pb2.POD_PHASE_SUCCEEDED, exit_code=0, xcom_json='{"n": 1}')
    return [*out, dispatch_pb2.PodEvent(cursor=f"c{n}", result=result)]


class Peer(dispatch_pb2_grpc.DispatchServiceServicer):
    """RunPod sends `break_after` events then fails UNAVAILABLE `breaks` times; WatchPod resumes after a cursor."""

    def __init__(self, events: list[dispatch_pb2.PodEvent], break_after: int, breaks: int) -> None:
        self.events = events
        self.break_after = break_after
        self.breaks = breaks
        self.calls: list[tuple[str, str]] = []
        self.metadata: list[dict[str, str]] = []
        self.error: grpc.Status | None = None

    async def _stream(self, rpc: str, cursor: str, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        self.calls.append((rpc, cursor))
        self.metadata.append({k: v for k, v in context.invocation_metadata() if isinstance(v, str)})
        if self.error is not None:
            await context.abort_with_status(self.error)
        start = next((i + 1 for i, e in enumerate(self.events) if e.cursor == cursor), 0)
        for sent, event in enumerate(self.events[start:]):
            if self.breaks and sent == self.break_after:
                self.breaks -= 1
                await context.abort(grpc.StatusCode.UNAVAILABLE, "gateway restarting")
            yield event

    async def RunPod(self, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async for e in self._stream("RunPod", "", context):
            yield dispatch_pb2.RunPodResponse(event=e)

    async def WatchPod(self, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async for e in self._stream("WatchPod", request.cursor, context):
            yield dispatch_pb2.WatchPodResponse(event=e)

    async def GetPod(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self.calls.append(("GetPod", request.request_id))
        if self.error is not None:
            await context.abort_with_status(self.error)
        return dispatch_pb2.GetPodResponse(pod=dispatch_pb2.Pod(request_id=request.request_id))

    async def SubmitPod(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        assert self.error is not None
        await context.abort_with_status(self.error)


@pytest.fixture
async def serve() -> AsyncIterator[Any]:
    servers: list[grpc.aio.Server] = []

    async def start(peer: Peer) -> ChannelSpec:
        server = grpc.aio.server()
        dispatch_pb2_grpc.add_DispatchServiceServicer_to_server(peer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        servers.append(server)
        return ChannelSpec(address=f"127.0.0.1:{port}", token="s3cret")

    yield start
    for s in servers:
        await s.stop(None)


REQUEST = PodSpecRequest.build(request_id="r-1", pod={"apiVersion": "v1", "kind": "Pod"})


async def test_run_pod_resumes_from_last_cursor_without_loss_or_duplicate(serve: Any) -> None:
    peer = Peer(_events(8), break_after=3, breaks=2)
    spec = await serve(peer)
    async with GatewayClient(spec, retry=FAST) as client:
        events = [e async for e in client.run_pod(REQUEST)]
    texts = [e.text for e in events if isinstance(e, Log)]
    assert texts == [f"line {i}" for i in range(1, 8)]
    assert isinstance(events[-1], Result) and events[-1].result.xcom() == {"n": 1}
    # The first stream broke after c3; the second (WatchPod from c3) after c6; the third finished.
    assert peer.calls == [("RunPod", ""), ("WatchPod", "c3"), ("WatchPod", "c6")]
    assert all(m.get("authorization") == "Bearer s3cret" for m in peer.metadata)


async def test_a_break_before_any_event_reruns_the_idempotent_run_pod(serve: Any) -> None:
    peer = Peer(_events(2), break_after=0, breaks=1)
    spec = await serve(peer)
    async with GatewayClient(spec, retry=FAST) as client:
        result = await run_to_result(client, REQUEST)
    assert result.exit_code == 0
    assert peer.calls == [("RunPod", ""), ("RunPod", "")]


async def test_watch_pod_from_cursor(serve: Any) -> None:
    spec = await serve(Peer(_events(5), break_after=0, breaks=0))
    async with GatewayClient(spec, retry=FAST) as client:
        cursors = [e.cursor async for e in client.watch_pod("r-1", cursor="c2")]
    assert cursors == ["c3", "c4", "c5"]


async def test_reconnects_are_bounded(serve: Any) -> None:
    peer = Peer(_events(5), break_after=0, breaks=100)
    spec = await serve(peer)
    async with GatewayClient(spec, retry=FAST) as client:
        with pytest.raises(Unavailable, match="gave up after 3 reconnects"):
            await run_to_result(client, REQUEST)
    assert len(peer.calls) == 4  # the first call and three reconnects


async def test_a_caller_slower_than_the_budget_over_one_event_still_resumes_the_stream(serve: Any) -> None:
    """The budget is the gateway's time without progress, not the caller's: a caller that holds an event
    longer than the budget (an Airflow worker writing a log line to slow storage; a test restarting a
    gateway) and then finds the stream broken reconnects from its cursor. It gave up at once ("gave up
    after 0 reconnects"), the gateway up all along."""
    budget = 0.5
    peer = Peer(_events(4), break_after=1, breaks=1)  # one event, then UNAVAILABLE
    spec = await serve(peer)
    events = []
    async with GatewayClient(spec, retry=RetryPolicy(budget=budget, initial_delay=0.01, max_delay=0.02)) as client:
        async for event in client.watch_pod("r-1"):
            events.append(event)
            if len(events) == 1:
                await asyncio.sleep(budget + 0.2)  # the caller's own work with the event, past the budget
    assert [e.cursor for e in events] == ["c1", "c2", "c3", "c4"]
    assert peer.calls == [("WatchPod", ""), ("WatchPod", "c1")]


async def test_an_unreachable_gateway_is_unavailable() -> None:
    async with GatewayClient(ChannelSpec(address="127.0.0.1:1"), retry=FAST) as client:
        with pytest.raises(Unavailable) as caught:
            await client.get_pod("r-1")
    assert caught.value.rpc == "GetPod"


BAD = error_details_pb2.BadRequest(
    field_violations=[
        error_details_pb2.BadRequest.FieldViolation(field="pod.pod_json", description="not valid JSON"),
        error_details_pb2.BadRequest.FieldViolation(field="pod.placement.regions[0]", description="must not be empty"),
    ]
)
UNPLACEABLE = error_details_pb2.PreconditionFailure(
    violations=[
        error_details_pb2.PreconditionFailure.Violation(type="PLACEMENT", subject="eu", description="no GPU nodes"),
        error_details_pb2.PreconditionFailure.Violation(type="PLACEMENT", subject="us", description="region us-east-1"),
    ]
)


@pytest.mark.parametrize(
    ("status", "rpc", "error_type", "check"),
    [
        (
            _status(grpc.StatusCode.INVALID_ARGUMENT, "invalid pod request", BAD),
            "SubmitPod",
            InvalidRequest,
            lambda e: (
                [(v.field, v.description) for v in e.violations]
                == [("pod.pod_json", "not valid JSON"), ("pod.placement.regions[0]", "must not be empty")]
            ),
        ),
        (
            _status(grpc.StatusCode.FAILED_PRECONDITION, "no cluster can take this pod", UNPLACEABLE),
            "SubmitPod",
            PlacementFailed,
            lambda e: e.reasons == {"eu": "no GPU nodes", "us": "region us-east-1"},
        ),
        (
            _status(grpc.StatusCode.FAILED_PRECONDITION, "cluster busy"),
            "GetPod",
            FailedPrecondition,
            lambda e: not isinstance(e, PlacementFailed) and e.violations == (),
        ),
        (
            _status(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "slow down",
                error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=2, nanos=500_000_000)),
            ),
            "SubmitPod",
            ResourceExhausted,
            lambda e: e.retry_after == 2.5,
        ),
        (_status(grpc.StatusCode.NOT_FOUND, "no pod r-1"), "GetPod", NotFound, lambda e: e.message == "no pod r-1"),
        (_status(grpc.StatusCode.PERMISSION_DENIED, "tenant a"), "GetPod", PermissionDenied, lambda e: True),
        (_status(grpc.StatusCode.DATA_LOSS, "odd"), "GetPod", Internal, lambda e: e.message == "odd"),
    ],
    ids=["bad-request", "placement", "precondition", "retry-info", "not-found", "denied", "unknown-code"],
)
async def test_error_translation(serve: Any, status: grpc.Status, rpc: str, error_type: type, check: Any) -> None:
    peer = Peer([], 0, 0)
    peer.error = status
    spec = await serve(peer)
    async with GatewayClient(spec, retry=FAST) as client:
        with pytest.raises(error_type) as caught:
            if rpc == "GetPod":
                await client.get_pod("r-1")
            else:
                await client.submit_pod(REQUEST)
    assert caught.value.rpc == rpc
    assert check(caught.value)
    assert status.details in str(caught.value)


async def test_stream_errors_other_than_unavailable_are_not_retried(serve: Any) -> None:
    peer = Peer([], 0, 0)
    peer.error = _status(grpc.StatusCode.FAILED_PRECONDITION, "no cluster", UNPLACEABLE)
    spec = await serve(peer)
    async with GatewayClient(spec, retry=FAST) as client:
        with pytest.raises(PlacementFailed) as caught:
            await run_to_result(client, REQUEST)
    assert "eu: no GPU nodes" in str(caught.value)
    assert peer.calls == [("RunPod", "")]


async def test_run_blocking_inside_a_running_loop_uses_a_helper_thread() -> None:
    # This test body runs inside an event loop, like on_kill firing while execute() runs the pod.
    async def where() -> str:
        return threading.current_thread().name

    async def fail() -> None:
        raise NotFound("gone", rpc="GetPod")

    assert run_blocking(where) == "podgate-blocking"
    with pytest.raises(NotFound, match="gone"):
        run_blocking(fail)


def test_with_client_from_synchronous_code() -> None:
    with pytest.raises(Unavailable):
        with_client(ChannelSpec(address="127.0.0.1:1"), lambda c: c.get_pod("r-1"), retry=FAST)


@pytest.mark.parametrize(("attempt", "ceiling"), [(1, 0.2), (2, 0.4), (3, 0.8), (5, 3.2), (6, 5.0), (40, 5.0)])
def test_retry_policy_backoff_ceiling(attempt: int, ceiling: float) -> None:
    assert RetryPolicy().ceiling(attempt) == pytest.approx(ceiling)
    assert RetryPolicy().delay(attempt, 0.0, 0.5) == pytest.approx(ceiling / 2)


@given(
    attempt=st.integers(1, 10_000),
    elapsed=st.floats(0, 200, allow_nan=False),
    jitter=st.floats(0, 1, exclude_max=True),
)
def test_retry_delays_are_full_jitter_inside_the_budget(attempt: int, elapsed: float, jitter: float) -> None:
    policy = RetryPolicy()
    delay = policy.delay(attempt, elapsed, jitter)
    if elapsed >= policy.budget:
        assert delay is None
    else:
        assert delay is not None and 0 <= delay <= policy.ceiling(attempt)
        assert elapsed + delay <= policy.budget


def test_the_default_retry_rides_out_a_60_second_outage_with_unlucky_jitter() -> None:
    """Every wait at its longest: a gateway back after 60 s is still retried before the budget runs out."""
    policy, elapsed, attempt = RetryPolicy(), 0.0, 0
    while (delay := policy.delay(attempt + 1, elapsed, 0.999999)) is not None and elapsed <= 60:
        attempt, elapsed = attempt + 1, elapsed + delay + 1.0  # a refused call costs up to a second
    assert elapsed > 60


def test_attempts_cap_a_one_shot_policy() -> None:
    assert RetryPolicy(attempts=2).delay(2, 0.0, 0.5) is not None
    assert RetryPolicy(attempts=2).delay(3, 0.0, 0.5) is None


@given(
    attempt=st.integers(1, 10_000),
    elapsed=st.floats(0, 200, allow_nan=False),
    jitter=st.floats(0, 1, exclude_max=True),
)
def test_first_contact_bounds_only_a_client_the_gateway_never_answered(
    attempt: int, elapsed: float, jitter: float
) -> None:
    policy = RetryPolicy(first_contact=5.0)
    never = policy.delay(attempt, elapsed, jitter, answered=False)
    assert (never is None) == (elapsed >= 5.0)
    assert never is None or elapsed + never <= 5.0
    assert policy.delay(attempt, elapsed, jitter, answered=True) == RetryPolicy().delay(attempt, elapsed, jitter)
    assert RetryPolicy().delay(attempt, elapsed, jitter, answered=False) == RetryPolicy().delay(attempt, elapsed, jitter)


LONG_BUT_QUICK_TO_GIVE_UP = RetryPolicy(budget=60.0, first_contact=0.3, initial_delay=0.02, max_delay=0.05)


@pytest.mark.parametrize("call", ["get_pod", "run_pod"])
async def test_a_gateway_never_reached_is_given_up_on_after_first_contact(call: str) -> None:
    async with GatewayClient(ChannelSpec(address="127.0.0.1:1"), retry=LONG_BUT_QUICK_TO_GIVE_UP) as client:
        with pytest.raises(Unavailable) as caught:
            async with asyncio.timeout(20):  # far below the 60 s budget it would otherwise wait out
                if call == "get_pod":
                    await client.get_pod("r-1")
                else:
                    await run_to_result(client, REQUEST)
    assert "gave up after" not in str(caught.value)  # nothing was ever resumed: the connection error alone


async def test_a_stream_the_gateway_answered_rides_out_an_outage_past_first_contact() -> None:
    """The gateway answers, goes away for several times first_contact, comes back on its port: the stream
    resumes from its cursor, as a restart or failover should be ridden out."""
    peer = Peer(_events(6), break_after=1, breaks=1)  # one event, then the stream breaks
    server = grpc.aio.server()
    dispatch_pb2_grpc.add_DispatchServiceServicer_to_server(peer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    back: list[grpc.aio.Server] = []

    async def restart_later() -> None:
        await asyncio.sleep(1.5)  # five times first_contact
        again = grpc.aio.server()
        dispatch_pb2_grpc.add_DispatchServiceServicer_to_server(peer, again)
        again.add_insecure_port(f"127.0.0.1:{port}")
        await again.start()
        back.append(again)

    restart: asyncio.Task[None] | None = None
    events: list[Any] = []
    try:
        spec = ChannelSpec(address=f"127.0.0.1:{port}")
        async with GatewayClient(spec, retry=LONG_BUT_QUICK_TO_GIVE_UP) as client, aclosing(client.watch_pod("r-1")) as stream:
            async for event in stream:
                events.append(event)
                if restart is None:  # after the first event: the gateway goes away
                    await server.stop(None)
                    restart = asyncio.create_task(restart_later())
    finally:
        if restart is not None:
            await restart
        for s in back:
            await s.stop(None)
    assert [e.cursor for e in events] == [f"c{i}" for i in range(1, 7)]
    assert peer.calls == [("WatchPod", ""), ("WatchPod", "c1")]
