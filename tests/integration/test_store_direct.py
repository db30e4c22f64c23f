"""Statements run on SQLite's cursor (gateway.store.direct) do what `Connection.execute` does: the same rows,
the same values as stored, the same errors, in the caller's transaction."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, bindparam, select
from sqlalchemy.exc import IntegrityError

from gateway.domain import PodPhase, PodRecord, PodRequest
from gateway.store import direct, statements
from gateway.store.engine import sqlite_write_engine, upgrade
from gateway.store.jsontext import dumps
from gateway.store.rows import record_values
from gateway.store.schema import journal_events, pod_records

T0 = datetime(2026, 3, 1, 12, 0, 0, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Connection]:
    """One migrated SQLite file on the group writer's own engine; each test works inside a transaction."""
    path = Path(tmp_path_factory.mktemp("direct")) / "podgate.db"
    sqlite3.connect(path).execute("PRAGMA journal_mode=WAL").connection.close()
    engine = sqlite_write_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        with conn.begin():
            upgrade(conn)
        yield conn
    engine.dispose()


@pytest.fixture
def conn(database: Connection) -> Iterator[Connection]:
    with database.begin() as transaction:
        yield database
        transaction.rollback()


_ids = itertools.count()


def insert_record(conn: Connection, **changes: Any) -> str:
    request_id = f"r{next(_ids)}"
    record = PodRecord(request=PodRequest(request_id=request_id, pod={"kind": "Pod"}), phase=PodPhase.QUEUED)
    conn.execute(statements.INSERT_RECORD, record_values(record, T0) | changes)
    return request_id


moments = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2999, 1, 1), timezones=st.just(UTC))
changes = st.fixed_dictionaries(
    {},
    optional={
        "phase": st.sampled_from([p.value for p in PodPhase]),
        "cluster": st.none() | st.text(min_size=1, max_size=20),
        "updated_at": moments,
        "finished_at": st.none() | moments,
        "result": st.none().map(dumps) | st.dictionaries(st.text(max_size=5), st.integers()).map(dumps),
        "reattach_deadline": st.none() | moments,
        "cancel_reason": st.none() | st.text(max_size=30),
    },
)


@settings(max_examples=60, deadline=None)
@given(values=changes, events=st.integers(0, 3), fenced=st.booleans())
def test_an_update_returns_and_stores_what_sqlalchemy_would(
    database: Connection, values: dict[str, Any], events: int, fenced: bool
) -> None:
    """The same statement, run once each way on two equal records: equal rows back and equal stored text."""
    values = {"updated_at": T0, **values}
    statement = statements.update_record(frozenset(values), fenced=fenced, events=bool(events))
    fence = {"p_owner": "", "p_fence": 0} if fenced else {}
    with database.begin() as transaction:
        same = {"request": dumps({"same": "request"}), "owner": "", "fence": 0}
        ids = [insert_record(database, **same), insert_record(database, **same)]
        bound = [statements.params(values) | {"p_request_id": i, "p_events": events} | fence for i in ids]
        theirs = dict(database.execute(statement, bound[0]).one()._mapping)
        mine = direct.prepare(statement, database.dialect).first(database, bound[1])
        assert mine is not None
        assert mine.keys() == theirs.keys()
        assert {k: v for k, v in mine.items() if k not in ("id", "request_id")} == {
            k: v for k, v in theirs.items() if k not in ("id", "request_id")
        }
        raw = database.connection.dbapi_connection
        assert raw is not None
        stored = raw.execute("SELECT * FROM pod_records WHERE request_id IN (?, ?) ORDER BY id", ids).fetchall()
        assert stored[0][2:] == stored[1][2:]  # every column as stored, past id and request_id
        transaction.rollback()


def test_a_row_not_matched_is_none_and_a_select_reads_as_sqlalchemy_does(conn: Connection) -> None:
    request_id = insert_record(conn, finished_at=T0 + timedelta(hours=1))
    statement = statements.update_record(frozenset({"phase"}), fenced=True, events=False)
    bound = {"p_phase": "Running", "p_request_id": request_id, "p_owner": "someone", "p_fence": 7}
    assert direct.prepare(statement, conn.dialect).first(conn, bound) is None
    found = direct.prepare(statements.RECORD_BY_REQUEST, conn.dialect).first(conn, {"p_request_id": request_id})
    assert found == dict(conn.execute(statements.RECORD_BY_REQUEST, {"p_request_id": request_id}).one()._mapping)
    assert found["finished_at"] == T0 + timedelta(hours=1) and found["finished_at"].tzinfo is UTC


def test_journal_rows_inserted_many_at_once_read_back_as_written(conn: Connection) -> None:
    request_id = insert_record(conn)
    record_id = conn.execute(select(pod_records.c.id).where(pod_records.c.request_id == request_id)).scalar_one()
    rows = [
        {
            "record_id": record_id,
            "seq": seq,
            "kind": "log",
            "time": T0 + timedelta(seconds=seq),
            "payload": dumps({"n": seq}),
        }
        for seq in (1, 2, 3)
    ]
    direct.prepare(statements.INSERT_EVENTS, conn.dialect).many(conn, rows)
    stored = conn.execute(select(journal_events).where(journal_events.c.record_id == record_id).order_by("seq"))
    assert [(r.seq, r.kind, r.time, r.payload) for r in stored] == [
        (seq, "log", T0 + timedelta(seconds=seq), {"n": seq}) for seq in (1, 2, 3)
    ]


def test_a_constraint_failure_is_sqlalchemys_integrity_error_and_leaves_the_transaction_usable(
    conn: Connection,
) -> None:
    taken = insert_record(conn, cluster="c", namespace="ns", name="p")
    other = insert_record(conn)
    statement = statements.update_record(frozenset({"cluster", "namespace", "name"}), fenced=False, events=False)
    bound = {"p_cluster": "c", "p_namespace": "ns", "p_name": "p", "p_request_id": other, "p_events": 0}
    with pytest.raises(IntegrityError) as caught:
        direct.prepare(statement, conn.dialect).first(conn, bound)
    assert isinstance(caught.value.orig, sqlite3.IntegrityError)
    assert conn.execute(select(pod_records.c.cluster).where(pod_records.c.request_id == other)).scalar_one() is None
    assert conn.execute(select(pod_records.c.name).where(pod_records.c.request_id == taken)).scalar_one() == "p"


def test_a_record_inserted_directly_returns_and_stores_what_sqlalchemy_would(conn: Connection) -> None:
    values = [
        record_values(PodRecord(request=PodRequest(request_id=i, pod={"k": "é"}), phase=PodPhase.QUEUED), T0)
        | {"request": dumps({"same": True})}
        for i in ("theirs", "mine")
    ]
    theirs = dict(conn.execute(statements.INSERT_RECORD, values[0]).one()._mapping)
    mine = direct.prepare(statements.INSERT_RECORD, conn.dialect, tuple(values[1])).first(conn, values[1])
    assert mine is not None and mine.keys() == theirs.keys()
    assert {k: v for k, v in mine.items() if k not in ("id", "request_id")} == {
        k: v for k, v in theirs.items() if k not in ("id", "request_id")
    }
    assert mine["id"] == theirs["id"] + 1  # the key SQLite gives, as to any insert
    raw = conn.connection.dbapi_connection
    assert raw is not None
    stored = raw.execute(
        "SELECT * FROM pod_records WHERE id IN (?, ?) ORDER BY id", (theirs["id"], mine["id"])
    ).fetchall()
    assert stored[0][2:] == stored[1][2:]


def test_statements_it_cannot_run_as_sqlalchemy_would_are_refused(conn: Connection) -> None:
    expanding = select(pod_records.c.id).where(pod_records.c.request_id.in_(bindparam("ids", expanding=True)))
    with pytest.raises(ValueError, match="expanding"):
        direct.prepare(expanding, conn.dialect)
    with pytest.raises(ValueError, match="column defaults"):  # fence's default is SQLAlchemy's to compute
        direct.prepare(statements.INSERT_RECORD, conn.dialect, ("request_id", "phase"))
