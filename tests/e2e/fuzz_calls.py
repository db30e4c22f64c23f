"""The fuzz test's cases and how each is sent: every RPC of the three services, over real gRPC, as bytes.

Requests travel already serialized (no request serializer on the channel), so a case can be any bytes
at all; its decoded form, when it decodes, says what the gateway was asked.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import ModuleType

import grpc
from google.protobuf import message_factory, text_format
from google.protobuf.message import DecodeError, Message

from gateway._proto.podgate.v1 import clusters_pb2, credentials_pb2, dispatch_pb2
from tests.e2e.fuzz_inputs import Junk, Metadata, metadata, mutate, raw_bytes

MODULES: tuple[ModuleType, ...] = (dispatch_pb2, clusters_pb2, credentials_pb2)
KINDS = ("raw", "random", "mutated")
GRPC_MAX_RECEIVE = 4 << 20
STREAM_WAIT = 3.0  # seconds: a stream still open and quiet after this was accepted (a watch waiting for events)


@dataclass(frozen=True)
class Rpc:
    path: str  # /podgate.v1.Service/Method
    request: type[Message]
    streaming: bool

    @property
    def method(self) -> str:
        return self.path.rsplit("/", 1)[1]


def all_rpcs() -> list[Rpc]:
    """Every method of every podgate service, read from the descriptors so that a new RPC is fuzzed too."""
    return [
        Rpc(
            path=f"/{service.full_name}/{method.name}",
            request=message_factory.GetMessageClass(method.input_type),
            streaming=method.server_streaming,
        )
        for module in MODULES
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    ]


@dataclass(frozen=True)
class Case:
    index: int
    rpc: Rpc
    kind: str
    data: bytes
    metadata: Metadata = ()

    def decoded(self) -> Message | None:
        """The request as the server decodes it; None when it does not decode."""
        try:
            return self.rpc.request.FromString(self.data)
        except DecodeError:
            return None

    def describe(self, limit: int = 600) -> str:
        message = self.decoded()
        shown = text_format.MessageToString(message, as_one_line=True) if message is not None else repr(self.data)
        if len(shown) > limit:
            shown = f"{shown[:limit]}... ({len(shown)} characters)"
        headers = f" with metadata {[(k, v[:40]) for k, v in self.metadata]}" if self.metadata else ""
        return f"case {self.index} {self.rpc.method} ({self.kind}, {len(self.data)} bytes){headers}: {shown}"


@dataclass(frozen=True)
class Outcome:
    case: Case
    code: grpc.StatusCode
    details: str
    response: bytes | None = None  # the first response message, for OK answers


Baselines = Mapping[str, Callable[[Junk], Message]]  # method name -> a valid request of that method
Guard = Callable[[Rpc, Message], bool]  # True for requests that must not be sent (they would harm the world)


@dataclass
class CaseMaker:
    """Builds the cases of one seed: the same seed gives the same bytes, in the same order."""

    seed: int
    baselines: Baselines
    names: list[str]
    refuse: Guard = lambda rpc, message: False
    rng: random.Random = field(init=False)
    junk: Junk = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.junk = Junk(self.rng, self.names)

    def cases(self, per_rpc: int) -> list[Case]:
        plan = [(rpc, KINDS[i % len(KINDS)]) for rpc in all_rpcs() for i in range(per_rpc)]
        self.rng.shuffle(plan)
        return [
            Case(index=i, rpc=rpc, kind=kind, data=self.data(rpc, kind), metadata=self.headers())
            for i, (rpc, kind) in enumerate(plan)
        ]

    def headers(self) -> Metadata:
        """Metadata for one case in four; the others send none, as most clients do."""
        return metadata(self.junk) if self.rng.random() < 0.25 else ()

    def data(self, rpc: Rpc, kind: str) -> bytes:
        while True:
            data = self._attempt(rpc, kind)
            probe = Case(index=-1, rpc=rpc, kind=kind, data=data).decoded()
            if probe is None or not self.refuse(rpc, probe):
                return data

    def _attempt(self, rpc: Rpc, kind: str) -> bytes:
        valid = self.baselines[rpc.method](self.junk)
        if kind == "raw":
            return raw_bytes(self.junk, valid.SerializeToString())
        message = self.junk.fill(rpc.request()) if kind == "random" else mutate(self.junk, valid)
        return message.SerializeToString()


async def send(channel: grpc.aio.Channel, case: Case, deadline: float) -> Outcome:
    """One call, answered within its deadline or reported as DEADLINE_EXCEEDED (a hang is a finding too)."""
    try:
        return await asyncio.wait_for(_send(channel, case, deadline), deadline + 5)
    except TimeoutError:
        return Outcome(case, grpc.StatusCode.DEADLINE_EXCEEDED, "no answer, not even gRPC's deadline, in time")


async def _send(channel: grpc.aio.Channel, case: Case, deadline: float) -> Outcome:
    """One call. A stream is read up to its first message, or until it has stayed open and quiet for
    STREAM_WAIT (a watch past the last event waits, rightly): either way it was accepted, and is cancelled.
    """
    try:
        if not case.rpc.streaming:
            response = await channel.unary_unary(case.rpc.path)(case.data, timeout=deadline, metadata=case.metadata)
            return Outcome(case, grpc.StatusCode.OK, "", response)
        call = channel.unary_stream(case.rpc.path)(case.data, timeout=deadline, metadata=case.metadata)
        try:
            first = await asyncio.wait_for(call.read(), STREAM_WAIT)
        except TimeoutError:
            return Outcome(case, grpc.StatusCode.OK, "")
        finally:
            call.cancel()
        if first is grpc.aio.EOF:
            return Outcome(case, grpc.StatusCode.OK, "")
        return Outcome(case, grpc.StatusCode.OK, "", first)
    except grpc.aio.AioRpcError as e:
        return Outcome(case, e.code(), e.details() or "")


async def send_all(
    channel: grpc.aio.Channel,
    cases: list[Case],
    *,
    concurrency: int,
    deadline: float,
    serial: frozenset[str] = frozenset(),
) -> list[Outcome]:
    """Sends every case with at most `concurrency` calls in flight; outcomes in the order the answers came.

    Cases of the `serial` methods go one at a time through one lane of their own, so that the order of their
    answers is the order the gateway acted on them (a register and a deregister of one name must not race).
    """
    lanes = [iter([c for c in cases if c.rpc.method in serial]), iter([c for c in cases if c.rpc.method not in serial])]
    outcomes: list[Outcome] = []

    async def worker(queue: Iterator[Case]) -> None:
        for case in queue:
            outcomes.append(await send(channel, case, deadline))

    await asyncio.gather(worker(lanes[0]), *(worker(lanes[1]) for _ in range(concurrency - 1)))
    return outcomes
