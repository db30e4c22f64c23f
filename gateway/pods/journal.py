"""A request's event stream, durable in the store and followed live.

Everything a RunPod/WatchPod client sees is first written here, then read back from the store page
by page: a reconnecting client resumes from its cursor with no gap and no repeat, across gateway
restarts, and a slow client costs one page of memory, not a growing queue. Log lines are batched
(many lines, one insert); any other item flushes the batch first so order is kept. A batch is written
at once when a follower of the request waits for the next event (it would otherwise see each live line
only after the batch interval): cursors stay those the store assigns, and lines that come while a
write is under way still go together in the next one. A change of the request's record and the events
announcing it are one store write (`record`): never one without the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from gateway import domain, errors
from gateway.observability import logging as logcontext
from gateway.pods.logs import LogPosition
from gateway.store.base import Store
from gateway.store.codec import from_data, to_data

log = logging.getLogger(__name__)

PAGE = 500
LOG_FLUSH_SECONDS = 0.05
LOG_FLUSH_LINES = 500

_KINDS: dict[type, domain.JournalKind] = {
    domain.PlacementDecision: domain.JournalKind.PLACED,
    domain.PhaseChange: domain.JournalKind.PHASE,
    domain.KubernetesEvent: domain.JournalKind.K8S_EVENT,
    domain.LogLine: domain.JournalKind.LOG,
    domain.PodResult: domain.JournalKind.RESULT,
}
_TYPES = {kind: tp for tp, kind in _KINDS.items()}

T = TypeVar("T")


def encode(item: domain.StreamItem, now: datetime) -> domain.JournalEvent:
    data = to_data(item)
    assert isinstance(data, dict)
    return domain.JournalEvent(kind=_KINDS[type(item)], time=now, payload=data)


def decode(seq: int, event: domain.JournalEvent) -> domain.StreamEvent:
    return domain.StreamEvent(seq=seq, time=event.time, item=from_data(_TYPES[event.kind], dict(event.payload)))


HAND_OVER = "the gateway is shutting down; reattach with WatchPod from your last cursor"


class Journal:
    def __init__(self, store: Store, *, log_flush_seconds: float = LOG_FLUSH_SECONDS) -> None:
        self._store = store
        self._log_flush_seconds = log_flush_seconds
        self._changed: dict[str, asyncio.Event] = {}  # present while a follower waits for the next write
        self._pending_logs: dict[str, list[domain.JournalEvent]] = {}
        self._flushers: dict[str, asyncio.Task[None]] = {}
        self._due: dict[str, asyncio.Event] = {}  # set: write the pending lines now
        self._locks: dict[str, asyncio.Lock] = {}
        self._handing_over = False
        # Other replicas write too (docs/decisions/0021): woken by their NOTIFY, and this slow poll in case
        # a notification was lost with the listening connection. None: this gateway is the only writer.
        self.safety_poll: float | None = None

    async def append(self, request_id: str, *items: domain.StreamItem) -> None:
        """Writes items after any buffered log lines, then wakes followers."""
        now = datetime.now(UTC)
        async with self._lock(request_id):
            batch = self._pending_logs.pop(request_id, [])
            batch.extend(encode(item, now) for item in items)
            await self._write(request_id, batch)

    async def record(
        self, request_id: str, write: Callable[[list[domain.JournalEvent]], Awaitable[T]], *items: domain.StreamItem
    ) -> T:
        """A change of the request's record and its events in one store write: `write` is the store call,
        given the events to append with the change (buffered log lines first, then `items`); then wakes
        followers. Its result, or its error (then nothing of it was written)."""
        now = datetime.now(UTC)
        async with self._lock(request_id):
            batch = self._pending_logs.pop(request_id, [])
            batch.extend(encode(item, now) for item in items)
            result = await write(batch)
            if batch:
                self.wake(request_id)
            return result

    def append_log(self, request_id: str, line: domain.LogLine) -> None:
        """Buffers a log line; it is written within the flush interval, when the batch is full, or at
        once when a follower waits for it."""
        pending = self._pending_logs.setdefault(request_id, [])
        pending.append(encode(line, datetime.now(UTC)))
        due = self._due.setdefault(request_id, asyncio.Event())
        if request_id in self._changed or len(pending) >= LOG_FLUSH_LINES:
            due.set()
        if request_id not in self._flushers:
            self._start_flusher(request_id)

    def _start_flusher(self, request_id: str) -> None:
        self._flushers[request_id] = logcontext.background(
            self._flush_later(request_id), name=f"journal-flush:{request_id}", request_id=request_id
        )

    async def flush(self, request_id: str) -> None:
        async with self._lock(request_id):
            await self._write(request_id, self._pending_logs.pop(request_id, []))

    async def follow(
        self, request_id: str, after_seq: int = 0, *, live: bool = True
    ) -> AsyncIterator[domain.StreamEvent]:
        """Every event after after_seq, waiting for new ones while `live`; ends after the result. A cursor
        at the result yields the result again: a client that reconnects after it gets its answer at once."""
        at = await self._event_at(request_id, after_seq)
        if at is not None and isinstance(at.item, domain.PodResult):
            yield at
            return
        while True:
            changed = self._changed.setdefault(request_id, asyncio.Event())
            page = await self._store.read_events(request_id, after_seq, PAGE)
            for seq, event in page:
                streamed = decode(seq, event)
                yield streamed
                after_seq = seq
                if isinstance(streamed.item, domain.PodResult):
                    return
            if not page:
                if not live:
                    return
                if self._handing_over:
                    raise errors.Unavailable(HAND_OVER)
                if self.safety_poll is None:
                    await changed.wait()
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), self.safety_poll)

    async def _event_at(self, request_id: str, seq: int) -> domain.StreamEvent | None:
        if seq <= 0:
            return None
        page = await self._store.read_events(request_id, seq - 1, 1)
        return decode(*page[0]) if page and page[0][0] == seq else None

    def hand_over(self) -> None:
        """The gateway is stopping: followers get everything stored, then UNAVAILABLE, so clients reattach
        (to the restarted gateway) from their cursor at once instead of waiting out the grace period."""
        self._handing_over = True
        for changed in self._changed.values():
            changed.set()

    def wake(self, request_id: str) -> None:
        """Events were appended elsewhere (another replica): followers read the store again."""
        event = self._changed.pop(request_id, None)
        if event is not None:
            event.set()

    async def close(self) -> None:
        for request_id in list(self._pending_logs):
            await self.flush(request_id)
        tasks = list(self._flushers.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _lock(self, request_id: str) -> asyncio.Lock:
        return self._locks.setdefault(request_id, asyncio.Lock())

    async def _write(self, request_id: str, batch: Sequence[domain.JournalEvent]) -> None:
        if not batch:
            return
        await self._store.append_events(request_id, list(batch))
        self.wake(request_id)

    async def _flush_later(self, request_id: str) -> None:
        due = self._due.setdefault(request_id, asyncio.Event())
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(due.wait(), self._log_flush_seconds)
            due.clear()  # before the write: a line that comes during it sets it again
            await self.flush(request_id)
        finally:
            self._flushers.pop(request_id, None)
        if self._pending_logs.get(request_id):  # came while writing: they need a flusher of their own
            self._start_flusher(request_id)
        else:
            self._due.pop(request_id, None)

    async def resume_point(self, request_id: str) -> tuple[dict[str, LogPosition], list[domain.KubernetesEvent]]:
        """Where each container's log stands, and the Kubernetes events already journalled: a resumed
        runner continues right after the last line and neither repeats nor forgets an event."""
        positions: dict[str, LogPosition] = {}
        events: list[domain.KubernetesEvent] = []
        after = 0
        while page := await self._store.read_events(request_id, after, PAGE):
            for seq, event in page:
                after = seq
                if event.kind in (domain.JournalKind.LOG, domain.JournalKind.K8S_EVENT):
                    item = decode(seq, event).item
                    if isinstance(item, domain.LogLine):
                        positions.setdefault(item.container, LogPosition()).advance(item)
                    elif isinstance(item, domain.KubernetesEvent):
                        events.append(item)
        return positions, events

    def forget(self, request_id: str) -> None:
        """Drops in-memory state of a finished request (its journal stays in the store)."""
        self._locks.pop(request_id, None)
        if request_id not in self._flushers:
            self._due.pop(request_id, None)
