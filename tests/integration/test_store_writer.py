"""Group commit on real SQLite files: batching, a failing write fails alone, close drains, locks are waited out."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.exc import OperationalError

from gateway.domain import JournalEvent, JournalKind, PodPhase, PodRecord, PodRequest
from gateway.errors import AlreadyExists
from gateway.store import SqlStore
from gateway.store.engine import sqlite_write_engine
from gateway.store.writer import GroupCommitWriter, StoreClosed, backoff, is_locked


def create_table(conn: Connection) -> None:
    conn.execute(text("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)"))


def insert(item_id: int, name: str = "x") -> Any:
    def op(conn: Connection) -> int:
        conn.execute(text("INSERT INTO items (id, name) VALUES (:id, :name)"), {"id": item_id, "name": name})
        return item_id

    return op


def ids(db: Path) -> list[int]:
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT id FROM items ORDER BY id")]


@contextmanager
def counting_commits(engine: type[Engine] | Engine) -> Iterator[list[int]]:
    commits = [0]

    def count(_conn: Any) -> None:
        commits[0] += 1

    event.listen(engine, "commit", count)
    try:
        yield commits
    finally:
        event.remove(engine, "commit", count)


class Gate:
    """An operation that holds the writer's thread until opened: what is submitted meanwhile is one batch."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()

    def __call__(self, _conn: Connection) -> str:
        self.entered.set()
        self.opened.wait(60)  # bounds a failure only: a test that fails before opening it frees the writer
        return "gate"

    async def hold(self, writer: GroupCommitWriter) -> asyncio.Task[str]:
        task = asyncio.create_task(writer.run(self))
        assert await asyncio.to_thread(self.entered.wait, 60), "the writer never ran the gate"
        return task


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "writer.db"


@pytest.fixture
async def writer(db: Path) -> AsyncIterator[GroupCommitWriter]:
    w = await GroupCommitWriter.start(sqlite_write_engine(f"sqlite:///{db}"), prepare=create_table)
    try:
        yield w
    finally:
        await w.close()


async def test_concurrent_writes_each_get_their_result_in_few_transactions(writer: GroupCommitWriter, db: Path) -> None:
    with counting_commits(writer.engine) as commits:
        results = await asyncio.gather(*(writer.run(insert(i)) for i in range(2000)))
    assert results == list(range(2000))
    assert ids(db) == list(range(2000))
    assert commits[0] == writer.stats.transactions
    assert writer.stats.operations == 2000
    assert commits[0] <= 2000 // 100  # batches of up to 500, not one transaction per write


async def test_a_failing_operation_fails_only_its_own_caller(writer: GroupCommitWriter, db: Path) -> None:
    def half_then_fail(conn: Connection) -> None:
        conn.execute(text("INSERT INTO items (id, name) VALUES (2, 'half')"))
        raise ValueError("refused after writing")

    gate = Gate()
    held = await gate.hold(writer)
    ops = [insert(1), half_then_fail, insert(3), insert(1, "duplicate key"), insert(4)]
    calls = [asyncio.create_task(writer.run(op)) for op in ops]
    await asyncio.sleep(0)
    before, retries = writer.stats.transactions, writer.stats.retries
    gate.opened.set()
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert await held == "gate"
    assert writer.stats.transactions == before + 2  # the gate's, then the five together
    assert writer.stats.retries == retries + 1  # run plainly, rolled back at the first failure, run with SAVEPOINTs
    assert outcomes[0::2] == [1, 3, 4]
    assert isinstance(outcomes[1], ValueError)
    assert "UNIQUE constraint failed" in str(outcomes[3])
    assert ids(db) == [1, 3, 4]  # the failed operation's own insert was rolled back with it


async def test_close_commits_every_write_already_submitted_then_refuses_new_ones(db: Path) -> None:
    writer = await GroupCommitWriter.start(sqlite_write_engine(f"sqlite:///{db}"), prepare=create_table)
    gate = Gate()
    held = await gate.hold(writer)
    queued = [asyncio.create_task(writer.run(insert(i))) for i in range(1, 1201)]  # more than one batch
    await asyncio.sleep(0)
    closing = asyncio.create_task(writer.close())
    await asyncio.sleep(0)
    with pytest.raises(StoreClosed, match="closing"):
        await writer.run(insert(5000))
    gate.opened.set()
    await closing
    assert await held == "gate"
    assert await asyncio.gather(*queued) == list(range(1, 1201))
    assert ids(db) == list(range(1, 1201))


async def test_a_caller_cancelled_before_its_turn_makes_no_write(writer: GroupCommitWriter, db: Path) -> None:
    gate = Gate()
    held = await gate.hold(writer)
    kept, dropped = asyncio.create_task(writer.run(insert(1))), asyncio.create_task(writer.run(insert(2)))
    await asyncio.sleep(0)
    dropped.cancel()
    gate.opened.set()
    assert (await held, await kept) == ("gate", 1)
    with pytest.raises(asyncio.CancelledError):
        await dropped
    assert ids(db) == [1]


async def test_a_database_locked_by_another_connection_is_waited_out_not_failed(db: Path) -> None:
    engine = sqlite_write_engine(f"sqlite:///{db}", busy_timeout_ms=20)
    writer = await GroupCommitWriter.start(engine, prepare=create_table)
    other = sqlite3.connect(db, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO items (id, name) VALUES (100, 'other')")
        write = asyncio.create_task(writer.run(insert(1)))
        # SQLite gives up after 20 ms each time; the writer backs off and retries (3 times: ~0.4 s, as long as
        # the fixed 0.3 s wait this was, which under load could pass before the first retry)
        async with asyncio.timeout(30):  # bounds a failure only
            while writer.stats.retries < 3:  # noqa: ASYNC110 - the writer's counter, no event to wait on
                await asyncio.sleep(0.01)
        assert not write.done()
        other.execute("COMMIT")
        assert await asyncio.wait_for(write, 10) == 1
    finally:
        other.close()
        await writer.close()
    assert ids(db) == [1, 100]


def test_the_writers_begin_runs_on_the_driver_and_fails_as_sqlalchemy_raises(db: Path) -> None:
    """BEGIN IMMEDIATE goes to pysqlite directly (engine._on_begin), its error converted as SQLAlchemy's own
    statements' are: a lock held elsewhere is an OperationalError the writer recognises, and the connection
    begins again once the lock is gone."""
    engine = sqlite_write_engine(f"sqlite:///{db}", busy_timeout_ms=20)
    other = sqlite3.connect(db, isolation_level=None)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    try:
        with engine.connect() as conn:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(OperationalError) as raised:
                conn.begin()
            assert is_locked(raised.value)
            assert isinstance(raised.value.orig, sqlite3.OperationalError)
            other.execute("ROLLBACK")
            with conn.begin():
                assert conn.connection.dbapi_connection.in_transaction  # type: ignore[union-attr]
                assert conn.execute(text("SELECT 1")).scalar() == 1
        assert statements == ["SELECT 1"]  # no BEGIN through SQLAlchemy's execution
    finally:
        other.close()
        engine.dispose()


@pytest.mark.parametrize(("attempt", "seconds"), [(1, 0.05), (2, 0.1), (3, 0.2), (6, 1.6), (7, 2.0), (50, 2.0)])
def test_backoff_doubles_up_to_a_cap(attempt: int, seconds: float) -> None:
    assert backoff(attempt) == pytest.approx(seconds)


# --- through the store ------------------------------------------------------------------------


def record(request_id: str) -> PodRecord:
    return PodRecord(request=PodRequest(request_id=request_id, pod={}), phase=PodPhase.QUEUED)


def event_(i: int) -> JournalEvent:
    return JournalEvent(
        kind=JournalKind.LOG, time=datetime(2026, 1, 1, tzinfo=UTC), payload={"container": "main", "text": f"{i}"}
    )


async def one_pod(store: SqlStore, rid: str) -> tuple[bool, list[int], list[int]]:
    _, created = await store.create_pod_record(record(rid))
    first = await store.append_events(rid, [event_(0)])
    more = await store.append_events(rid, [event_(1), event_(2)])
    return created, first, more


@pytest.mark.parametrize("group_commit", [True, False], ids=["group-commit", "one-transaction-per-write"])
async def test_concurrent_pods_all_stored_in_few_transactions_and_read_back(db: Path, group_commit: bool) -> None:
    pods = 1000 if group_commit else 100  # 4 writes each, all at once
    with counting_commits(Engine) as commits:
        async with await SqlStore.open(path=db, group_commit=group_commit) as store:
            opened = commits[0]
            results = await asyncio.gather(*(one_pod(store, f"r{i}") for i in range(pods)))
            again = await asyncio.gather(*(store.create_pod_record(record(f"r{i}")) for i in range(pods)))
            transactions = commits[0] - opened
    assert results == [(True, [1], [2, 3])] * pods
    assert not any(created for _, created in again)
    writes = 4 * pods
    if group_commit:
        assert transactions <= writes // 20
    else:
        assert transactions == writes
    async with await SqlStore.open(path=db) as reopened:
        assert len(await reopened.list_unfinished()) == pods
        events = await reopened.read_events(f"r{pods - 1}")
        assert [(seq, e.payload["text"]) for seq, e in events] == [(1, "0"), (2, "1"), (3, "2")]


async def test_the_writer_threads_cpu_in_its_transactions_is_counted(writer: GroupCommitWriter) -> None:
    """WriterStats.thread_seconds: the CPU the writer's thread used running batches (bench/README.md reads it
    per pod, where a sampling profiler counts that thread's waits for the GIL as busy)."""
    before = writer.stats.thread_seconds

    def spend(_conn: Connection) -> float:
        start = time.thread_time()
        while time.thread_time() - start < 0.02:
            pass
        return time.thread_time() - start

    spent = await writer.run(spend)
    assert writer.stats.thread_seconds - before >= spent >= 0.02


def text_of(events: list[tuple[int, JournalEvent]]) -> list[tuple[int, str]]:
    return [(seq, e.payload["text"]) for seq, e in events]


async def held_store(db: Path) -> tuple[SqlStore, GroupCommitWriter]:
    """A store with records r1, r2 and r3, and its group writer."""
    store = await SqlStore.open(path=db)
    writer = store._engines.writer
    assert isinstance(writer, GroupCommitWriter)
    for rid in ("r1", "r2", "r3"):
        await store.create_pod_record(record(rid))
    return store, writer


async def test_in_one_batch_each_later_write_sees_the_journal_rows_written_before_it(db: Path) -> None:
    """A batch of pod record writes with their journal rows, a prune of the same request and a write of no
    request in one transaction: each sees every row written before it, in the order submitted (what a writer
    that ran a batch's writes otherwise than one by one, e.g. their journal rows together, must keep)."""
    store, writer = await held_store(db)
    try:
        gate = Gate()
        held = await gate.hold(writer)
        in_batch = [
            store.append_events("r1", [event_(1), event_(2)]),
            store.append_events("r2", [event_(1)]),
            store.record_phase("r3", PodPhase.RUNNING, events=[event_(1)]),
            store.prune_events("r2"),  # the same request as a write before it: its row is seen and deleted
            store.append_events("r2", [event_(2)]),
            store.append_events("r3", [event_(2)]),
            writer.run(lambda conn: conn.execute(text("SELECT count(*) FROM journal_events")).scalar_one()),
            store.record_phase("r1", PodPhase.SUCCEEDED, events=[event_(3)]),
        ]
        calls = [asyncio.ensure_future(call) for call in in_batch]
        await asyncio.sleep(0)
        before = writer.stats.transactions
        gate.opened.set()
        outcomes = await asyncio.gather(*calls)
        assert await held == "gate"
        assert writer.stats.transactions == before + 2  # the gate's, then the eight together
        assert outcomes[0] == [1, 2] and outcomes[1] == [1] and outcomes[3] == 1 and outcomes[4] == [2]
        assert outcomes[6] == 5  # r1's two, r3's two, r2's second (its first pruned)
        assert outcomes[7].phase is PodPhase.SUCCEEDED and outcomes[7].last_seq == 3
        assert text_of(await store.read_events("r1")) == [(1, "1"), (2, "2"), (3, "3")]
        assert text_of(await store.read_events("r2")) == [(2, "2")]
        assert text_of(await store.read_events("r3")) == [(1, "1"), (2, "2")]
    finally:
        await store.close()


async def test_in_one_batch_of_record_writes_a_failing_one_fails_alone_and_the_others_events_are_written_once(
    db: Path,
) -> None:
    store, writer = await held_store(db)
    try:
        gate = Gate()
        held = await gate.hold(writer)

        def place(rid: str) -> Any:
            return store.record_placement(
                rid, cluster="c", region="", namespace="ns", name="pod", decision=None, events=[event_(1)]
            )

        in_batch = [
            store.append_events("r1", [event_(1)]),
            place("r2"),
            place("r3"),  # the same pod: refused
            store.append_events("r3", [event_(2)]),
            store.append_events("r1", [event_(2)]),
        ]
        calls = [asyncio.ensure_future(call) for call in in_batch]
        await asyncio.sleep(0)
        retries = writer.stats.retries
        gate.opened.set()
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        assert await held == "gate"
        assert writer.stats.retries == retries + 1  # run plainly, rolled back, run again with SAVEPOINTs
        assert isinstance(outcomes[2], AlreadyExists)
        assert (outcomes[0], outcomes[3], outcomes[4]) == ([1], [1], [2])
        assert text_of(await store.read_events("r1")) == [(1, "1"), (2, "2")]
        assert text_of(await store.read_events("r2")) == [(1, "1")]
        assert text_of(await store.read_events("r3")) == [(1, "2")]  # the refused write's event was not written
        refused = await store.get_pod_record("r3")
        assert refused is not None and refused.cluster == "" and refused.last_seq == 1
    finally:
        await store.close()
