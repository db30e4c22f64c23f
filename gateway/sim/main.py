"""`podgate sim`: run the simulated clusters in the foreground until interrupted."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import sys
from pathlib import Path
from typing import TextIO

from gateway.sim.cluster import SimWorld
from gateway.sim.config import SimConfigError

# Young allocations; young collections per middle; middle per full. The simulator allocates many short-lived
# containers per request (decoded bodies, copies, encodings), and every pod it keeps, with its versions in the
# watch history, is a tree of dicts a full collection walks: with CPython's defaults (700, 10, 10) the
# collector took about 13 % of `podgate sim`'s CPU under bench/dispatch.py throughput (bench/README.md).
GC_THRESHOLDS = (50_000, 20, 50)


def describe(world: SimWorld) -> str:
    lines = [f"{'CLUSTER':<20} {'URL':<28} KUBECONFIG"]
    for cluster in world.clusters.values():
        lines.append(f"{cluster.name:<20} {cluster.url:<28} {cluster.kubeconfig_path}")
    lines.append(f"merged kubeconfig (a context per cluster): {world.kubeconfig_path}")
    if world.control is not None:
        lines.append(f"fault control endpoint: {world.control.url} (URL and bearer token in {world.control_path})")
    return "\n".join(lines)


async def run(world: SimWorld, *, out: TextIO = sys.stdout) -> int:
    """Starts the world, prints where its clusters are, serves until SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with world:
            settle_gc()
            print(describe(world), file=out, flush=True)
            await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(sig)
    return 0


def settle_gc() -> None:
    """Once started: what startup built (modules, schemas, certificates) is frozen out of every later
    collection, and collections run less often. Only in the `podgate sim` process, whose heap is the
    simulator's own (tests running clusters in-process keep their interpreter's settings)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def main(config: str, kubeconfig_dir: str, *, control_port: int = 0) -> int:
    """Every cluster with a `sim:` block in `config`; exit code 2 with a clear message for a bad config."""
    try:
        world = SimWorld.from_file(config, kubeconfig_dir=Path(kubeconfig_dir).resolve(), control_port=control_port)
    except SimConfigError as e:
        print(f"podgate sim: {e}", file=sys.stderr)
        return 2
    if not world.clusters:
        print(f"podgate sim: {config} defines no cluster with a 'sim:' block", file=sys.stderr)
        return 2
    return asyncio.run(run(world))
