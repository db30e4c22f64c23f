"""The dispatch core end to end: API requests per pod, overhead against a direct create, dispatches per
second, and the gateway's memory with 10,000 pods in flight.

`podgate sim` (bench/clusters_virtual.yaml: the clusters of clusters/local.yaml on virtual nodes) and
`podgate serve` run as two child processes, as an operator runs them; this process is the gRPC callers.
Each part starts a fresh pair. Nothing is asserted: figures are printed, each with a one-line summary.

    .venv/bin/python bench/dispatch.py [--quick] [requests|overhead|throughput|memory ...]
    .venv/bin/python bench/dispatch.py requests --pods 50 --durations 10 120
    .venv/bin/python bench/dispatch.py overhead --pods 200 --concurrency 4
    .venv/bin/python bench/dispatch.py throughput --pods 2000 --callers 200 --channels 20
    .venv/bin/python bench/dispatch.py throughput --pods 2000 --callers 200 --channels 20 --postgres
    .venv/bin/python bench/dispatch.py memory --pods 10000
    .venv/bin/python bench/dispatch.py memory --pods 10000 --log-every 60    # each pod logs a line a minute
    .venv/bin/python bench/dispatch.py memory --pods 10000 --profile /tmp/gw.prof   # gateway under cProfile
    .venv/bin/python bench/dispatch.py throughput --py-spy /tmp/gw.txt [--native]   # gateway sampled by py-spy
    .venv/bin/python bench/dispatch.py memory --pods 3000 --log-every 60 --hold 60 --py-spy /tmp/hold.txt
                                          # py-spy over the holding phase only (--hold seconds)

Placement time with 1,000 registered clusters is bench/placement.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import shutil
import sys
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _measure

PARTS: dict[str, Callable[[Path, argparse.Namespace], Coroutine[Any, Any, None]]] = {
    "requests": _measure.api_requests,
    "overhead": _measure.overhead,
    "throughput": _measure.throughput,
    "memory": _measure.memory,
}
QUICK = {
    "pods_requests": 20,
    "durations": [5.0, 30.0],
    "pods_overhead": 40,
    "pods_throughput": 300,
    "pods_memory": 1000,
}
FULL = {
    "pods_requests": 50,
    "durations": [10.0, 120.0],
    "pods_overhead": 200,
    "pods_throughput": 2000,
    "pods_memory": 10_000,
}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parts", nargs="*", metavar="PART", help=f"what to measure: {', '.join(PARTS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller runs (about a minute each)")
    parser.add_argument("--pods", type=int, help="pods per part (default: per part, smaller with --quick)")
    parser.add_argument("--durations", type=float, nargs="+", help="requests: pod durations in seconds")
    parser.add_argument("--concurrency", type=int, default=4, help="overhead: pods in flight at once")
    parser.add_argument("--callers", type=int, default=200, help="throughput/memory: concurrent SubmitPod callers")
    parser.add_argument("--channels", type=int, default=20, help="throughput/memory: gRPC connections")
    parser.add_argument("--no-logs", action="store_true", help="memory: pods whose logs are not followed")
    parser.add_argument(
        "--log-every", type=float, default=0.0, help="memory: each pod prints a line every this many seconds"
    )
    parser.add_argument(
        "--hold", type=float, default=10.0, help="memory: seconds the CPU of holding the pods is measured over"
    )
    parser.add_argument("--profile", type=Path, help="run the gateway under cProfile, writing stats here")
    parser.add_argument("--py-spy", type=Path, help="sample the gateway with py-spy (collapsed stacks here)")
    parser.add_argument("--native", action="store_true", help="with --py-spy: C frames too")
    parser.add_argument(
        "--spy-on", choices=("gateway", "sim"), default="gateway", help="with --py-spy: the process sampled"
    )
    parser.add_argument(
        "--callers-loop", choices=("uvloop", "asyncio"), default="uvloop",
        help="this process's event loop, its gRPC callers' (uvloop, as the gateway's, when installed)",
    )  # fmt: skip
    parser.add_argument(
        "--gateway-cores", type=float, default=0.0,
        help="throughput: the gateway capped at this share of a core (a cgroup quota)",
    )  # fmt: skip
    parser.add_argument(
        "--sim-cores", type=float, default=0.0,
        help="throughput: the simulator capped so (a busy API server: its watches lag behind its pods' logs)",
    )  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the state directories (logs, database)")
    parser.add_argument("--postgres", action="store_true", help="the gateway on a PostgreSQL server started for the run")
    args = parser.parse_args(argv)
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}: choose from {', '.join(PARTS)}")
    defaults = QUICK if args.quick else FULL
    args.parts = args.parts or list(PARTS)
    args.durations = args.durations or defaults["durations"]
    args.defaults = defaults
    return args


def pods_for(args: argparse.Namespace, part: str) -> int:
    return int(args.pods or args.defaults[f"pods_{part}"])


async def main(args: argparse.Namespace) -> None:
    for part in args.parts:
        args.part_pods = pods_for(args, part)
        tmp = Path(tempfile.mkdtemp(prefix=f"podgate-bench-{part}-"))
        try:
            print(f"\n== {part} ==", flush=True)
            await PARTS[part](tmp, args)
        finally:
            if args.keep:
                print(f"(state, sim.log and gateway.log kept in {tmp})")
            else:
                shutil.rmtree(tmp, ignore_errors=True)
    print("\n(placement time with 1,000 registered clusters: .venv/bin/python bench/placement.py)")


def run(args: argparse.Namespace) -> None:
    """main(args) on the loop asked for: uvloop's C loop spends less of the machine's CPU on the callers."""
    runner: Callable[[Coroutine[Any, Any, None]], None] = asyncio.run
    if args.callers_loop == "uvloop":
        with contextlib.suppress(ImportError):
            runner = importlib.import_module("uvloop").run
    print(f"callers' event loop: {'asyncio' if runner is asyncio.run else 'uvloop'}", flush=True)
    runner(main(args))


if __name__ == "__main__":
    run(parse())
