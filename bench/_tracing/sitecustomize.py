"""tracemalloc in a `podgate serve` started by bench/memory_breakdown.py (this directory on its PYTHONPATH,
PODGATE_TRACE_DIR set): SIGUSR2 starts tracing, each SIGUSR1 writes a snapshot.

Tracing starts on a signal, not at once: under tracemalloc, importing and starting the gateway takes
minutes on a loaded machine, and what a pod costs is what grows between two snapshots taken after.
Snapshot k goes to $PODGATE_TRACE_DIR/snap-k.tracemalloc, with snap-k.json beside it: the traced total,
tracemalloc's own memory (to subtract from RSS) and glibc's malloc counters (mallinfo2), so memory
allocated outside Python (OpenSSL, libuv, gRPC core, SQLite) can be told from Python's.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType

FRAMES = int(os.environ.get("PODGATE_TRACE_FRAMES", "15"))


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def mallinfo() -> dict[str, int]:
    """glibc's counters: `uordblks` bytes in use from the heap, `hblkhd` in mmapped blocks."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
    except (OSError, AttributeError):
        return {}
    info = libc.mallinfo2()
    return {name: int(getattr(info, name)) for name, _ in _MallInfo2._fields_}


def census() -> dict[str, list[int]]:
    """gc-tracked objects by type (module.qualname, coroutines and generators by their code's qualname, a
    frame by its function): [count, shallow bytes]. Says what a pod holds, where tracemalloc says who made it."""
    found: dict[str, list[int]] = {}
    for obj in gc.get_objects():
        kind = type(obj)
        name = f"{kind.__module__}.{kind.__qualname__}"
        code = getattr(obj, "cr_code", None) or getattr(obj, "ag_code", None) or getattr(obj, "gi_code", None)
        if code is not None:
            name += f" {code.co_qualname}"
        elif isinstance(obj, FrameType):
            name += f" {obj.f_code.co_qualname}"
        slot = found.setdefault(name, [0, 0])
        slot[0] += 1
        slot[1] += sys.getsizeof(obj)
    return found


def install(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    taken = 0

    def start(signum: int, frame: FrameType | None) -> None:
        tracemalloc.start(FRAMES)
        (out / "started").write_text("")

    def dump(signum: int, frame: FrameType | None) -> None:
        nonlocal taken
        taken += 1
        gc.collect()
        objects, kinds = len(gc.get_objects()), census()  # before the snapshot: its traces are tuples too
        snapshot = tracemalloc.take_snapshot()
        snapshot.dump(str(out / f"snap-{taken}.tracemalloc"))
        current, peak = tracemalloc.get_traced_memory()
        facts = {
            "traced": current,
            "traced_peak": peak,
            "tracemalloc_overhead": tracemalloc.get_tracemalloc_memory(),
            "gc_objects": objects,
            "census": kinds,
            "malloc": mallinfo(),
        }
        (out / f"snap-{taken}.json").write_text(json.dumps(facts))

    signal.signal(signal.SIGUSR2, start)
    signal.signal(signal.SIGUSR1, dump)


if os.environ.get("PODGATE_TRACE_DIR"):
    install(Path(os.environ["PODGATE_TRACE_DIR"]))
