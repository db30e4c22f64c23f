"""CPU of a whole SubmitPod below grpc's core, in process: what a call costs the gateway beyond grpc's floor.

Usage: [PYTHONPATH=<tree>] .venv/bin/python bench/submit_rpc.py [--pods N] [--callers C] [--rounds R] [--profile]

The served method exactly as `podgate serve` wraps it (api/methods.py: the request id and count, errors as
statuses and the request's decoding, authentication of an open gateway) around the real DispatchService,
Dispatcher, Journal, AccessControl and SQLite store (its writer thread, group commit), called by `C`
concurrent callers with the throughput bench's request as bytes, each answer serialised as grpc would. What
is not ours is left out: grpc's core and its hand-off to the loop (bench/edge_grpc.py measures that floor),
the clusters (a fixed fleet of 3 synthetic clusters of 2 nodes stands in for the registry, as in
bench/submit_path.py) and the pod runners (each runner's task is created, as a submission creates it, and
cancelled before it runs: the runner's work is bench/follow_path.py's and the throughput bench's).

Printed: the event loop's thread CPU a call (the figure a SubmitPod takes from the loop), the whole process's
(the store's writer thread too), best of R rounds of N calls on fresh request ids. `--profile`: a further
round under cProfile (the loop's thread only), its top functions by time inside them. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # appended, not first: PYTHONPATH=<tree> decides which gateway is measured
    sys.path.append(str(Path(__file__).resolve().parent.parent))

import uvloop

from bench._pods import new_id, pod_request
from bench.placement import synthetic_clusters
from gateway import domain, gctuning
from gateway._proto.podgate.v1 import dispatch_pb2, dispatch_pb2_grpc
from gateway.api.access import AccessControl
from gateway.api.audit import Auditor
from gateway.api.dispatch_service import DispatchService
from gateway.api.methods import edge_wrap, served
from gateway.eventloop import pin_malloc_thresholds
from gateway.pods.dispatcher import Dispatcher
from gateway.pods.journal import LOG_HOLD_SECONDS, Journal
from gateway.settings import LiveSettings, Settings
from gateway.store.sql import open_store

METHOD = "/podgate.v1.DispatchService/SubmitPod"


class _Runtime:
    def __init__(self, snapshot: domain.ClusterSnapshot) -> None:
        self.spec = snapshot.spec


class _Fleet:
    """What the dispatcher and the servicer ask of the registry, over a fixed fleet (no cluster connection)."""

    def __init__(self, snapshots: list[domain.ClusterSnapshot]) -> None:
        self._snapshots = snapshots
        self._runtimes = {s.spec.name: _Runtime(s) for s in snapshots}

    def snapshots(self) -> list[domain.ClusterSnapshot]:
        return list(self._snapshots)

    def names(self) -> list[str]:
        return sorted(self._runtimes)

    def get(self, name: str) -> _Runtime:
        return self._runtimes[name]

    def resolve(self, name: str) -> str:
        return name

    def regions(self) -> set[str]:
        return {s.spec.region for s in self._snapshots}

    def logs_share_connections(self) -> bool:
        return True


class _NoRunners(Dispatcher):
    """Each runner is created and its task started as a submission does it, then cancelled before it runs."""

    def _start(self, record: domain.PodRecord, *, fresh: bool = False) -> None:
        super()._start(record, fresh=fresh)
        self._runners[record.request.request_id][1].cancel()


class _Context:
    """The little of grpc.aio's ServicerContext an open gateway's SubmitPod reads."""

    def invocation_metadata(self) -> tuple[()]:
        return ()

    def auth_context(self) -> dict[str, Any]:
        return {}

    def code(self) -> None:
        return None

    async def abort_with_status(self, status: Any) -> None:
        raise RuntimeError(f"SubmitPod refused: {status}")


async def _round(handler: Any, pods: int, callers: int) -> tuple[float, float]:
    """(loop thread CPU, process CPU) seconds for `pods` SubmitPod calls from `callers` concurrent callers."""
    requests = [
        dispatch_pb2.SubmitPodRequest(pod=pod_request(new_id("sr"), duration=1.0)).SerializeToString()
        for _ in range(pods)
    ]
    serialise = handler.response_serializer or (lambda answer: answer)
    pending = iter(requests)
    context = _Context()

    async def caller() -> None:
        for request in pending:
            serialise(await handler.unary_unary(request, context))

    thread, process = time.thread_time(), time.process_time()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return time.thread_time() - thread, time.process_time() - process


async def main(args: argparse.Namespace) -> None:
    import gateway

    settings = LiveSettings(Settings())
    with tempfile.TemporaryDirectory(prefix="submit-rpc-") as tmp:
        store = await open_store(path=Path(tmp) / "gateway.db")
        fleet = _Fleet(synthetic_clusters(3, 2))
        journal = Journal(store, log_hold_seconds=LOG_HOLD_SECONDS)
        dispatcher = _NoRunners(store, fleet, journal, settings)  # type: ignore[arg-type]
        access = AccessControl(settings, Auditor(store, ""))
        service = DispatchService(dispatcher, fleet, access)  # type: ignore[arg-type]
        table = served(
            [lambda s: dispatch_pb2_grpc.add_DispatchServiceServicer_to_server(service, s)], edge_wrap(access)
        )
        handler = table.service(type("Details", (), {"method": METHOD, "invocation_metadata": ()})())
        gctuning.settle()  # as `podgate serve` does once started (its malloc thresholds are pinned in __main__)
        print(
            f"gateway from {Path(gateway.__file__).parent.parent}; {args.pods} SubmitPod calls from {args.callers} callers"
        )
        await _round(handler, args.callers, args.callers)  # warm-up: imports, caches, the first statements
        best: tuple[float, float] | None = None
        for _ in range(args.rounds):
            spent = await _round(handler, args.pods, args.callers)
            best = spent if best is None or spent[0] < best[0] else best
            print(
                f"  {1e6 * spent[0] / args.pods:7.1f} us of the loop's thread a call ({1e6 * spent[1] / args.pods:.1f} us the process)"
            )
        assert best is not None
        print(
            f"best of {args.rounds}: {1e6 * best[0] / args.pods:.1f} us of the loop's thread a SubmitPod, {1e6 * best[1] / args.pods:.1f} us the process"
        )
        if args.profile:
            profile = cProfile.Profile()
            profile.enable()
            await _round(handler, args.pods, args.callers)
            profile.disable()
            pstats.Stats(profile).sort_stats("tottime").print_stats(args.profile_rows)
        await journal.close()
        await dispatcher.close()
        await store.close()


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--callers", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--profile-rows", type=int, default=40)
    return parser.parse_args()


if __name__ == "__main__":
    pin_malloc_thresholds()
    uvloop.run(main(parse()))
