"""Composition root: wires store, registry, dispatcher and servicers, then serves until stopped."""

from __future__ import annotations

import asyncio
import logging
import signal

from gateway.api import server

log = logging.getLogger(__name__)


async def serve_forever(*, address: str, cluster_files: list[str]) -> int:
    running = await server.start(address, server.placeholder_servicers())
    host = address.rsplit(":", 1)[0]
    print(f"podgate: serving on {host}:{running.port} (health: SERVING)", flush=True)
    print(
        "  try: podgate clusters list    |    podgate run --region eu-west-1 --image python:3.12 -- python -c 'print(42)'"
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await running.stop()
    return 0
