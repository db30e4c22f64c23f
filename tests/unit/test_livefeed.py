"""A watcher's live feed: bounded, and what it hands out always starts right after the watcher's cursor."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from hypothesis import example, given
from hypothesis import strategies as st

from gateway import domain
from gateway.pods.livefeed import Feed

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
