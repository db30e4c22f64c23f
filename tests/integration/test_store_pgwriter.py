"""Group commit on a real PostgreSQL: batching, each await after its commit, a failing write fails alone,
a batch cut before its commit runs again (a database that stays away: nothing reported done), a stale
owner in a batch is fenced alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway import domain
from gateway.store.base import LeaseLost
from gateway.store.lease import LeasePolicy
from gateway.store.pgwriter import LANES, PostgresGroupWriter
from gateway.store.sql import SqlStore
from gateway.store.writer import StoreUnavailable
from tests.postgres import PostgresServer, database_name
from tests.standins.pg_relay import Lose, pg_relay


@pytest.fixture
async def engines(postgres_server: PostgresServer) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """The writer's engine (configured as the store's) and an independent one to look with."""
    async with postgres_server.database(database_name()) as url:
        write = create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10, pool_timeout=None)
        look = create_async_engine(url, pool_size=4, max_overflow=0)
        async with write.begin() as conn:
            await conn.execute(text("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, n BIGSERIAL)"))
        try:
            yield write, look
        finally:
            await write.dispose()
            await look.dispose()


@pytest.fixture
async def writer(engines: tuple[AsyncEngine, AsyncEngine]) -> AsyncIterator[PostgresGroupWriter]:
    w = PostgresGroupWriter(engines[0], unavailable_after=5)
    try:
        yield w
    finally:
        await w.close()


def insert(item_id: int, name: str = "x") -> Any:
    def op(conn: Connection) -> int:
        conn.execute(text("INSERT INTO items (id, name) VALUES (:id, :name)"), {"id": item_id, "name": name})
        return item_id

    return op


def sleep(seconds: float, pid: list[int] | None = None, started: asyncio.Event | None = None) -> Any:
    """An operation that holds the batch's transaction open for `seconds` (noting its backend's pid)."""

    def op(conn: Connection) -> str:
        if pid is not None:
            pid.append(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
        if started is not None:
            started.set()  # operations run in the event loop's thread (SQLAlchemy's greenlet)
        conn.execute(text("SELECT pg_sleep(:s)"), {"s": seconds})
        return "slept"

    return op


def sleep_until_cut(pid: list[int], started: asyncio.Event) -> Any:
    """`sleep` that holds its first run's transaction open until the test terminates its backend (60 s at
    most: that bounds a failure only; a fixed second was not always enough under load to connect and
    terminate it); a run after that, the batch run again, does not wait."""

    def op(conn: Connection) -> str:
        pid.append(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
        started.set()
        conn.execute(text("SELECT pg_sleep(:s)"), {"s": 60 if len(pid) == 1 else 0})
        return "slept"

    return op


async def ids(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as conn:
        return list((await conn.scalars(text("SELECT id FROM items ORDER BY id"))).all())


async def test_concurrent_writers_are_all_committed_each_seen_by_others_when_its_await_returns(
    writer: PostgresGroupWriter, engines: tuple[AsyncEngine, AsyncEngine]
) -> None:
    look = engines[1]

    async def write_then_look(i: int) -> bool:
        assert await writer.run(insert(i)) == i
        async with look.connect() as conn:  # another connection: only committed rows are visible to it
            return bool(await conn.scalar(text("SELECT count(*) FROM items WHERE id = :id"), {"id": i}))

    seen = await asyncio.gather(*(write_then_look(i) for i in range(300)))
    assert all(seen)
    assert await ids(look) == list(range(300))
    assert writer.stats.operations == 300
    assert writer.stats.transactions <= 30  # in batches, not one transaction per write


async def test_failing_operations_fail_alone_and_the_rest_of_their_batch_commits(
    writer: PostgresGroupWriter, engines: tuple[AsyncEngine, AsyncEngine]
) -> None:
    await writer.run(insert(1000))

    def half_then_fail(conn: Connection) -> None:
        conn.execute(text("INSERT INTO items (id, name) VALUES (2000, 'half')"))
        raise ValueError("refused after writing")

    running = asyncio.Event()
    held = asyncio.create_task(writer.run(sleep(0.3, started=running)))
    await asyncio.wait_for(running.wait(), 30)  # the batch is running: the writes below queue as the next batch
    operations = [insert(i) for i in range(50)]
    operations[10] = insert(1000)  # a clash with a committed row
    operations[20] = half_then_fail
    operations[30] = insert(1000)
    outcomes = await asyncio.gather(*(writer.run(op) for op in operations), return_exceptions=True)
    assert await held == "slept"
    assert isinstance(outcomes[10], IntegrityError) and isinstance(outcomes[30], IntegrityError)
    assert isinstance(outcomes[20], ValueError)
    kept = [i for i in range(50) if i not in (10, 20, 30)]
    assert [o for i, o in enumerate(outcomes) if i not in (10, 20, 30)] == kept
    assert await ids(engines[1]) == [*kept, 1000]
    assert (writer.stats.transactions, writer.stats.operations) == (3, 52)  # the 50 in one transaction
    assert writer.stats.retries == 1  # one rollback for three failures: the rerun has a SAVEPOINT per write


async def test_a_connection_cut_before_the_commit_runs_the_batch_again_and_commits_each_write_once(
    writer: PostgresGroupWriter, engines: tuple[AsyncEngine, AsyncEngine], postgres_server: PostgresServer
) -> None:
    """A restart or failover cutting a batch before its COMMIT costs a delay, not an error: PostgreSQL
    rolled it back, so running it again makes each write once (a pod's runner failed its request before)."""
    pid: list[int] = []
    running, started = asyncio.Event(), asyncio.Event()
    held = asyncio.create_task(writer.run(sleep(0.2, started=running)))
    await asyncio.wait_for(running.wait(), 30)  # the batch is running: the writes below queue as the next batch
    batch = [insert(1), sleep_until_cut(pid, started), insert(3)]
    tasks = [asyncio.create_task(writer.run(op)) for op in batch]
    admin = await postgres_server.admin()  # at hand before the batch to cut runs
    try:
        await held
        await asyncio.wait_for(started.wait(), 30)
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid[0])
    finally:
        await admin.close()
    async with asyncio.timeout(30):
        assert await asyncio.gather(*tasks) == [1, "slept", 3]
    assert len(pid) == 2 and pid[0] != pid[1]  # run again, on a new connection
    assert await ids(engines[1]) == [1, 3]
    assert writer.stats.retries == 1


async def test_a_batch_cut_off_while_the_database_stays_away_reports_none_of_it_done_and_commits_none(
    engines: tuple[AsyncEngine, AsyncEngine], postgres_server: PostgresServer
) -> None:
    writer = PostgresGroupWriter(engines[0], unavailable_after=1.5)
    database = engines[0].url.database
    admin = await postgres_server.admin()
    try:
        pid: list[int] = []
        started = asyncio.Event()
        tasks = [asyncio.create_task(writer.run(op)) for op in (insert(1), sleep_until_cut(pid, started), insert(3))]
        await asyncio.wait_for(started.wait(), 30)
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid[0])
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        # unavailable (a client is told to try again), saying why
        assert len(outcomes) == 3 and all(isinstance(o, StoreUnavailable) for o in outcomes), outcomes
        assert "not currently accepting connections" in str(outcomes[0])
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        assert await ids(engines[1]) == []
        assert await writer.run(insert(4)) == 4  # a new connection for the next batch
        assert await ids(engines[1]) == [4]
    finally:
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        await admin.close()
        await writer.close()


async def test_writes_of_one_key_are_made_in_order_while_other_keys_commit_beside_them(
    writer: PostgresGroupWriter, engines: tuple[AsyncEngine, AsyncEngine]
) -> None:
    keys = [f"request-{k}" for k in range(8)]
    writes = [writer.run(insert(100 * k + i, keys[k]), key=keys[k]) for i in range(40) for k in range(8)]
    await asyncio.gather(*writes)
    async with engines[1].connect() as conn:
        rows = (await conn.execute(text("SELECT name, id FROM items ORDER BY n"))).all()
    for k, key in enumerate(keys):
        assert [item_id for name, item_id in rows if name == key] == [100 * k + i for i in range(40)]
    assert writer.stats.operations == 320


async def test_a_write_without_a_key_does_not_wait_behind_a_blocked_batch_of_keyed_writes(
    writer: PostgresGroupWriter, engines: tuple[AsyncEngine, AsyncEngine]
) -> None:
    """Lease renewals (no key) have a lane of their own: pod writes stuck on a lock do not hold them up."""

    def wait_for_lock(conn: Connection) -> str:
        conn.execute(text("SELECT pg_advisory_xact_lock(42)"))
        return "got it"

    async with engines[1].connect() as holder:  # advisory locks are per database: the same one
        locked = await holder.begin()  # released when it ends, even if an assertion below fails
        await holder.execute(text("SELECT pg_advisory_xact_lock(42)"))
        blocked = [asyncio.create_task(writer.run(wait_for_lock, key=f"request-{k}")) for k in range(16)]
        try:
            assert await asyncio.wait_for(writer.run(insert(1)), 30) == 1  # while every keyed lane is stuck
            assert not [task.result() for task in blocked if task.done()]
        finally:
            await locked.rollback()
    assert await asyncio.gather(*blocked) == ["got it"] * 16
    assert await ids(engines[1]) == [1]


async def test_close_commits_what_was_submitted_then_refuses(writer: PostgresGroupWriter) -> None:
    tasks = [asyncio.create_task(writer.run(insert(i))) for i in range(20)]
    await asyncio.sleep(0)
    await writer.close()
    assert [t.result() for t in tasks] == list(range(20))
    with pytest.raises(Exception, match="closing"):
        await writer.run(insert(99))


def record(request_id: str) -> domain.PodRecord:
    request = domain.PodRequest(request_id=request_id, pod={})
    return domain.PodRecord(request=request, phase=domain.PodPhase.QUEUED, created_at=datetime.now(UTC))


def event(text_: str) -> domain.JournalEvent:
    return domain.JournalEvent(kind=domain.JournalKind.LOG, time=datetime.now(UTC), payload={"text": text_})


async def test_a_stale_owner_in_a_batch_gets_lease_lost_and_the_others_commit(postgres_server: PostgresServer) -> None:
    async with postgres_server.database(database_name()) as url:
        text_url = url.render_as_string(hide_password=False)
        async with await SqlStore.open(text_url) as a, await SqlStore.open(text_url) as b:
            a.act_as("a")
            b.act_as("b")
            await a.register_replica("a", "", LeasePolicy())
            await b.register_replica("b", "", LeasePolicy())
            await a.create_pod_record(record("taken"))
            await a.release_replica("a")
            assert [r.request.request_id for r in await b.claim_orphans("b")] == ["taken"]
            for i in range(30):
                await a.create_pod_record(record(f"mine-{i}"))
            before = a.writes.transactions
            outcomes = await asyncio.gather(
                *(a.record_phase(f"mine-{i}", domain.PodPhase.RUNNING, events=[event("run")]) for i in range(15)),
                a.record_phase("taken", domain.PodPhase.RUNNING, events=[event("stale")]),
                *(a.append_events(f"mine-{i}", [event("log")]) for i in range(15, 30)),
                return_exceptions=True,
            )
            assert isinstance(outcomes[15], LeaseLost)
            assert [o.phase for o in outcomes[:15]] == [domain.PodPhase.RUNNING] * 15  # type: ignore[union-attr]
            assert outcomes[16:] == [[1]] * 15
            assert a.writes.transactions - before <= LANES  # batched with the stale write, not failed with it
            taken = await b.get_pod_record("taken")
            assert taken is not None and (taken.phase, taken.last_seq) == (domain.PodPhase.QUEUED, 0)
            assert [seq for seq, _ in await b.read_events("mine-3")] == [1]


async def test_a_batch_rolled_back_by_a_deadlock_with_another_replica_runs_again_and_commits_once(
    engines: tuple[AsyncEngine, AsyncEngine], caplog: pytest.LogCaptureFixture
) -> None:
    """Two replicas' batches taking two tenants' advisory locks in opposite orders (gateway.store.quota):
    PostgreSQL breaks the deadlock by rolling one transaction back; that batch runs again, whole, and
    every write is committed exactly once."""
    first_locked = [asyncio.Event(), asyncio.Event()]

    def lock_both(item_id: int, mine: int, theirs: int) -> Any:
        def op(conn: Connection) -> int:
            conn.execute(text("INSERT INTO items (id, name) VALUES (:id, 'x')"), {"id": item_id})
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": mine})
            first_locked[mine - 1].set()  # in the event loop's thread (SQLAlchemy's greenlet), as above
            conn.execute(text("SELECT pg_sleep(0.3)"))  # the other replica takes its first lock meanwhile
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": theirs})
            return item_id

        return op

    replicas = [PostgresGroupWriter(engines[0], unavailable_after=5) for _ in range(2)]
    try:
        one = asyncio.create_task(replicas[0].run(lock_both(1, 1, 2)))
        two = asyncio.create_task(replicas[1].run(lock_both(2, 2, 1)))
        assert await asyncio.wait_for(asyncio.gather(one, two), 60) == [1, 2]
        assert all(event.is_set() for event in first_locked)
        assert sum(r.stats.retries for r in replicas) == 1  # one was the deadlock's victim, once
        # Seen as the transaction's failure (run again whole), not blamed on the operation that met it.
        assert [m for m in caplog.messages if "rolled back by the database (" in m and "deadlock detected" in m]
        assert await ids(engines[1]) == [1, 2]
    finally:
        for r in replicas:
            await r.close()


@pytest.mark.parametrize("lose", ["answer", "commit"])
async def test_a_commit_whose_answer_is_lost_is_settled_by_asking_the_database(
    postgres_server: PostgresServer, lose: Lose
) -> None:
    """The connection drops after COMMIT was sent: the batch may have committed. Reported failed, a caller
    making the write again made it twice (a log batch journalled twice). The writer asks the database what
    became of the transaction: committed, each caller gets its outcome; rolled back, the batch runs again."""
    async with postgres_server.database(database_name()) as url, pg_relay(postgres_server.socket_dir) as relay:
        through = url.update_query_dict({"host": str(relay.directory)})
        engine = create_async_engine(through, pool_pre_ping=True, pool_size=10, max_overflow=10, pool_timeout=None)
        look = create_async_engine(url, pool_size=1, max_overflow=0)
        async with look.begin() as conn:
            await conn.execute(text("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, n BIGSERIAL)"))
        writer = PostgresGroupWriter(engine, unavailable_after=10)
        try:
            assert await writer.run(insert(1)) == 1  # a connection in the pool, through the relay
            relay.arm(lose)
            async with asyncio.timeout(30):
                assert await asyncio.gather(*(writer.run(insert(i)) for i in (2, 3, 4))) == [2, 3, 4]
            assert relay.cuts == 1 and relay.committed_answers_lost == (lose == "answer")
            assert await ids(look) == [1, 2, 3, 4]  # each once
            assert writer.stats.retries == (lose == "commit")  # run again only when it had not committed
            assert await writer.run(insert(5)) == 5
        finally:
            await writer.close()
            await look.dispose()


async def test_writes_and_reads_make_no_ping_and_no_empty_transaction_on_the_wire(
    postgres_server: PostgresServer,
) -> None:
    """Counted on the wire (a relay in front of the server): a write batch is BEGIN, its statements and
    COMMIT on its lane's kept connection; a read is its one statement. SQLAlchemy's pre-ping (BEGIN, an
    empty statement, ROLLBACK at every checkout) and each read's own transaction (BEGIN, then ROLLBACK
    when its connection was given back) were five round trips more for each write and read."""
    async with postgres_server.database(database_name()) as url, pg_relay(postgres_server.socket_dir) as relay:
        through = url.update_query_dict({"host": str(relay.directory)}).render_as_string(hide_password=False)
        async with await SqlStore.open(through) as store:
            await store.create_pod_record(record("r1"))
            assert await store.get_pod_record("r1") is not None  # the lane and the read pool have a connection
            start = len(relay.sent)
            for i in range(20):
                assert await store.append_events("r1", [event(str(i))]) == [i + 1]
                stored = await store.get_pod_record("r1")
                assert stored is not None and stored.last_seq == i + 1
            said = bytes(relay.sent[start:])
    assert (said.count(b"BEGIN"), said.count(b"COMMIT"), said.count(b"ROLLBACK")) == (20, 20, 0)


async def test_a_lane_whose_kept_connection_was_terminated_runs_its_next_batch_on_a_new_one(
    writer: PostgresGroupWriter, engines: tuple[AsyncEngine, AsyncEngine], postgres_server: PostgresServer
) -> None:
    """Between batches a lane keeps its connection without pinging it: the backend killed meanwhile fails
    the next batch's first statement, before its COMMIT, and the batch runs again on a new connection,
    each write once. Closing the writer gives every kept connection back (none is left open on the server)."""
    pid: list[int] = []
    assert await writer.run(sleep(0, pid), key="k") == "slept"
    admin = await postgres_server.admin()
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1, 10000)", pid[0])  # waits for its end
        async with asyncio.timeout(30):
            writes = [writer.run(insert(i), key="k") for i in range(10)]
            done = await asyncio.gather(*writes, writer.run(sleep(0, pid), key="k"))
        assert done == [*range(10), "slept"]
        assert len(pid) == 2 and pid[1] != pid[0]
        assert await ids(engines[1]) == list(range(10))
        assert writer.stats.retries <= 1
        await writer.close()
        assert engines[0].sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        await engines[0].dispose()
        await engines[1].dispose()
        async with asyncio.timeout(30):  # backends end shortly after their client's goodbye
            database = engines[0].url.database
            while await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", database):  # noqa: ASYNC110 - the server's state, no event to wait on
                await asyncio.sleep(0.05)
    finally:
        await admin.close()


async def test_a_read_on_a_pooled_connection_the_database_closed_takes_a_new_one(postgres_server: PostgresServer) -> None:
    """No pre-ping: the pool's checkout sees the driver's connection closed (no round trip) and opens another,
    so a read after a backend was terminated (or the database restarted) succeeds."""
    async with postgres_server.database(database_name()) as url:
        store = await SqlStore.open(url.render_as_string(hide_password=False))
        async with store:
            await store.create_pod_record(record("r1"))
            async with store.read_engine.connect() as conn:  # the read pool's only connection
                pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
                raw = (await conn.get_raw_connection()).driver_connection
                admin = await postgres_server.admin()
                try:
                    assert await admin.fetchval("SELECT pg_terminate_backend($1, 10000)", pid)
                finally:
                    await admin.close()
                async with asyncio.timeout(30):
                    while not raw.is_closed():  # noqa: ASYNC110 - the driver reads the end of its socket; no event
                        await asyncio.sleep(0.01)
            stored = await store.get_pod_record("r1")
            assert stored is not None and stored.request.request_id == "r1"
