"""Which event loop `podgate serve` runs on (`server.event_loop`), chosen before the loop starts.

uvloop, when installed (the server extra brings it), is the default: CPython's asyncio gives every TLS
connection a zero-filled 256 KiB read buffer, resident at once, and the gateway holds one TLS connection
per followed log; uvloop allocates its buffer lazily (bench/README.md, dispatch.py memory). `asyncio`
keeps the standard loop, e.g. to rule the loop out when chasing a problem.

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


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value, kept from then on


def map_large_blocks() -> bool:
    """Pins glibc's mmap threshold at 128 KiB; False where there is no glibc (musl, macOS).

    uvloop mallocs a 256 KiB read buffer per TLS connection and touches only its first pages (one per
    followed log). A block that large gets its own mapping, whose untouched pages are never resident,
    until glibc raises the threshold after freeing one (its dynamic threshold, up to 32 MiB): from then
    on the buffers are carved from the heap, whose reused pages are resident. Pinned, RSS per followed
    pod fell 146 -> 103 KiB (bench/README.md, issue 16); a large block costs an mmap and munmap each.
    """
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def loop_name() -> str:
    """The running loop's kind, as `server.event_loop` spells it."""
    return "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"
