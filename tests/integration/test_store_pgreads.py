"""The hot reads straight on asyncpg (gateway.store.pgreads) on a real server: the same rows, decoded the same,
as through SQLAlchemy (absent records and empty pages included); a backend ended in the statement is
StoreUnavailable as before and the next read takes a new connection; any other error is SQLAlchemy's own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import bindparam, func, literal_column, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway import domain
from gateway.store import pgreads, statements
from gateway.store.pgpipeline import Statement
from gateway.store.sql import SqlStore
from gateway.store.writer import StoreUnavailable, lost_as_unavailable
from tests.postgres import PostgresServer, database_name

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def store(postgres_server: PostgresServer) -> AsyncIterator[SqlStore]:
    async with postgres_server.database(database_name()) as url:
        opened = await SqlStore.open(url.render_as_string(hide_password=False))
        async with opened:
            yield opened


async def through_sqlalchemy(conn: AsyncConnection, statement: Statement, params: dict[str, Any]) -> list[Any]:
    with lost_as_unavailable():
        return [dict(row._mapping) for row in await conn.execute(statement, params)]


async def test_the_hot_reads_on_the_driver_read_what_sqlalchemy_reads(store: SqlStore) -> None:
    request = domain.PodRequest(request_id="r", pod={"kind": "Pod", "metadata": {"labels": {"a": "é"}}})
    await store.create_pod_record(domain.PodRecord(request=request, phase=domain.PodPhase.QUEUED, created_at=T0))
    await store.record_result("r", domain.PodResult(phase=domain.PodPhase.SUCCEEDED, exit_code=0, reason="done"))
    await store.record_finished("r", T0 + timedelta(minutes=1))
    events = [
        domain.JournalEvent(kind=domain.JournalKind.LOG, time=T0 + timedelta(seconds=i), payload={"text": f"l{i}"})
        for i in range(5)
    ]
    assert await store.append_events("r", events) == [1, 2, 3, 4, 5]
    reads: list[tuple[Statement, dict[str, Any]]] = [
        (statements.RECORD_BY_REQUEST, {"p_request_id": "r"}),
        (statements.RECORD_BY_REQUEST, {"p_request_id": "absent"}),
        (statements.READ_EVENTS, {"p_request_id": "r", "p_after": 0, "p_limit": 100}),
        (statements.READ_EVENTS, {"p_request_id": "r", "p_after": 2, "p_limit": 2}),
        (statements.READ_EVENTS, {"p_request_id": "r", "p_after": 5, "p_limit": 100}),  # an empty page
        (statements.READ_EVENTS, {"p_request_id": "absent", "p_after": 0, "p_limit": 100}),
    ]
    async with store.read_engine.connect() as conn:
        for statement, params in reads:
            direct = [dict(row) for row in await pgreads.fetch(conn, statement, params)]
            old = await through_sqlalchemy(conn, statement, params)
            assert direct == old
            assert [[type(v) for v in row.values()] for row in direct] == [[type(v) for v in row.values()] for row in old]
    record = await store.get_pod_record("r")
    assert record is not None and record.request == request and record.finished_at == T0 + timedelta(minutes=1)
    assert record.result is not None and record.result.reason == "done" and record.created_at == T0
    assert await store.get_pod_record("absent") is None
    assert await store.read_events("r", 3) == [(4, events[3]), (5, events[4])]
    assert await store.read_events("r", 5) == [] and await store.read_events("absent") == []
    assert all(event.time.tzinfo is not None for _, event in await store.read_events("r"))


async def test_a_backend_ended_in_the_read_is_unavailable_as_before_and_the_next_read_takes_a_new_one(
    store: SqlStore,
) -> None:
    await store.create_pod_record(domain.PodRecord(request=domain.PodRequest(request_id="r", pod={}), phase=domain.PodPhase.QUEUED))
    suicide = select(func.pg_terminate_backend(func.pg_backend_pid()).label("request_id"))
    for read in (pgreads.fetch, through_sqlalchemy):
        async with store.read_engine.connect() as conn:
            with pytest.raises(StoreUnavailable, match="connection was lost during the statement"):
                await read(conn, suicide, {})
            assert conn.invalidated
        stored = await store.get_pod_record("r")
        assert stored is not None and stored.request.request_id == "r"


async def test_any_other_error_is_sqlalchemys_own_as_before(store: SqlStore) -> None:
    divide = select((literal_column("1") / bindparam("d")).label("x"))
    async with store.read_engine.connect() as conn:
        with pytest.raises(DBAPIError, match="division by zero") as direct:
            await pgreads.fetch(conn, divide, {"d": 0})
        with pytest.raises(DBAPIError, match="division by zero") as old:
            await through_sqlalchemy(conn, divide, {"d": 0})
        assert type(direct.value) is type(old.value)
        assert [dict(row) for row in await pgreads.fetch(conn, divide, {"d": 1})] == [{"x": 1}]
