"""Blocking entry points for synchronous callers (the CLI, an Airflow worker's execute and on_kill)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from gateway.client.channel import ChannelSpec
from gateway.client.client import DEFAULT_RETRY, GatewayClient, RetryPolicy

T = TypeVar("T")


def run_blocking(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Runs a coroutine to completion from synchronous code. When this thread already runs an event loop (a
    signal handler such as Airflow's on_kill fires inside one), the coroutine runs on a helper thread."""
    try:
        asyncio.get_running_loop()
        in_loop = True
    except RuntimeError:
        in_loop = False
    if not in_loop:
        return asyncio.run(make())
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(make())
        except BaseException as e:
            box["error"] = e

    helper = threading.Thread(target=target, name="podgate-blocking", daemon=True)
    helper.start()
    helper.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def with_client(
    spec: ChannelSpec, use: Callable[[GatewayClient], Coroutine[Any, Any, T]], *, retry: RetryPolicy = DEFAULT_RETRY
) -> T:
    """Opens a client on a fresh event loop, runs `use(client)`, closes the channel: one blocking call."""

    async def main() -> T:
        async with GatewayClient(spec, retry=retry) as client:
            return await use(client)

    return run_blocking(main)
