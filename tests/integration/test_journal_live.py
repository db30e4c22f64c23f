"""Live watchers of the journal over the real store (issue 16): each stored batch is handed to the watchers
of its request in memory, with the cursors the store assigned; resuming from any of them is exact, and a
watcher that falls behind its feed reads the store instead of holding more.

No timing is asserted: that live events come without a read-back is shown by counting the store's reads.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import domain
from gateway.pods.journal import Journal
from gateway.store.sql import SqlStore
from tests.conftest import Database

T = datetime(2026, 12, 4, 13, 0, tzinfo=UTC)
RESULT = domain.PodResult(phase=domain.PodPhase.SUCCEEDED, exit_code=0, reason="Completed", xcom_json='{"v": 1}')
_ids = itertools.count()


RUNNING = domain.PhaseChange(phase=domain.PodPhase.RUNNING)


def phase_write(store: SqlStore, request_id: str) -> Callable[[list[domain.JournalEvent]], Any]:
    return lambda events: store.record_phase(request_id, domain.PodPhase.RUNNING, events=events)


def line(i: int) -> domain.LogLine:
    return domain.LogLine(container="base", time=T, text=f"line {i}")


class CountingStore:
    """The real store, counting the journal reads made through it."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.reads = 0

    async def read_events(self, *args: Any, **kwargs: Any) -> Any:
        self.reads += 1
        return await self.store.read_events(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


async def new_request(store: SqlStore) -> str:
    request_id = f"r{next(_ids)}"
    record = domain.PodRecord(request=domain.PodRequest(request_id=request_id, pod={}), phase=domain.PodPhase.QUEUED)
    await store.create_pod_record(record)
    return request_id


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in 30 s")


async def replay(journal: Journal, request_id: str, after: int = 0) -> list[domain.StreamEvent]:
    return [e async for e in journal.follow(request_id, after, live=False)]


async def test_live_watchers_get_the_stored_events_with_their_cursors_without_reading_them_back(
    database: Database,
) -> None:
    async with await SqlStore.open(database.url) as store:
        counting = CountingStore(store)
        journal = Journal(counting, log_flush_seconds=3600)  # type: ignore[arg-type]
        request_id = await new_request(store)
        await journal.append(request_id, domain.PhaseChange(phase=domain.PodPhase.RUNNING))
        watchers = [asyncio.create_task(replay_live(journal, request_id)) for _ in range(3)]
        await until(lambda: sum(f.waiting for f in journal.live_feeds(request_id)) == 3)  # caught up, waiting
        reads_before = counting.reads
        for i in range(300):
            journal.append_log(request_id, line(i))
            if i % 10 == 9:
                await asyncio.sleep(0.01)  # the watchers wait again: each batch is written at once
            if i == 150:  # a record change and its event in one write, numbered by the record it returns
                await journal.record(request_id, phase_write(store, request_id), RUNNING)
        await journal.append(request_id, domain.KubernetesEvent(time=T, type="Normal", reason="Pulled", message="pulled"), RESULT)
        live = await asyncio.wait_for(asyncio.gather(*watchers), 60)
        reads_live = counting.reads - reads_before
        await journal.close()
        stored = await replay(journal, request_id)
    assert [e.seq for e in stored] == list(range(1, 305))
    assert all(events == stored for events in live)  # the same cursors, times and items as a replay
    assert reads_live == 0  # not one read-back for 300 live lines and 3 watchers


async def replay_live(journal: Journal, request_id: str) -> list[domain.StreamEvent]:
    return [e async for e in journal.follow(request_id)]


async def test_a_slow_watcher_holds_at_most_its_feed_then_reads_the_store_with_no_gap(tmp_path: Path) -> None:
    async with await SqlStore.open(path=tmp_path / "g.sqlite") as store:
        counting = CountingStore(store)
        journal = Journal(counting, log_flush_seconds=3600, feed_capacity=8)  # type: ignore[arg-type]
        request_id = await new_request(store)
        await journal.append(request_id, domain.PhaseChange(phase=domain.PodPhase.RUNNING))
        events = aiter(journal.follow(request_id))
        seen = [await anext(events)]  # the watcher takes one event, then stops reading
        most = 0
        for i in range(200):
            journal.append_log(request_id, line(i))
            if i % 5 == 4:
                await journal.flush(request_id)
                most = max(most, *(len(f) for f in journal.live_feeds(request_id)))
        await journal.append(request_id, RESULT)
        reads_before = counting.reads
        seen += [e async for e in events]
        await journal.close()
        assert seen == await replay(journal, request_id)
    assert [e.seq for e in seen] == list(range(1, 203))
    assert most <= 8
    assert counting.reads > reads_before  # what overflowed its feed came from the store


Plan = tuple[list[tuple[str, int]], list[int], int]


def plans() -> st.SearchStrategy[Plan]:
    writes = st.lists(
        st.tuples(st.sampled_from(["logs", "phase", "record", "logs-flushed"]), st.integers(1, 6)),
        min_size=1,
        max_size=12,
    )
    cuts = st.lists(st.integers(0, 12), max_size=8)  # the watcher leaves after this many events, then resumes
    return st.tuples(writes, cuts, st.integers(1, 10))


def test_resuming_from_any_cursor_of_a_live_stream_repeats_and_misses_nothing(tmp_path: Path) -> None:
    """Hypothesis over what is written (log lines batched or flushed, other items, record changes) and where a watcher
    disconnects: reconnecting from its last cursor each time, it sees exactly the stored stream."""
    loop = asyncio.new_event_loop()
    store = loop.run_until_complete(SqlStore.open(path=tmp_path / "g.sqlite"))

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(plans())
    def check(plan: Plan) -> None:
        loop.run_until_complete(one_plan(store, *plan))

    try:
        check()
    finally:
        loop.run_until_complete(store.close())
        loop.close()


async def one_plan(store: SqlStore, writes: list[tuple[str, int]], cuts: list[int], capacity: int) -> None:
    journal = Journal(store, log_flush_seconds=0.005, feed_capacity=capacity)
    request_id = await new_request(store)
    counter = itertools.count()

    async def write() -> None:
        for kind, n in writes:
            if kind == "phase":
                await journal.append(request_id, *(RUNNING for _ in range(n)))
            elif kind == "record":
                await journal.record(request_id, phase_write(store, request_id), *(RUNNING for _ in range(n)))
            else:
                for _ in range(n):
                    journal.append_log(request_id, line(next(counter)))
                if kind == "logs-flushed":
                    await journal.flush(request_id)
            await asyncio.sleep(0)
        await journal.append(request_id, RESULT)

    writer = asyncio.create_task(write())
    seen = await watch_with_cuts(journal, request_id, cuts, slow=lambda i: i % 3 == 0)
    await writer
    await journal.close()
    stored = await replay(journal, request_id)
    assert seen == stored
    assert [e.seq for e in seen] == list(range(1, len(stored) + 1))


async def watch_with_cuts(
    journal: Journal, request_id: str, cuts: list[int], *, slow: Callable[[int], bool]
) -> list[domain.StreamEvent]:
    """Follows the request, leaving after each cut's number of events and resuming from the last cursor."""
    seen: list[domain.StreamEvent] = []
    for cut in [*cuts, None]:
        stream = journal.follow(request_id, seen[-1].seq if seen else 0)
        taken = 0
        async for event in stream:
            seen.append(event)
            taken += 1
            if slow(len(seen)):
                await asyncio.sleep(0.001)  # writes go on meanwhile: the feed may overflow
            if cut is not None and taken >= cut:
                break
        await stream.aclose()
        if seen and isinstance(seen[-1].item, domain.PodResult):
            break
    return seen


class WriteCountingStore(CountingStore):
    """The real store, counting the journal's own writes of buffered lines once each is committed (counted
    when called, a test that read the lines back at the count could find the last write not yet committed)."""

    def __init__(self, store: SqlStore) -> None:
        super().__init__(store)
        self.appends = 0

    async def append_events(self, *args: Any, **kwargs: Any) -> Any:
        seqs = await self.store.append_events(*args, **kwargs)
        self.appends += 1
        return seqs


def three_lines(journal: Journal, request_id: str) -> None:
    for i in range(3):
        journal.append_log(request_id, line(i))


async def result(journal: Journal, store: SqlStore, request_id: str) -> None:
    await journal.record(request_id, lambda events: store.record_result(request_id, RESULT, events=events), RESULT)


async def test_unwatched_lines_of_the_only_writer_go_with_the_requests_next_write(tmp_path: Path) -> None:
    """Nobody but a watcher here reads the journal of the store's only writer, and a waiting watcher has the
    lines written at once: held, they ride with the result instead of a write of their own. Where another
    replica may watch (`safety_poll`), they are written after the flush interval, as before."""
    async with await SqlStore.open(path=tmp_path / "g.sqlite") as store:
        held, flushed = WriteCountingStore(store), WriteCountingStore(store)
        holding = Journal(held, log_flush_seconds=0.01, log_hold_seconds=3600)  # type: ignore[arg-type]
        replicated = Journal(flushed, log_flush_seconds=0.01, log_hold_seconds=3600)  # type: ignore[arg-type]
        replicated.safety_poll = 1.0
        first, second = await new_request(store), await new_request(store)
        three_lines(holding, first)
        three_lines(replicated, second)
        await until(lambda: flushed.appends == 1)  # past the flush interval (0.01 s): the lines written alone
        await asyncio.sleep(0.2)  # and well past it: the held lines had as long, and more, to be written alone
        await result(holding, store, first)
        await result(replicated, store, second)
        holding.forget(first)
        await until(lambda: not holding.holds(first))  # its flusher ended once the result took the lines
        stored = [await replay(j, r) for j, r in ((holding, first), (replicated, second))]
        await holding.close()
        await replicated.close()
    assert (held.appends, flushed.appends) == (0, 1)
    for events in stored:
        assert [e.item for e in events] == [line(0), line(1), line(2), RESULT]
        assert [e.seq for e in events] == [1, 2, 3, 4]


class SteppedClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock the test can move forward at once (`step`), as a loaded machine moves it
    while a process waits for a core: every timer, the journal's deadlines too, sees the jump."""

    def __init__(self) -> None:
        super().__init__()
        self.stepped = 0.0

    def time(self) -> float:
        return super().time() + self.stepped

    def step(self, seconds: float) -> None:
        self.stepped += seconds


def test_lines_of_many_requests_that_come_apart_are_written_together(tmp_path: Path) -> None:
    """10,000 pods logging a line a minute send ~167 lines a second, each of another request. Each request's
    batch falls due on a coarse grid (a fifth of the wait), and every request due at once is written in one
    go: the group-commit writer takes them in one transaction, not one transaction a line.
    The lines come 10 ms apart on the journal's clock, which the test steps between them: slept instead, a
    loaded machine stretched the steps past a grid cell each and spread the lines over up to 20 cells."""
    with asyncio.Runner(loop_factory=SteppedClockLoop) as runner:
        runner.run(lines_10_ms_apart_of_many_requests(tmp_path))


async def lines_10_ms_apart_of_many_requests(tmp_path: Path) -> None:
    hold = 1.0
    async with await SqlStore.open(path=tmp_path / "g.sqlite") as store:
        counting = WriteCountingStore(store)
        journal = Journal(counting, log_flush_seconds=0.01, log_hold_seconds=hold)  # type: ignore[arg-type]
        requests = [await new_request(store) for _ in range(20)]
        loop = asyncio.get_running_loop()
        assert isinstance(loop, SteppedClockLoop)
        before, cells = store.writes.transactions, set()
        for request_id in requests:
            # the grid cell its batch falls due in: the journal reads the clock inside append_log, so a cell's
            # edge passed meanwhile leaves either cell (both counted)
            early = loop.time()
            journal.append_log(request_id, line(0))
            cells.update(math.ceil((at + hold) / (hold / 5)) for at in (early, loop.time()))
            loop.step(0.01)  # apart: each line in a write of its own before (20 transactions)
        await until(lambda: counting.appends == len(requests))  # the deadlines pass in real time
        transactions = store.writes.transactions - before
        stored = [await replay(journal, r) for r in requests]
        await journal.close()
    assert [[e.item for e in events] for events in stored] == [[line(0)]] * len(requests), [len(e) for e in stored]
    assert transactions <= len(cells) < len(requests), (transactions, len(cells))
