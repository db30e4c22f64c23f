"""`podgate sim`: run the simulated clusters in the foreground until interrupted."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import signal
import sys
from collections.abc import Callable
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
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    lines.append(f"event loop: {'uvloop' if loop == 'uvloop' else 'asyncio'} (uvloop when every node is virtual)")
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
    with asyncio.Runner(loop_factory=loop_factory(world)) as runner:
        return runner.run(run(world))


def loop_factory(world: SimWorld) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when no node of any cluster runs pod processes, else the standard loop (None).

    uvloop's TLS and loop are C: they cut `podgate sim`'s CPU per pod (bench/README.md, issue 16) where the
    virtual runtime serves thousands of pods. A process runtime cannot have it: children spawned from uvloop
    die before their command starts (exit 134; gateway/eventloop.py says the same of the gateway)."""
    if not all(runtime == "virtual" for runtime in node_runtimes(world)):
        return None
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def node_runtimes(world: SimWorld) -> list[str]:
    """Every node's runtime, as its kubelet will choose it (the cluster's runtime.nodeRuntimes first)."""
    found = []
    for cluster in world.clusters.values():
        chosen = (cluster.spec.runtime or {}).get("nodeRuntimes") or {}
        found += [str(chosen.get(node.name, node.runtime)) for node in cluster.spec.nodes]
    return found
