"""Live events for one watcher of a request: what the journal has just stored, handed over in memory.

The journal still assigns every cursor (the store's sequence numbers); a feed only spares its watcher
reading back what this replica has just written. It holds at most `capacity` events: a watcher that
falls further behind loses its buffer and reads the journal from its cursor instead (`stale`), as it
does for events another replica wrote. `take` hands out only the events right after the watcher's
cursor, so whatever the feed was offered (a batch twice, a batch with a gap before it), the watcher
sees each stored event once, in order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from gateway import domain

FEED_CAPACITY = 500  # events buffered per watcher; past that it reads pages from the store

Read = Callable[[int], Awaitable[list[domain.StreamEvent]]]  # a page of stored events after a cursor


class Feed:
    def __init__(self, capacity: int = FEED_CAPACITY) -> None:
        self.capacity = capacity
        self.stale = True  # the store holds events this feed lacks: read it first
        self.waiting = False
        self.offered = 0  # the highest cursor ever offered: a notification up to it brings nothing new
        self._events: deque[domain.StreamEvent] = deque()
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._events)

    def offer(self, events: Sequence[domain.StreamEvent]) -> None:
        """Stored events, with their cursors; past the capacity, the buffer is dropped and the feed goes stale."""
        if events:
            self.offered = max(self.offered, events[-1].seq)
        if len(self._events) + len(events) > self.capacity:
            self._events.clear()
            self.stale = True
        else:
            self._events.extend(events)
        self._ready.set()

    def invalidate(self) -> None:
        """Events were stored that this feed was not offered (another replica, a hand-over)."""
        self.stale = True
        self._ready.set()

    def notified(self, last_seq: int) -> None:
        """The store holds events up to `last_seq` (a NOTIFY, this replica's own writes included): only
        news if this feed was not offered that far. An event it missed below that shows as a gap in `take`."""
        if last_seq > self.offered:
            self.invalidate()

    def take(self, after: int) -> list[domain.StreamEvent]:
        """The buffered events right after cursor `after`, in order; a gap before them makes the feed stale."""
        out: list[domain.StreamEvent] = []
        while self._events:
            event = self._events[0]
            if event.seq <= after:
                self._events.popleft()
            elif event.seq == after + 1:
                out.append(self._events.popleft())
                after = event.seq
            else:
                self.stale = True
                break
        return out

    async def next_batch(self, after: int, read: Read, page: int) -> list[domain.StreamEvent] | None:
        """What comes after cursor `after`: read from the store (pages of `page`) while the feed is stale,
        else taken from the feed; [] to be asked again at once, None when there is nothing yet."""
        if self.stale:
            self.stale = False
            events = await read(after)
            if len(events) >= page:
                self.stale = True  # more may be stored than one page: read on before trusting the feed
            if events:
                return events
        return self.take(after) or ([] if self.stale else None)

    async def wait(self, within: float | None) -> None:
        """Until offered or invalidated; after `within` seconds the feed goes stale (a lost notification)."""
        self.waiting = True
        try:
            if within is None:
                await self._ready.wait()
            else:
                try:
                    async with asyncio.timeout(within):
                        await self._ready.wait()
                except TimeoutError:
                    self.stale = True
        finally:
            self.waiting = False
            self._ready.clear()
