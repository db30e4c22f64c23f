"""The PostgreSQL writer's pipelines on a real server (gateway.store.pgpipeline): a batch's one-statement
writes are one round trip for each statement, on the wire; a key's writes stay in order; a failing write fails
alone; a pipeline cut by its backend's end runs its batch again, each write committed once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    MetaData,
    Sequence,
    String,
    Table,
    UniqueConstraint,
    bindparam,
    case,
    false,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.store.pgpipeline import OneRow
from gateway.store.pgwriter import PostgresGroupWriter
from tests.postgres import PostgresServer, database_name
from tests.standins.pg_relay import Lose, Relay, messages, pg_relay

metadata = MetaData()
kv = Table(
    "kv",
    metadata,
    Column("request_id", String, nullable=False),
    Column("value", Integer, nullable=False),
    Column("n", BigInteger, Sequence("kv_n"), primary_key=True),
    UniqueConstraint("request_id", "value"),
)
PUT = insert(kv).values(request_id=bindparam("k"), value=bindparam("v")).returning(kv.c.request_id, kv.c.value, kv.c.n)
KILLS = Sequence("kills")
# Ends its own backend the first time it runs (a sequence is not rolled back with the transaction).
KILL_ONCE = select(
    bindparam("k", type_=String).label("request_id"),
    case((KILLS.next_value() == 1, func.pg_terminate_backend(func.pg_backend_pid())), else_=false()).label("killed"),
)


def put(key: str, value: int) -> OneRow:
    return OneRow(PUT, {"k": key, "v": value}, key)


def put_plainly(key: str, value: int) -> Any:
    """The same write as an operation the writer cannot pipeline: it runs in its place, through SQLAlchemy."""

    def op(conn: Connection) -> Any:
        return conn.execute(PUT, {"k": key, "v": value}).first()._mapping  # type: ignore[union-attr]

    return op


@pytest.fixture
async def database(postgres_server: PostgresServer) -> AsyncIterator[tuple[Relay, AsyncEngine, AsyncEngine]]:
    """A relay in front of a new database; an engine through it (the writer's) and one to look with."""
    async with postgres_server.database(database_name()) as url, pg_relay(postgres_server.socket_dir) as relay:
        write = create_async_engine(url.update_query_dict({"host": str(relay.directory)}), pool_size=4)
        look = create_async_engine(url, pool_size=1, max_overflow=0)
        async with look.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.execute(text(f"CREATE SEQUENCE {KILLS.name}"))
        try:
            yield relay, write, look
        finally:
            await write.dispose()
            await look.dispose()


async def stored(look: AsyncEngine) -> list[tuple[str, int]]:
    async with look.connect() as conn:
        return [(k, v) for k, v in await conn.execute(select(kv.c.request_id, kv.c.value).order_by(kv.c.n))]


async def test_a_batch_of_one_statement_writes_is_one_round_trip_for_them_all(
    database: tuple[Relay, AsyncEngine, AsyncEngine],
) -> None:
    """Counted on the wire: each transaction is BEGIN, its id, one pipeline, COMMIT (four round trips)
    however many writes it holds, and a round trip for each statement of a write that is not one statement
    (5 here, among the 60: they do not split the pipeline); each write was a round trip of its own before."""
    relay, engine, look = database
    writer = PostgresGroupWriter(engine, unavailable_after=10, lanes=1)
    try:
        await writer.run(put("warm", 0), key="warm")  # the lane has its connection, the statements are parsed
        await writer.run(put_plainly("warm", 1), key="warm")
        (lane,) = relay.by_connection
        start, before = len(lane), writer.stats.transactions
        values = await asyncio.gather(
            *(writer.run((put_plainly if i % 12 == 5 else put)(f"r{i}", i), key=f"r{i}") for i in range(60))
        )
        said = [kind for kind, _ in messages(bytes(lane[start:]))]
        transactions = writer.stats.transactions - before
    finally:
        await writer.close()
    assert [(row["request_id"], row["value"]) for row in values] == [(f"r{i}", i) for i in range(60)]
    assert transactions <= 3  # batched
    assert said.count(b"Q") == 2 * transactions  # BEGIN and COMMIT, simple queries
    assert said.count(b"S") == 2 * transactions + 5  # the transaction's id, one pipeline, the 5 others: a Sync each
    assert said.count(b"E") == transactions + 60  # an Execute for every write
    assert sorted(await stored(look)) == sorted([("warm", 0), ("warm", 1)] + [(f"r{i}", i) for i in range(60)])


@pytest.mark.parametrize("lanes", [1, 4])
async def test_a_keys_writes_stay_in_order_and_a_failing_write_fails_alone(
    database: tuple[Relay, AsyncEngine, AsyncEngine], lanes: int
) -> None:
    """Four writes to each of 20 keys in one batch (pipelined by rank: a key's second write in the second
    pipeline), one write that runs through SQLAlchemy in their midst, and a write that clashes with a
    unique key: the clash alone fails (IntegrityError, as from SQLAlchemy), the rest commit in order; with one
    keyed lane or several (keys spread over them)."""
    _, engine, look = database
    writer = PostgresGroupWriter(engine, unavailable_after=10, lanes=lanes)
    writes: list[Any] = [writer.run(put(f"r{k}", v), key=f"r{k}") for v in range(2) for k in range(20)]
    writes.append(writer.run(put_plainly("r0", 2), key="r0"))
    writes.append(writer.run(put("r5", 1), key="r5"))  # (r5, 1) again
    writes += [writer.run(put(f"r{k}", v), key=f"r{k}") for v in range(3, 5) for k in range(20)]
    try:
        outcomes = await asyncio.gather(*writes, return_exceptions=True)
    finally:
        await writer.close()
    assert isinstance(outcomes[41], IntegrityError)
    assert [(row["request_id"], row["value"]) for row in outcomes[:41]] == [
        *((f"r{k}", v) for v in range(2) for k in range(20)),
        ("r0", 2),
    ]
    assert [(row["request_id"], row["value"]) for row in outcomes[42:]] == [
        (f"r{k}", v) for v in range(3, 5) for k in range(20)
    ]
    rows = await stored(look)
    for k in range(20):
        assert [v for key, v in rows if key == f"r{k}"] == ([0, 1, 2, 3, 4] if k == 0 else [0, 1, 3, 4])
    assert writer.stats.operations == 82 and writer.stats.retries >= 1  # rerun with SAVEPOINTs after the clash


async def test_a_pipeline_cut_by_its_backends_end_runs_the_batch_again_each_write_once(
    database: tuple[Relay, AsyncEngine, AsyncEngine],
) -> None:
    """The backend ends in the batch's second pipeline, after its first was executed: nothing was committed,
    the batch runs again on a new connection, and every write is made once."""
    _, engine, look = database
    writer = PostgresGroupWriter(engine, unavailable_after=10, lanes=1)
    try:
        async with asyncio.timeout(30):
            writes = [writer.run(put(f"r{i}", i), key=f"r{i}") for i in range(10)]
            killer = writer.run(OneRow(KILL_ONCE, {"k": "killer"}, "killer"), key="killer")
            *values, killed = await asyncio.gather(*writes, killer)
    finally:
        await writer.close()
    assert [row["value"] for row in values] == list(range(10))
    assert killed["request_id"] == "killer" and killed["killed"] is False  # the run that committed
    assert writer.stats.retries >= 1
    assert await stored(look) == [(f"r{i}", i) for i in range(10)]


@pytest.mark.parametrize("lose", ["answer", "commit"])
async def test_a_pipelined_batch_whose_commit_answer_is_lost_is_settled_by_asking_the_database(
    database: tuple[Relay, AsyncEngine, AsyncEngine], lose: Lose
) -> None:
    """A batch of one-statement writes runs on the driver, outside SQLAlchemy's transaction: its COMMIT's
    answer lost, the writer still asks the database what became of the transaction (committed: each caller
    gets its row; rolled back: the batch runs again), and each write is made once."""
    relay, engine, look = database
    writer = PostgresGroupWriter(engine, unavailable_after=10, lanes=1)
    try:
        await writer.run(put("warm", 0), key="warm")
        relay.arm(lose)
        async with asyncio.timeout(30):
            values = await asyncio.gather(*(writer.run(put(f"r{i}", i), key=f"r{i}") for i in range(3)))
        assert [row["value"] for row in values] == [0, 1, 2]
        assert relay.cuts == 1 and relay.committed_answers_lost == (lose == "answer")
        assert writer.stats.retries == (lose == "commit")
        assert (await writer.run(put("after", 9), key="after"))["value"] == 9
    finally:
        await writer.close()
    assert await stored(look) == [("warm", 0), ("r0", 0), ("r1", 1), ("r2", 2), ("after", 9)]
