"""The pod event journal over the real store (SQLite and PostgreSQL): order, batching, live follow, resume
after reopen."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from gateway import domain
from gateway.pods.journal import Journal
from gateway.store.sql import SqlStore
from tests.conftest import Database

T = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)


def line(i: int) -> domain.LogLine:
    return domain.LogLine(container="base", time=T, text=f"line {i}")


RESULT = domain.PodResult(phase=domain.PodPhase.SUCCEEDED, exit_code=0, reason="Completed", xcom_json='{"v": 42}')


async def opened(database: Database) -> tuple[SqlStore, Journal]:
    store = await SqlStore.open(database.url)
    await store.create_pod_record(
        domain.PodRecord(request=domain.PodRequest(request_id="r1", pod={}), phase=domain.PodPhase.QUEUED)
    )
    return store, Journal(store)


async def collect(journal: Journal, request_id: str, after: int = 0) -> list[domain.StreamEvent]:
    return [e async for e in journal.follow(request_id, after)]


async def test_items_come_back_in_order_with_log_batches_flushed_first(database: Database) -> None:
    store, journal = await opened(database)
    async with store:
        await journal.append("r1", domain.PhaseChange(phase=domain.PodPhase.PENDING))
        for i in range(3):
            journal.append_log("r1", line(i))
        await journal.append("r1", RESULT)  # flushes the three buffered lines before itself
        events = await collect(journal, "r1")
        await journal.close()
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert [getattr(e.item, "text", None) for e in events[1:4]] == ["line 0", "line 1", "line 2"]
    assert events[-1].item == RESULT


async def test_a_record_change_is_written_with_the_buffered_lines_and_its_items_at_once(database: Database) -> None:
    store, journal = await opened(database)
    async with store:
        for i in range(3):
            journal.append_log("r1", line(i))
        before = store.writes.operations
        record = await journal.record(
            "r1", lambda events: store.record_result("r1", RESULT, events=events), RESULT
        )
        assert store.writes.operations - before == 1
        events = await collect(journal, "r1")
        await journal.close()
    assert (record.result, record.last_seq) == (RESULT, 4)
    assert [getattr(e.item, "text", e.item) for e in events] == ["line 0", "line 1", "line 2", RESULT]


async def test_live_follower_sees_lines_as_they_come_and_resumes_from_a_cursor(database: Database) -> None:
    store, journal = await opened(database)
    async with store:
        follower = asyncio.create_task(collect(journal, "r1"))
        for i in range(1200):  # more than one page and more than one batch
            journal.append_log("r1", line(i))
            if i % 100 == 0:
                await asyncio.sleep(0.01)
        await journal.append("r1", RESULT)
        live = await asyncio.wait_for(follower, 10)
        resumed = await collect(journal, "r1", after=live[599].seq)
        await journal.close()
    assert [e.item.text for e in live[:-1]] == [f"line {i}" for i in range(1200)]  # type: ignore[union-attr]
    assert resumed == live[600:]


async def test_journal_survives_reopening_the_store(database: Database) -> None:
    store, journal = await opened(database)
    async with store:
        await journal.append("r1", domain.PhaseChange(phase=domain.PodPhase.RUNNING), RESULT)
        await journal.close()
    async with await SqlStore.open(database.url) as store:
        events = await collect(Journal(store), "r1")
    assert [type(e.item) for e in events] == [domain.PhaseChange, domain.PodResult]


async def test_a_waiting_follower_gets_live_lines_without_waiting_for_the_batch_interval(database: Database) -> None:
    """With an hour's batch interval, a line reaches a follower that waits for it all the same, with the
    cursor the store assigned; a line nobody waits for stays batched."""
    store = await SqlStore.open(database.url)
    await store.create_pod_record(
        domain.PodRecord(request=domain.PodRequest(request_id="r1", pod={}), phase=domain.PodPhase.QUEUED)
    )
    journal = Journal(store, log_flush_seconds=3600)
    async with store:
        await journal.append("r1", domain.PhaseChange(phase=domain.PodPhase.RUNNING))
        journal.append_log("r1", line(0))  # nobody follows yet: buffered
        await asyncio.sleep(0)
        assert [seq for seq, _ in await store.read_events("r1", 0, 10)] == [1]
        seen: list[domain.StreamEvent] = []
        counted = asyncio.Condition()

        async def follow() -> None:
            async for event in journal.follow("r1"):
                async with counted:
                    seen.append(event)
                    counted.notify_all()

        async def until(n: int) -> None:
            async with counted:
                await counted.wait_for(lambda: len(seen) >= n)

        follower = asyncio.create_task(follow())
        await asyncio.wait_for(until(1), 30)  # the phase; the follower now waits for what comes next
        journal.append_log("r1", line(1))  # written at once, with line 0 before it
        await asyncio.wait_for(until(3), 30)  # an hour's interval: only the waiting follower can explain it
        assert [(e.seq, getattr(e.item, "text", "")) for e in seen] == [(1, ""), (2, "line 0"), (3, "line 1")]
        await journal.append("r1", RESULT)
        await asyncio.wait_for(follower, 30)
        assert [e.seq for e in seen] == [1, 2, 3, 4]
        assert await collect(journal, "r1", after=2) == seen[2:]  # resuming from a live cursor: no gap, no repeat
        await journal.close()


def timed_line(i: int) -> domain.LogLine:
    return domain.LogLine(container="base", time=T.replace(second=i), text=f"line {i}")


async def test_a_line_read_after_the_request_was_dropped_is_not_written_behind_the_dropped_ones(
    database: Database,
) -> None:
    """A replica that stops following a request drops its unwritten lines (its next runner reads them again
    from the container, after the last one stored). A runner still unwinding may read one more: written after
    the dropped ones, it would make a gap that the next runner resumes behind, and the dropped line is lost."""
    store, journal = await opened(database)
    async with store:
        journal.append_log("r1", timed_line(0))
        await journal.flush("r1")
        journal.append_log("r1", timed_line(1))  # read, not yet written when the request is dropped
        journal.drop_pending(["r1"])
        journal.append_log("r1", timed_line(2))  # the old runner's last read, before its cancel reaches it
        await journal.close()  # writes whatever it holds
        positions, _ = await journal.resume_point("r1")  # the next runner resumes after line 0, not line 2
        assert positions["base"].last_time == timed_line(0).time
        journal.append_log("r1", timed_line(1))  # read again by it: written as any line
        await journal.flush("r1")
        events = [e async for e in journal.follow("r1", live=False)]
        await journal.close()
    assert [e.item.text for e in events if isinstance(e.item, domain.LogLine)] == ["line 0", "line 1"]
