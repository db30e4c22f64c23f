"""Which event loop `podgate serve` runs on (`server.event_loop`), chosen before the loop starts.

uvloop, when installed (the server extra brings it), is the default: CPython's asyncio gives every TLS
connection a zero-filled 256 KiB read buffer, resident at once, and the gateway holds one TLS connection
per followed log; uvloop allocates its buffer lazily (bench/README.md, dispatch.py memory). `asyncio`
keeps the standard loop, e.g. to rule the loop out when chasing a problem.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


class LoopUnavailable(Exception):
    """`server.event_loop: uvloop` was asked for and uvloop is not installed."""


def loop_factory(choice: str) -> LoopFactory | None:
    """The factory for `asyncio.Runner`, or None for asyncio's own loop."""
    if choice == "asyncio":
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


def loop_name() -> str:
    """The running loop's kind, as `server.event_loop` spells it."""
    return "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"
