"""The gRPC edge alone: the gateway's server CPU per SubmitPod call and per streamed event, nothing below it.

A child process serves the real `api.server.start` (the metrics, error and auth interceptors, an open
gateway's AccessControl) with a servicer that does what DispatchService does at the edge and nothing else:
SubmitPod checks the manifest (`pod_request_from_proto`, the full validation) and answers a record built by
`record_to_proto`; WatchPod streams log-line events built by `stream_event_to_proto`. This process is the
callers; the figure is the child's CPU time (/proc) per call and per event. `PYTHONPATH=<tree>` serves from
another tree, for before/after.

    .venv/bin/python bench/edge.py [--calls 4000] [--callers 100] [--channels 10] [--streams 20 --events 2000]
    .venv/bin/python bench/edge.py --py-spy /tmp/edge.txt        # the server sampled by py-spy
    .venv/bin/python bench/edge.py --token                       # a tenant's static bearer token on every call
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # appended, not first: PYTHONPATH=<tree> decides which gateway is served
    sys.path.append(str(Path(__file__).resolve().parent.parent))

import grpc

from bench import _pyspy
from bench._pods import new_id, pod_request
from bench._stack import child_env, cpu_seconds
from gateway import domain
from gateway._proto.podgate.v1 import clusters_pb2_grpc, credentials_pb2_grpc, dispatch_pb2, dispatch_pb2_grpc
from gateway.policy.identity import new_token


class _EdgeOnly(dispatch_pb2_grpc.DispatchServiceServicer):
    """DispatchService's edge work (caller, validation, conversion) without a dispatcher behind it."""

    def __init__(self, access: Any) -> None:
        self._access = access

    async def SubmitPod(self, request: dispatch_pb2.SubmitPodRequest, context: Any) -> dispatch_pb2.SubmitPodResponse:
        from gateway.api import convert_pods as cv
        from gateway.api.access import current_caller

        caller = current_caller()
        pod = cv.pod_request_from_proto(request.pod, limits=self._access.limits)
        record = domain.PodRecord(
            request=pod, phase=domain.PodPhase.QUEUED, created_at=datetime.now(UTC), namespace=caller.name
        )
        return dispatch_pb2.SubmitPodResponse(pod=cv.record_to_proto(record), created=True)

    async def WatchPod(
        self, request: dispatch_pb2.WatchPodRequest, context: Any
    ) -> AsyncIterator[dispatch_pb2.WatchPodResponse]:
        from gateway.api import convert_pods as cv

        now = datetime.now(UTC)
        for seq in range(1, int(request.cursor[1:] or "0") + 1):
            line = domain.LogLine(container="main", time=now, text=f"line {seq} of a pod's log")
            yield dispatch_pb2.WatchPodResponse(event=cv.stream_event_to_proto(domain.StreamEvent(seq=seq, time=now, item=line)))


TOKEN_ID = "bench-token"


async def serve(state: Path, token_hash: str) -> None:
    from gateway.api import server
    from gateway.api.access import AccessControl
    from gateway.api.audit import Auditor
    from gateway.settings import LiveSettings, Settings
    from gateway.settings.loading import parse_settings
    from gateway.store.sql import open_store

    settings = Settings()
    if token_hash:  # one tenant, admin, whose static token every call carries
        tenant = {"name": "bench", "admin": True, "clusters": ["*"], "namespaces": ["*"]}
        tokens = [{"id": TOKEN_ID, "tenant": "bench", "hash": token_hash}]
        settings = parse_settings({"tenants": [tenant], "authentication": {"static_tokens": tokens}}, env={})
    store = await open_store(path=state / "edge.db")
    access = AccessControl(LiveSettings(settings), Auditor(store, ""))
    servicers = server.Servicers(
        dispatch=_EdgeOnly(access),
        clusters=clusters_pb2_grpc.ClusterServiceServicer(),
        credentials=credentials_pb2_grpc.CredentialsServiceServicer(),
    )
    running = await server.start("127.0.0.1:0", servicers, access=access)
    print(f"serving the edge of {Path(server.__file__).parents[2]}", file=sys.stderr)
    print(running.port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes it
    await running.stop(0)
    await store.close()


async def measure(args: argparse.Namespace, pid: int, port: int, token: str) -> None:
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for _ in range(args.channels)]
    stubs = [dispatch_pb2_grpc.DispatchServiceStub(c) for c in channels]
    requests = [dispatch_pb2.SubmitPodRequest(pod=pod_request(new_id("edge"), duration=1)) for _ in range(args.calls)]
    await stubs[0].SubmitPod(requests[0], metadata=metadata)  # warm: the schema loads, the token is verified

    async def caller(i: int) -> None:
        for request in requests[i :: args.callers]:
            await stubs[i % len(stubs)].SubmitPod(request, metadata=metadata)

    async def watcher(i: int) -> int:
        watch = dispatch_pb2.WatchPodRequest(request_id="x", cursor=f"c{args.events}")
        call = stubs[i % len(stubs)].WatchPod(watch, metadata=metadata)
        return sum([1 async for _ in call])

    before = cpu_seconds(pid)
    await asyncio.gather(*(caller(i) for i in range(args.callers)))
    unary = cpu_seconds(pid) - before
    before = cpu_seconds(pid)
    events = sum(await asyncio.gather(*(watcher(i) for i in range(args.streams))))
    stream = cpu_seconds(pid) - before
    for c in channels:
        await c.close()
    auth = "a tenant's static token" if token else "an open gateway"
    print(
        f"gRPC edge alone, {args.callers} callers on {args.channels} connections, {auth}; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(f"  SubmitPod (interceptors, validation, record_to_proto): {1e6 * unary / args.calls:.0f} us of server CPU per call ({args.calls} calls)")
    print(f"  WatchPod log-line events: {1e6 * stream / events:.1f} us of server CPU per event ({args.streams} streams x {args.events})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--callers", type=int, default=100)
    parser.add_argument("--channels", type=int, default=10)
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--py-spy", type=Path, help="sample the server with py-spy (collapsed stacks here)")
    parser.add_argument("--token", action="store_true", help="tenants configured; each call carries a static token")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # the child
    parser.add_argument("--token-hash", default="", help=argparse.SUPPRESS)  # the child
    args = parser.parse_args()
    if args.serve is not None:
        asyncio.run(serve(args.serve, args.token_hash))
        return
    token, token_hash = new_token(TOKEN_ID) if args.token else ("", "")
    with tempfile.TemporaryDirectory() as state:
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", state, "--token-hash", token_hash],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=child_env(),
        )  # fmt: skip
        try:
            assert child.stdout is not None and child.stdin is not None
            port = int(child.stdout.readline())
            if args.py_spy is not None:
                with _pyspy.recording(child.pid, args.py_spy):
                    asyncio.run(measure(args, child.pid, port, token))
                print(_pyspy.top(args.py_spy))
            else:
                asyncio.run(measure(args, child.pid, port, token))
            child.stdin.close()
            child.wait(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()


if __name__ == "__main__":
    main()
