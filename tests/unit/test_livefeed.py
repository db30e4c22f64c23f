"""A watcher's live feed: bounded, and what it hands out always starts right after the watcher's cursor."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import cast

from hypothesis import example, given
from hypothesis import strategies as st

from gateway import domain
from gateway.pods.journal import Journal, encode
from gateway.pods.livefeed import Feed
from gateway.store.base import Store

T = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def stored(*seqs: int) -> list[domain.StreamEvent]:
    return [domain.StreamEvent(seq=s, time=T, item=domain.LogLine(container="c", time=T, text=f"{s}")) for s in seqs]


def test_take_hands_out_the_run_right_after_the_cursor_and_drops_what_precedes_it() -> None:
    feed = Feed(10)
    feed.stale = False
    feed.offer(stored(3, 4, 5, 6))
    assert [e.seq for e in feed.take(4)] == [5, 6]
    assert len(feed) == 0 and not feed.stale


def test_a_gap_before_the_buffered_events_sends_the_watcher_to_the_store() -> None:
    feed = Feed(10)
    feed.stale = False
    feed.offer(stored(8, 9))
    assert feed.take(5) == []
    assert feed.stale  # 6 and 7 were written without this feed: the store has them


def test_a_notification_of_events_already_offered_costs_no_read_and_one_beyond_them_does() -> None:
    feed = Feed(10)
    feed.stale = False
    feed.offer(stored(1, 2, 3))
    feed.notified(3)  # this replica's own NOTIFY for what it just wrote and offered
    assert not feed.stale
    assert [e.seq for e in feed.take(0)] == [1, 2, 3]
    feed.notified(2)  # a late one
    assert not feed.stale
    feed.notified(4)  # written elsewhere: only the store has it
    assert feed.stale


def test_an_event_missed_below_a_notified_cursor_still_shows_as_a_gap() -> None:
    feed = Feed(10)
    feed.stale = False
    feed.offer(stored(6))  # 5 was written by another replica, its NOTIFY not here yet
    feed.notified(5)
    assert not feed.stale  # nothing beyond what was offered ...
    assert feed.take(4) == [] and feed.stale  # ... but the watcher at 4 is sent to the store for 5


def test_more_than_the_capacity_drops_the_buffer_and_goes_stale() -> None:
    feed = Feed(4)
    feed.stale = False
    feed.offer(stored(1, 2, 3))
    feed.offer(stored(4, 5))
    assert len(feed) == 0 and feed.stale


async def test_wait_returns_on_an_offer_and_marks_the_feed_stale_after_the_safety_poll() -> None:
    feed = Feed(4)
    feed.stale = False
    waiter = asyncio.create_task(feed.wait(None))
    await asyncio.sleep(0)
    assert feed.waiting
    feed.offer(stored(1))
    await asyncio.wait_for(waiter, 5)
    assert not feed.waiting and not feed.stale
    await feed.wait(0.01)
    assert feed.stale


Step = tuple[str, int]
PAGE = 3


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("offer"), st.integers(1, 6)),  # a batch of that many events is stored here
            st.tuples(st.just("elsewhere"), st.integers(1, 3)),  # stored by another replica: only its NOTIFY
            st.tuples(st.just("unheard"), st.integers(1, 3)),  # ... whose notification was lost
            st.tuples(st.just("watch"), st.integers(1, 4)),  # the watcher takes that many batches
        ),
        max_size=40,
    ),
    st.integers(1, 8),
)
@example([("watch", 1), ("unheard", 1), ("offer", 1), ("watch", 1)], 4)  # a gap only `take` can notice
def test_a_watcher_over_a_feed_and_the_store_sees_every_event_once_in_order(steps: list[Step], capacity: int) -> None:
    """Any interleaving of writes offered to the feed, writes it only hears of (or not even that), overflows
    and reads (in pages of 3): the watcher's events are exactly 1..n, each once, in order, and the feed
    stays bounded."""
    store: list[domain.StreamEvent] = []
    feed = Feed(capacity)
    seen: list[int] = []

    async def read(after: int) -> list[domain.StreamEvent]:
        return [e for e in store if e.seq > after][:PAGE]

    async def watch(batches: int) -> None:
        for _ in range(batches):
            batch = await feed.next_batch(seen[-1] if seen else 0, read, PAGE)
            if batch is None:
                return
            seen.extend(e.seq for e in batch)

    async def run() -> None:
        for kind, n in steps:
            if kind == "watch":
                await watch(n)
                continue
            batch = stored(*range(len(store) + 1, len(store) + n + 1))
            store.extend(batch)
            if kind == "offer":
                feed.offer(batch)
                feed.notified(batch[-1].seq)  # this replica hears its own NOTIFY too
            elif kind == "elsewhere":
                feed.notified(batch[-1].seq)  # the NOTIFY names the last cursor written
            assert len(feed) <= capacity
        feed.invalidate()  # the safety poll: anything never heard of is read in the end
        await watch(10_000)

    asyncio.run(run())
    assert seen == list(range(1, len(store) + 1))


class GatedStore:
    """The journal's two store calls in memory; a read takes its snapshot at once and answers when released,
    as a read on another connection whose snapshot predates the writes that commit meanwhile."""

    def __init__(self) -> None:
        self.events: list[tuple[int, domain.JournalEvent]] = []
        self.reads: list[asyncio.Event] = []  # reads in flight, oldest first
        self.open = False  # past the steps: reads answer at once

    async def append_events(self, request_id: str, events: list[domain.JournalEvent]) -> list[int]:
        seqs = list(range(len(self.events) + 1, len(self.events) + len(events) + 1))
        self.events.extend(zip(seqs, events, strict=True))
        return seqs

    async def read_events(self, request_id: str, after: int, limit: int) -> list[tuple[int, domain.JournalEvent]]:
        snapshot = [(seq, e) for seq, e in self.events if seq > after][:limit]
        if not self.open:
            released = asyncio.Event()
            self.reads.append(released)
            await released.wait()
        return snapshot

    def release(self) -> None:
        if self.reads:
            self.reads.pop(0).set()


def line(n: int) -> domain.LogLine:
    return domain.LogLine(container="c", time=T, text=f"{n}")


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("here"), st.integers(1, 3), st.booleans()),  # written here; its NOTIFY before the offer?
            st.tuples(st.just("elsewhere"), st.integers(1, 3), st.booleans()),  # written by another replica: its NOTIFY
            st.tuples(st.just("release"), st.integers(1, 2), st.booleans()),  # that many reads in flight answer
            st.tuples(st.just("run"), st.integers(1, 5), st.booleans()),  # the event loop turns that many times
        ),
        max_size=30,
    )
)
@example([("run", 1, False), ("elsewhere", 1, False), ("run", 3, False), ("elsewhere", 1, False), ("release", 2, False)])
@example([("release", 1, False), ("here", 1, False), ("run", 3, False), ("elsewhere", 1, False)])  # one past the offer
def test_with_every_notification_heard_a_watcher_needs_no_safety_poll(steps: list[tuple[str, int, bool]]) -> None:
    """bench/replicas.py suspected NOTIFYs left unacted on (the delivery tail followed the safety poll). With no
    safety poll at all (a watcher waits until woken), any interleaving of writes here (offered in memory, their
    own NOTIFY before or after the offer), writes elsewhere (only their NOTIFY, naming the last cursor), and
    NOTIFYs landing while a read whose snapshot predates them is in flight: once every read answers, the
    watcher has every event, each once, in order."""
    store = GatedStore()
    journal = Journal(cast(Store, store))
    assert journal.safety_poll is None
    seen: list[int] = []

    async def watch() -> None:
        async for event in journal.follow("r"):
            seen.append(event.seq)

    async def turn(times: int) -> None:
        for _ in range(times):
            await asyncio.sleep(0)

    async def run() -> None:
        watcher = asyncio.create_task(watch())
        written = 0
        for kind, n, notify_first in steps:
            if kind == "here":
                if notify_first:  # the LISTEN connection's callback ran before the writer's await returned
                    journal.wake("r", written + n)
                await journal.append("r", *(line(written + i) for i in range(1, n + 1)))
                written += n
                if not notify_first:
                    journal.wake("r", written)
            elif kind == "elsewhere":
                events = [encode(line(written + i), T) for i in range(1, n + 1)]
                written = (await store.append_events("r", events))[-1]
                journal.wake("r", written)
            elif kind == "release":
                for _ in range(n):
                    store.release()
            await turn(n if kind == "run" else 1)
        store.open = True
        while store.reads:
            store.release()
        for _ in range(200):  # the loop turns; no timer, no poll: only what the feed was told wakes the watcher
            if len(seen) == written:
                break
            await asyncio.sleep(0)
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        assert seen == list(range(1, written + 1))

    asyncio.run(run())
