"""Which event loop `podgate serve` runs on (`server.event_loop`), chosen before the loop starts.

uvloop, when installed (the server extra brings it), is the default: CPython's asyncio gives every TLS
connection a zero-filled 256 KiB read buffer, resident at once; uvloop allocates its buffer lazily
(bench/README.md, dispatch.py memory). `asyncio` keeps the standard loop, e.g. to rule the loop out when
chasing a problem.

The embedded local clusters (no cluster files) run their pods as real processes from the gateway's own
process; children spawned from uvloop there die before their command starts (exit 134), so `auto` keeps
the standard loop with them, and `uvloop` with them is refused.
"""

from __future__ import annotations

import asyncio
import ctypes
import importlib
from collections.abc import Callable

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


class LoopUnavailable(Exception):
    """`server.event_loop: uvloop` was asked for and cannot be had."""


def loop_factory(choice: str, *, embedded_clusters: bool = False) -> LoopFactory | None:
    """The factory for `asyncio.Runner`, or None for asyncio's own loop."""
    if choice == "uvloop" and embedded_clusters:
        raise LoopUnavailable(
            "server.event_loop uvloop cannot run the embedded local clusters' pod processes; "
            "set it to auto or asyncio, or register clusters with clusters.files"
        )
    if choice == "asyncio" or embedded_clusters:
        return None
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        if choice == "uvloop":
            raise LoopUnavailable(
                "server.event_loop is uvloop but uvloop is not installed (pip install 'podgate[server]'), "
                "or set server.event_loop to auto or asyncio"
            ) from None
        return None
    factory: LoopFactory = uvloop.new_event_loop
    return factory


M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1024 * 1024  # blocks below it come from the heap, larger ones get a mapping of their own
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD  # free memory kept at the heap's top before it is given back


def pin_malloc_thresholds() -> bool:
    """Pins glibc's mmap threshold at 1 MiB and its trim threshold at 2 MiB; False where there is no glibc.

    Every TLS read on uvloop allocates a 256 KiB bytes object (`SSLObject.read` of its maximum read size) and
    shrinks it to what was read. Below the mmap threshold that is heap work; above it, an mmap, a page fault,
    an mremap and, once freed, an munmap whose TLB shootdown reaches every thread of the process: ~10 us a
    read here against ~1.5, and ~2 % of the gateway's CPU under load (bench/README.md, helper grpc5). Pinned,
    neither threshold moves with what the process freed (glibc's dynamic threshold could climb to 32 MiB and
    keep twice that at the heap's top), and the trim threshold above a read's size keeps each freed read
    buffer from being handed back with brk and faulted in again. (Until Dec 5 the threshold was pinned at
    128 KiB so that each followed log's own TLS connection kept its 256 KiB buffer in a mapping: logs share
    HTTP/2 connections now, up to 100 streams each; decision 0040.)
    """
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def loop_name() -> str:
    """The running loop's kind, as `server.event_loop` spells it."""
    return "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"
