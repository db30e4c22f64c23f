"""A followed log that goes quiet holds nothing of its last line: thousands of followed pods are mostly silent, and
a line can be 16 KiB or more, held by the follower's frames until the next one (there may be none for hours)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator
from datetime import datetime

from gateway.pods.logs import LogFollower


class QuietAfter:
    """A log source whose stream sends its lines, then stays open and silent, as a quiet container's log does."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.silent = asyncio.Event()

    async def stream_logs(
        self, namespace: str, pod: str, container: str, *, follow: bool, timestamps: bool, since_time: datetime | None
    ) -> AsyncIterator[str]:
        for raw in self.lines:
            yield raw
        self.silent.set()
        await asyncio.Event().wait()


async def never(within: float) -> None:
    raise AssertionError("the stream stays open: the follower never waits for a change")


async def test_the_last_line_of_a_quiet_log_is_not_held_by_its_follower() -> None:
    source = QuietAfter(["2026-12-05T00:00:00Z " + "x" * 20_000])
    follower = LogFollower(
        source=source, namespace="default", pod="p", container="main", container_done=lambda: False, wait_change=never
    )
    lines = follower.lines()
    line = await anext(lines)
    assert len(line.text) == 20_000
    held = weakref.ref(line)
    del line
    waiting = asyncio.create_task(anext(lines))
    try:
        async with asyncio.timeout(10):  # bounds a failure only
            await source.silent.wait()
        await asyncio.sleep(0)
        gc.collect()
        assert held() is None, "the follower still holds the last line while its container is silent"
        assert lines not in gc.get_referrers(source.lines[0]), "the follower still holds the last raw line"
    finally:
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await lines.aclose()
