"""A request's event stream, durable in the store and followed live.

Everything a RunPod/WatchPod client sees is first written here: the store assigns each event its cursor
(sequence number), so a reconnecting client resumes from its cursor with no gap and no repeat, across
gateway restarts. A watcher on the replica that writes gets each stored batch handed over in memory
(livefeed.py) instead of reading it back; a watcher that falls behind by more than its feed holds, or one
whose events another replica wrote, reads the store page by page: a slow client costs at most one page
or one feed of memory, never a growing queue. Log lines are batched (many lines, one insert), and the
batches of every request due at the same moment are written together by one ticker (one transaction,
not one a pod); any other item flushes the batch first so order is kept. A batch is written at once when a watcher of the request
waits for the next event (it would otherwise see each live line only after the batch interval); lines
that come while a write is under way go together in the next one. A change of the request's record
and the events announcing it are one store write (`record`): never one without the other. A phase no
watcher is told of may wait for the request's next write and go with it (`defer_phase`); Kubernetes events
are buffered with the lines (`hold`), since a resumed runner lists its pod's events again.

Buffered log lines whose write fails are kept, in order, and written again: they were read from the
container already (the followers' positions are past them), so dropping them lost them for good once the
lines after them were written. Only a lost lease drops them (LeaseLost, or `drop_pending` when the replica
stops following): the request's new owner reads them again from the container.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from gateway import domain, errors
from gateway.observability import logging as logcontext
from gateway.pods.livefeed import FEED_CAPACITY, Feed
from gateway.pods.logs import LogPosition
from gateway.store.base import LeaseLost, Store
from gateway.store.codec import from_data, to_data
from gateway.store.rows import events_from_array

log = logging.getLogger(__name__)

PAGE = 500
LOG_FLUSH_SECONDS = 0.05
LOG_HOLD_SECONDS = 5.0  # the gateway's own journal, lines nobody watches: see Journal.__init__
LOG_FLUSH_LINES = 500
DUE_GRID = 5  # a wait is rounded up to a fifth of itself: see Journal._due_in
RETRY_DELAYS = (0.1, 0.5, 1.0, 2.0)  # between writes of log lines that failed (the store waits out outages itself)

_KINDS: dict[type, domain.JournalKind] = {
    domain.PlacementDecision: domain.JournalKind.PLACED,
    domain.PhaseChange: domain.JournalKind.PHASE,
    domain.KubernetesEvent: domain.JournalKind.K8S_EVENT,
    domain.LogLine: domain.JournalKind.LOG,
    domain.PodResult: domain.JournalKind.RESULT,
}
_TYPES = {kind: tp for tp, kind in _KINDS.items()}

T = TypeVar("T")
Entry = tuple[domain.JournalEvent, domain.StreamItem]  # as stored, and as a live watcher gets it


def encode(item: domain.StreamItem, now: datetime) -> domain.JournalEvent:
    data = to_data(item)
    assert isinstance(data, dict)
    return domain.JournalEvent(kind=_KINDS[type(item)], time=now, payload=data)


def decode(seq: int, event: domain.JournalEvent) -> domain.StreamEvent:
    return domain.StreamEvent(seq=seq, time=event.time, item=from_data(_TYPES[event.kind], dict(event.payload)))


HAND_OVER = "the gateway is shutting down; reattach with WatchPod from your last cursor"


class Journal:
    """Every write of a request's events goes through `append`/`append_log` (or is followed by `wake`):
    a watcher waits for the next event only on what this journal tells it."""

    def __init__(
        self,
        store: Store,
        *,
        log_flush_seconds: float = LOG_FLUSH_SECONDS,
        log_hold_seconds: float | None = None,
        feed_capacity: int = FEED_CAPACITY,
    ) -> None:
        """Buffered lines are written `log_flush_seconds` after the first of them, at once when a watcher here
        waits. While this gateway is the store's only writer (no `safety_poll`), every reader of a journal
        is such a watcher: lines may then wait up to `log_hold_seconds` (None: the same), most of them for
        the request's next write (its result, a phase), which takes them along instead of a write of their
        own. A crash loses nothing held: the restarted runner reads the log again from the container after
        the last stored line (`resume_point`), and a pod's result is stored, with its lines, before the pod
        is deleted."""
        self._store = store
        self._log_flush_seconds = log_flush_seconds
        self._log_hold_seconds = log_flush_seconds if log_hold_seconds is None else log_hold_seconds
        self._feed_capacity = feed_capacity
        self._feeds: dict[str, list[Feed]] = {}  # the live watchers of each request on this replica
        self._pending_logs: dict[str, list[Entry]] = {}  # buffered lines, and the events held with them (`hold`)
        self._deferred: dict[str, tuple[domain.PodPhase, asyncio.TimerHandle | None]] = {}  # defer_phase: phase, deadline
        self._epochs: dict[str, int] = {}  # grows when this gateway stops following a request (drop_pending)
        # Requests this gateway stopped following (drop_pending) and has not resumed since (resume_point): a
        # runner still unwinding may read one more line or event, which must not be written after the ones
        # dropped (a gap in the journal the request's next runner would resume behind).
        self._stopped: set[str] = set()
        # When each request's buffered lines are to be written, and the same as a heap (stale entries are
        # skipped): one ticker writes every request due at once, so lines of many pods that come apart go to
        # the store together (one transaction) instead of each request's flusher writing its own.
        self._due_at: dict[str, float] = {}
        self._deadlines: list[tuple[float, str]] = []
        self._failures: dict[str, int] = {}  # consecutive failed writes of a request's lines
        self._ticker: asyncio.Task[None] | None = None
        self._tick = asyncio.Event()  # set: a deadline came earlier than the ticker sleeps
        self._locks: dict[str, asyncio.Lock] = {}
        self._handing_over = False
        # Other replicas write too (docs/decisions/0021): woken by their NOTIFY, and this slow poll in case
        # a notification was lost with the listening connection. None: this gateway is the only writer.
        self.safety_poll: float | None = None

    async def append(self, request_id: str, *items: domain.StreamItem) -> None:
        """Writes items after any buffered log lines, then hands them to the request's watchers."""
        now = datetime.now(UTC)
        async with self._lock(request_id):
            with self._taking_pending(request_id) as (lines, phase):
                await self._write(request_id, [*lines, *((encode(item, now), item) for item in items)], phase)

    async def record(
        self, request_id: str, write: Callable[[list[domain.JournalEvent]], Awaitable[T]], *items: domain.StreamItem
    ) -> T:
        """A change of the request's record and its events in one store write: `write` is the store call,
        given the events to append with the change (buffered log lines first, then `items`). A `PodRecord`
        it returns, as written, numbers the events (they are the last ones its `last_seq` counts) and the
        request's watchers get them from memory; other results have them read back. Its result, or its
        error (then nothing of it was written). The change replaces a phase deferred until now
        (`defer_phase`), which is then not written."""
        now = datetime.now(UTC)
        async with self._lock(request_id):
            with self._taking_pending(request_id) as (lines, _):
                batch = [*lines, *((encode(item, now), item) for item in items)]
                result = await write([event for event, _ in batch])
            if isinstance(result, domain.PodRecord):  # its last_seq counts the events just appended
                self._offer(request_id, range(result.last_seq - len(batch) + 1, result.last_seq + 1), batch)
            elif batch:
                self.wake(request_id)
            return result

    def append_log(self, request_id: str, line: domain.LogLine) -> None:
        """Buffers a log line; it is written within the flush interval (or the hold: see `__init__`), with
        the request's next write, when the batch is full, or at once when a watcher waits for it."""
        self.hold(request_id, line)

    def hold(self, request_id: str, *items: domain.StreamItem) -> None:
        """Buffers items behind the lines (and items) buffered before them, written as `append_log` writes a
        line. Only for what a runner that resumes the request (after a crash, on another replica) reads
        from its cluster again when this process dies holding it: a log line after the last one stored
        (`resume_point`), a Kubernetes event listed again for the pod (following.py). Nothing is held for a
        request this gateway stopped following (`drop_pending`) until it resumes it: its runner's last reads
        come after lines that were dropped, and its next runner reads them all again."""
        if request_id in self._stopped:
            return
        now = datetime.now(UTC)
        pending = self._pending_logs.get(request_id)
        if pending is None:
            pending = self._pending_logs[request_id] = []
        for item in items:  # one or two a call (a line, a chunk's event): no generator
            pending.append((encode(item, now), item))
        feeds = self._feeds.get(request_id)  # most requests have no live watcher here
        if len(pending) >= LOG_FLUSH_LINES or (feeds and any(feed.waiting for feed in feeds)):
            self._due_now(request_id)
        elif request_id not in self._due_at:
            interval = self._log_flush_seconds if self.safety_poll is not None else self._log_hold_seconds
            self._due_in(request_id, interval)

    def defer_phase(self, request_id: str, phase: domain.PodPhase, within: float) -> None:
        """The record's new `phase`, stored with the request's next write of events (an `append`, a flush of
        buffered lines), or alone after `within` seconds; a state change written meanwhile (`record`)
        replaces it. Only for a phase no watcher is told of, which the next state change supersedes, and
        whose loss in a crash costs a resumed runner no more than a check (see creation.py: Pending)."""
        self._take_deferred(request_id)
        deadline = asyncio.get_running_loop().call_later(within, self._due_now, request_id)
        self._deferred[request_id] = (phase, deadline)

    def _take_deferred(self, request_id: str) -> domain.PodPhase | None:
        phase, deadline = self._deferred.pop(request_id, (None, None))
        if deadline is not None:
            deadline.cancel()
        return phase

    def _due_now(self, request_id: str) -> None:
        self._due_in(request_id, 0.0)

    def _due_in(self, request_id: str, seconds: float) -> None:
        """The request's buffered writes are due in `seconds` (or sooner, if already due sooner). A later
        time is rounded up to a fifth of the wait, so that requests whose lines came apart fall due together
        and go in one write of the store (one transaction), not one each."""
        at = asyncio.get_running_loop().time() + seconds
        if seconds > 0:
            grid = seconds / DUE_GRID
            at = math.ceil(at / grid) * grid
        if self._due_at.get(request_id, float("inf")) <= at:
            return
        self._due_at[request_id] = at
        earliest = not self._deadlines or at < self._deadlines[0][0]
        heapq.heappush(self._deadlines, (at, request_id))
        if self._ticker is None:
            self._ticker = logcontext.background(self._run_ticker(), name="journal-flush")
        elif earliest:
            self._tick.set()

    async def flush(self, request_id: str) -> None:
        """Writes what is buffered: the lines, and a deferred phase with them."""
        async with self._lock(request_id):
            with self._taking_pending(request_id) as (lines, phase):
                await self._write(request_id, lines, phase)

    def _has_pending(self, request_id: str) -> bool:
        return bool(self._pending_logs.get(request_id)) or request_id in self._deferred

    @contextlib.contextmanager
    def _taking_pending(self, request_id: str) -> Iterator[tuple[list[Entry], domain.PodPhase | None]]:
        """The buffered lines and the deferred phase, taken for a write (under the request's lock). If the
        write fails they go back (the lines in front of any that came meanwhile, the phase unless another
        was deferred meanwhile, for the next write: a flusher retrying, or `close`), unless the request was
        dropped meanwhile; a lost lease drops them."""
        epoch = self._epochs.get(request_id, 0)
        lines = self._pending_logs.pop(request_id, [])
        phase = self._take_deferred(request_id)
        try:
            yield lines, phase
        except LeaseLost:
            if self._epochs.get(request_id, 0) == epoch:
                self._pending_logs.pop(request_id, None)  # read under the lost lease: the new owner reads them
                self._take_deferred(request_id)
            raise
        except BaseException:
            if self._epochs.get(request_id, 0) == epoch:
                if lines:
                    self._pending_logs[request_id] = lines + self._pending_logs.get(request_id, [])
                if phase is not None and request_id not in self._deferred:
                    self._deferred[request_id] = (phase, None)
            raise
        if lines and not self._has_pending(request_id):
            self._due_at.pop(request_id, None)  # taken by another write: nothing left to write when it is due

    def drop_pending(self, request_ids: list[str]) -> None:
        """This gateway stopped following these requests (its lease is lost): their unwritten lines are not
        its to write any more, even once it owns the request again (it reads them again then)."""
        for request_id in request_ids:
            self._pending_logs.pop(request_id, None)
            self._take_deferred(request_id)
            self._epochs[request_id] = self._epochs.get(request_id, 0) + 1
            self._stopped.add(request_id)

    async def follow(
        self, request_id: str, after_seq: int = 0, *, live: bool = True
    ) -> AsyncIterator[domain.StreamEvent]:
        """Every event after after_seq, waiting for new ones while `live`; ends after the result. A cursor
        at the result yields the result again: a client that reconnects after it gets its answer at once."""
        at = await self._event_at(request_id, after_seq)
        if at is not None and isinstance(at.item, domain.PodResult):
            yield at
            return
        feed = Feed(self._feed_capacity)
        if live:
            self._feeds.setdefault(request_id, []).append(feed)
        after = after_seq
        read = functools.partial(self._page, request_id)
        try:
            while True:
                batch = await feed.next_batch(after, read, PAGE)
                if batch is None:
                    if not live:
                        return
                    if self._handing_over:
                        raise errors.Unavailable(HAND_OVER)
                    if request_id in self._pending_logs:
                        self._due_now(request_id)  # lines buffered before this watcher waited
                    await feed.wait(self.safety_poll)
                    continue
                for event in batch:
                    yield event
                    after = event.seq
                    if isinstance(event.item, domain.PodResult):
                        return
        finally:
            self._drop_feed(request_id, feed)

    async def _page(self, request_id: str, after: int) -> list[domain.StreamEvent]:
        return [decode(seq, event) for seq, event in await self._store.read_events(request_id, after, PAGE)]

    def live_feeds(self, request_id: str) -> list[Feed]:
        """The feeds of the request's live watchers on this replica (what each holds, whether it waits)."""
        return list(self._feeds.get(request_id, ()))

    def _drop_feed(self, request_id: str, feed: Feed) -> None:
        feeds = self._feeds.get(request_id)
        if feeds is not None and feed in feeds:
            feeds.remove(feed)
            if not feeds:
                del self._feeds[request_id]

    async def _event_at(self, request_id: str, seq: int) -> domain.StreamEvent | None:
        if seq <= 0:
            return None
        page = await self._store.read_events(request_id, seq - 1, 1)
        return decode(*page[0]) if page and page[0][0] == seq else None

    def hand_over(self) -> None:
        """The gateway is stopping: watchers get everything stored, then UNAVAILABLE, so clients reattach
        (to the restarted gateway) from their cursor at once instead of waiting out the grace period."""
        self._handing_over = True
        for feeds in self._feeds.values():
            for feed in feeds:
                feed.invalidate()

    def wake(self, request_id: str, last_seq: int | None = None) -> None:
        """Events up to `last_seq` (None: unknown) were stored, maybe elsewhere (another replica): watchers
        not offered that far read the store again; a replica's own NOTIFY costs its watchers no read."""
        for feed in self._feeds.get(request_id, ()):
            if last_seq is None:
                feed.invalidate()
            else:
                feed.notified(last_seq)

    def wake_with(self, request_id: str, last_seq: int, events: str) -> None:
        """Events up to `last_seq` were stored elsewhere and their notification carried them (`events`, as
        gateway.store.replicas.feed sends them): offered to the watchers not offered that far, who read the
        store only when one before them is missing (Feed.take); decoded only if such a watcher is here."""
        feeds = [feed for feed in self._feeds.get(request_id, ()) if feed.offered < last_seq]
        if not feeds:
            return
        try:
            stored = [decode(seq, event) for seq, event in events_from_array(events, last_seq)]
        except (ValueError, KeyError, TypeError) as e:
            log.warning("journal: a notification's events for %s could not be read (%s); reading the store", request_id, e)
            stored = []
        for feed in feeds:
            if stored:
                feed.offer(stored)
            else:
                feed.invalidate()

    async def close(self) -> None:
        for request_id in {**self._pending_logs, **self._deferred}:
            with contextlib.suppress(LeaseLost):  # taken over meanwhile: its new owner reads them again
                await self.flush(request_id)
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)

    def _lock(self, request_id: str) -> asyncio.Lock:
        return self._locks.setdefault(request_id, asyncio.Lock())

    async def _write(self, request_id: str, batch: Sequence[Entry], phase: domain.PodPhase | None = None) -> None:
        """Stores the batch (with the record's new `phase`, if one); the request's watchers get it with the
        cursors the store assigned."""
        events = [event for event, _ in batch]
        if phase is not None:
            record = await self._store.record_phase(request_id, phase, events=events)
            self._offer(request_id, range(record.last_seq - len(batch) + 1, record.last_seq + 1), batch)
        elif batch:
            self._offer(request_id, await self._store.append_events(request_id, events), batch)

    def _offer(self, request_id: str, seqs: Sequence[int], batch: Sequence[Entry]) -> None:
        """Hands a stored batch, with the cursors the store gave it, to the request's live watchers."""
        feeds = self._feeds.get(request_id)
        if not feeds or not batch:
            return
        stored = [
            domain.StreamEvent(seq=seq, time=event.time, item=item)
            for seq, (event, item) in zip(seqs, batch, strict=True)
        ]
        for feed in feeds:
            feed.offer(stored)

    async def _run_ticker(self) -> None:
        """Writes every request whose buffered lines (or deferred phase) are due, all at once, until none
        is waiting; a request whose write failed is due again after a delay (RETRY_DELAYS)."""
        loop = asyncio.get_running_loop()
        try:
            while self._deadlines:
                at, _ = self._deadlines[0]
                self._tick.clear()
                if (wait := at - loop.time()) > 0:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait):
                            await self._tick.wait()
                    continue
                now, due = loop.time(), []
                while self._deadlines and self._deadlines[0][0] <= now:
                    at, request_id = heapq.heappop(self._deadlines)
                    if self._due_at.get(request_id) == at:  # else stale: written already, or due at another time
                        del self._due_at[request_id]
                        due.append(request_id)
                if due:
                    await asyncio.gather(*(self._flush_due(request_id) for request_id in due))
        finally:
            self._ticker = None

    async def _flush_due(self, request_id: str) -> None:
        """One request's due write: lines that come during it are due after their own interval."""
        try:
            with logcontext.bound(request_id=request_id):
                await self.flush(request_id)
            self._failures.pop(request_id, None)
        except LeaseLost:  # lost while the batch waited: its new owner re-reads the log (_taking_pending)
            self._failures.pop(request_id, None)
            log.info("journal: %s is owned by another replica now; its buffered log lines were not written", request_id)
        except Exception as e:
            failures = self._failures[request_id] = self._failures.get(request_id, 0) + 1
            delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS)) - 1]
            log.warning("journal of %s: log lines not written (%s); retrying in %.1f s", request_id, e, delay)
            self._due_in(request_id, delay)

    async def resume_point(self, request_id: str) -> tuple[dict[str, LogPosition], list[domain.KubernetesEvent]]:
        """Where each container's log stands, and the Kubernetes events already journalled: a resumed
        runner continues right after the last line and neither repeats nor forgets an event. The request is
        this gateway's to write again from here (`drop_pending` stopped it)."""
        self._stopped.discard(request_id)
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

    def held(self, request_id: str) -> list[domain.StreamItem]:
        """What is buffered for the request and not written yet, in order (lines, events: `hold`)."""
        return [item for _, item in self._pending_logs.get(request_id, ())]

    def holds(self, request_id: str) -> bool:
        """Whether the journal keeps in-memory state for the request (a lock, buffered lines, a flusher)."""
        held = (self._locks, self._pending_logs, self._due_at, self._failures, self._deferred)
        return any(request_id in state for state in held)

    def forget(self, request_id: str) -> None:
        """Drops in-memory state of a finished request (its journal stays in the store)."""
        self._locks.pop(request_id, None)
        if not self._has_pending(request_id):
            self._due_at.pop(request_id, None)
