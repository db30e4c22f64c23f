"""Replica leases on a real PostgreSQL database: claims, fences, renewals (docs/decisions/0021)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg
import pytest
from sqlalchemy import text as text_statement

from gateway import domain
from gateway.pods.journal import Journal
from gateway.pods.replication import Replication
from gateway.store.base import LeaseLost
from gateway.store.lease import LeasePolicy
from gateway.store.sql import SqlStore
from tests.postgres import PostgresServer, database_name

SHORT = LeasePolicy(duration=1.0, renew_every=0.3, safety_margin=0.2)


def record(request_id: str) -> domain.PodRecord:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {"containers": []}}
    request = domain.PodRequest(request_id=request_id, pod=pod)
    return domain.PodRecord(request=request, phase=domain.PodPhase.QUEUED, created_at=datetime.now(UTC))


def event() -> domain.JournalEvent:
    return domain.JournalEvent(kind=domain.JournalKind.LOG, time=datetime.now(UTC), payload={"text": "x"})


async def expire_leases(store: SqlStore, *replicas: str) -> None:
    """The replicas' leases ran out a second ago, on the database's clock (as `replicas.NOW` reads it)."""
    async with store.read_engine.begin() as conn:
        await conn.execute(
            text_statement(
                "UPDATE replicas SET expires_at = timezone('UTC', statement_timestamp()) - interval '1 second' "
                "WHERE id = ANY(:ids)"
            ),
            {"ids": list(replicas)},
        )


async def test_a_taken_over_request_refuses_its_old_owners_writes(two_stores: tuple[SqlStore, SqlStore]) -> None:
    """Both leases run out on the database's clock (set there, not slept through: under load a short lease could
    run out before the first claim, which then took the request while a's lease was meant to be live)."""
    a, b = two_stores
    policy = LeasePolicy()
    a.act_as("a", "podgate_test")
    b.act_as("b", "podgate_test")
    await a.register_replica("a", "", policy)
    await b.register_replica("b", "", policy)
    _, created = await a.create_pod_record(record("r1"))
    assert created
    assert (await b.create_pod_record(record("r1")))[1] is False  # same request id elsewhere: the stored one
    await a.record_phase("r1", domain.PodPhase.PENDING)
    assert await b.claim_orphans("b") == []  # a's lease is live
    await expire_leases(b, "a", "b")  # a is paused past its lease, and so is b
    assert await b.renew_replica("b", policy) is False  # an expired lease is never revived
    await b.register_replica("b2", "", policy)
    b.act_as("b2", "podgate_test")
    claimed = await b.claim_orphans("b2")
    assert [r.request.request_id for r in claimed] == ["r1"]
    with pytest.raises(LeaseLost):
        await a.record_phase("r1", domain.PodPhase.RUNNING)
    with pytest.raises(LeaseLost):
        await a.append_events("r1", [event()])
    assert await a.renew_replica("a", policy) is False
    assert (await b.record_phase("r1", domain.PodPhase.RUNNING)).phase is domain.PodPhase.RUNNING
    assert await b.append_events("r1", [event()]) == [1]
    assert await b.claim_orphans("b2") == []


async def test_a_stale_owners_state_change_writes_neither_record_nor_events(
    two_stores: tuple[SqlStore, SqlStore],
) -> None:
    """The combined write is fenced as a whole: refused (LeaseLost) with nothing of it stored."""
    a, b = two_stores
    a.act_as("a")
    b.act_as("b")
    await a.register_replica("a", "", LeasePolicy())
    await b.register_replica("b", "", LeasePolicy())
    await a.create_pod_record(record("r1"), events=[event()])
    await a.release_replica("a")  # a does not know: it still writes with its fence
    assert [r.request.request_id for r in await b.claim_orphans("b")] == ["r1"]
    with pytest.raises(LeaseLost):
        await a.record_phase("r1", domain.PodPhase.RUNNING, events=[event(), event()])
    stored = await b.get_pod_record("r1")
    assert stored is not None and (stored.phase, stored.last_seq) == (domain.PodPhase.QUEUED, 1)
    assert [seq for seq, _ in await b.read_events("r1")] == [1]
    assert (await b.record_phase("r1", domain.PodPhase.RUNNING, events=[event()])).last_seq == 2


async def test_a_released_lease_is_claimed_at_once_and_shared(two_stores: tuple[SqlStore, SqlStore]) -> None:
    a, b = two_stores
    a.act_as("a")
    await a.register_replica("a", "", LeasePolicy())
    await b.register_replica("b", "", LeasePolicy())
    await a.register_replica("c", "", LeasePolicy())
    for i in range(4):
        await a.create_pod_record(record(f"r{i}"))
    await a.release_replica("a")
    first = await b.claim_orphans("b")
    assert len(first) == 2  # its share: 4 orphans over 2 live replicas
    second = await b.claim_orphans("b")
    assert len(second) == 1  # 2 left over 2 live replicas: the other live one gets its turn
    third = await b.claim_orphans("b")
    assert {r.request.request_id for r in first + second + third} == {f"r{i}" for i in range(4)}
    assert all(r.request.request_id for r in first + second + third)
    assert await b.claim_orphans("b") == []


async def test_a_claimer_whose_own_lease_expired_on_the_databases_clock_takes_nothing(
    two_stores: tuple[SqlStore, SqlStore],
) -> None:
    """Behind the replica's local deadline (Replication._claim): the claim statement itself refuses a claimer
    whose lease has run out on the database's clock, even for its own requests that expired with it (taken
    under a new fence, their runners still writing under the old one lose lines); another replica, live,
    takes them."""
    a, b = two_stores
    a.act_as("a", "podgate_test")
    await a.register_replica("a", "", LeasePolicy())
    await b.register_replica("b", "", LeasePolicy())
    await a.create_pod_record(record("r1"))
    await expire_leases(a, "a")  # a's lease ran out while its claim waited (an outage)
    assert await a.claim_orphans("a") == []
    async with a.read_engine.connect() as conn:
        owned = (await conn.execute(text_statement("SELECT owner, fence FROM pod_records"))).all()
    assert [tuple(row) for row in owned] == [("a", 1)]
    assert [r.request.request_id for r in await b.claim_orphans("b")] == ["r1"]


async def test_a_replica_between_leases_writes_as_owner_of_nothing(two_stores: tuple[SqlStore, SqlStore]) -> None:
    """A lost lease (act_as(None)) must not make the replica's writes unconditional: a journal flush still
    on its way after the runners stopped is refused, and a reattach deadline (not an owner write) is not."""
    a, _ = two_stores
    a.act_as("a")
    await a.register_replica("a", "", LeasePolicy())
    await a.create_pod_record(record("r1"))
    a.act_as(None)
    with pytest.raises(LeaseLost):
        await a.append_events("r1", [event()])
    with pytest.raises(LeaseLost):
        await a.record_phase("r1", domain.PodPhase.RUNNING)
    assert (await a.set_reattach_deadline("r1", None)).request.request_id == "r1"
    a.act_as("a2")  # a new lease: still no fence for r1 until it claims it
    with pytest.raises(LeaseLost):
        await a.append_events("r1", [event()])


async def test_a_log_batch_refused_after_the_lease_is_lost_is_dropped_not_left_as_a_task_error(
    two_stores: tuple[SqlStore, SqlStore],
) -> None:
    """A replica's runners stop when it loses its lease, but a batch of log lines buffered just before is
    flushed in the background: refused (LeaseLost), it is dropped for the new owner to re-read from the
    pod's log, not left as "Task exception was never retrieved" (bench/replicas.py's gateway logs)."""
    a, _ = two_stores
    a.act_as("a")
    await a.register_replica("a", "", LeasePolicy())
    await a.create_pod_record(record("r1"))
    journal = Journal(a, log_flush_seconds=0.05)
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    try:
        journal.append_log("r1", domain.LogLine(container="base", time=datetime.now(UTC), text="x"))
        a.disown(["r1"])  # the lease is lost before the batch interval ends
        await asyncio.sleep(0.5)
        gc.collect()  # a finished task whose exception nobody read reports it when collected
    finally:
        loop.set_exception_handler(None)
        await journal.close()
    assert unhandled == []
    assert await a.read_events("r1", 0, 10) == []


def replication(
    store: SqlStore,
    woken: list[str] | None = None,
    wake: Callable[[str, int | None], None] | None = None,
    feed: Callable[[str, int, str], None] | None = None,
) -> Replication:
    return Replication(
        store,
        gateway_id="gw",
        listen="",
        take=lambda records: None,
        drop=list,
        wake=wake or (lambda request_id, _seq: (woken if woken is not None else []).append(request_id)),
        feed=feed,
        policy=LeasePolicy(),
    )


async def test_one_replica_at_a_time_runs_the_singletons(two_stores: tuple[SqlStore, SqlStore]) -> None:
    a, b = two_stores
    first, second = replication(a), replication(b)
    await first.start()
    await second.start()
    try:
        assert [await first.leads(), await second.leads(), await first.leads()] == [True, False, True]
        await first.close(release=True)  # its session, and the lock with it, ends
        assert await second.leads()
    finally:
        await first.close(release=True)
        await second.close(release=True)


async def test_an_append_on_one_replica_wakes_the_followers_of_another(two_stores: tuple[SqlStore, SqlStore]) -> None:
    a, b = two_stores
    woken: list[str] = []
    owner, watcher = replication(a), replication(b, woken)
    await owner.start()
    await watcher.start()
    try:
        await a.create_pod_record(record("r1"))
        assert await a.append_events("r1", [event(), event()]) == [1, 2]
        for _ in range(100):  # NOTIFY is delivered at commit, asynchronously
            if woken:
                break
            await asyncio.sleep(0.05)
        assert woken == ["r1"]
    finally:
        await owner.close(release=True)
        await watcher.close(release=True)


async def test_a_burst_of_writes_on_one_replica_reaches_every_watcher_on_another_by_notify_alone(
    two_stores: tuple[SqlStore, SqlStore],
) -> None:
    """bench/replicas.py's case: many results committed together by the owner's group writer (their NOTIFYs
    in shared transactions) while watchers wait on the other replica. With no safety poll there (a watcher
    waits until woken), each watcher gets its events, pushed by NOTIFY alone."""
    a, b = two_stores
    written, watched = Journal(a), Journal(b)
    assert watched.safety_poll is None
    owner, watcher = replication(a, wake=written.wake), replication(b, wake=watched.wake)
    await owner.start()
    await watcher.start()
    names = [f"burst-{i}" for i in range(100)]
    try:
        await asyncio.gather(*(a.create_pod_record(record(name)) for name in names))

        async def watch(name: str) -> list[int]:
            return [e.seq async for e in watched.follow(name)]  # ends at the result

        watches = [asyncio.create_task(watch(name)) for name in names]
        for _ in range(3000):  # until every watcher has read the (empty) journal and waits (30 s at most)
            if all(any(f.waiting for f in watched.live_feeds(name)) for name in names):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the watchers did not all wait within 30 s")
        line = domain.LogLine(container="main", time=datetime.now(UTC), text="done")
        result = domain.PodResult(phase=domain.PodPhase.SUCCEEDED, exit_code=0)
        await asyncio.gather(*(written.append(name, line, result) for name in names))
        async with asyncio.timeout(30):  # bounds a failure only: a lost wake-up would wait forever
            assert await asyncio.gather(*watches) == [[1, 2]] * len(names)
    finally:
        await owner.close(release=True)
        await watcher.close(release=True)
        await written.close()
        await watched.close()


async def test_a_batch_of_writes_notifies_the_other_replicas_in_one_payload_not_one_a_write(
    two_stores: tuple[SqlStore, SqlStore],
) -> None:
    """The group writer sends a batch's notifications together (pgpipeline.notices): a line a write, as few
    payloads as fit in PostgreSQL's 8,000 bytes, instead of a NOTIFY for each write that every replica
    receives and handles apart."""
    a, b = two_stores
    a.act_as("a", "podgate_test")
    await a.register_replica("a", "", LeasePolicy())
    names = [f"batch-{i}" for i in range(40)]
    await asyncio.gather(*(a.create_pod_record(record(name)) for name in names))
    payloads: list[str] = []

    def heard(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        payloads.append(payload)

    def lines() -> list[list[str]]:
        return [line.split(" ", 2) for payload in payloads for line in payload.split("\n")]

    async with b.read_engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        await raw.add_listener("podgate_test", heard)
        before = a.writes.transactions
        assert await asyncio.gather(*(a.append_events(name, [event()]) for name in names)) == [[1]] * len(names)
        batches = a.writes.transactions - before
        async with asyncio.timeout(30):  # bounds a failure only: delivered at each commit, asynchronously
            while len(lines()) < len(names):  # noqa: ASYNC110 - the listener's own list
                await asyncio.sleep(0.01)
        await raw.remove_listener("podgate_test", heard)
    assert sorted(request_id for _, request_id, _ in lines()) == sorted(names)
    assert {seq for seq, _, _ in lines()} == {"1"}
    assert all(events.startswith("[") for _, _, events in lines())  # each write's events carried
    assert 1 <= len(payloads) <= batches < len(names)


class CountedReads:
    """The real store, its journal reads counted (what a watcher on another replica pays for each write)."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def read_events(self, *args: Any, **kwargs: Any) -> Any:
        self.reads += 1
        return await self.store.read_events(*args, **kwargs)


@contextlib.asynccontextmanager
async def watched_on_another_replica(
    two_stores: tuple[SqlStore, SqlStore], request_id: str
) -> AsyncIterator[tuple[Journal, CountedReads, Replication, asyncio.Task[list[domain.StreamEvent]]]]:
    """A request owned by replica a, watched on replica b (its journal reads counted) once b's watcher waits:
    a's journal, b's counted store, a's replication, and the watch."""
    a, b = two_stores
    counted = CountedReads(b)
    written, watched = Journal(a), Journal(cast(Any, counted))
    owner = replication(a, wake=written.wake)
    watcher = replication(b, wake=watched.wake, feed=watched.wake_with)
    await owner.start()
    await watcher.start()
    try:
        await a.create_pod_record(record(request_id))
        watch = asyncio.create_task(_collect(watched, request_id))
        async with asyncio.timeout(30):
            while not any(f.waiting for f in watched.live_feeds(request_id)):  # noqa: ASYNC110 - the watcher's own state
                await asyncio.sleep(0.01)
        yield written, counted, owner, watch
    finally:
        await owner.close(release=True)
        await watcher.close(release=True)
        await written.close()
        await watched.close()


async def test_a_watcher_on_another_replica_takes_the_events_its_notifications_carry_without_reading_them(
    two_stores: tuple[SqlStore, SqlStore],
) -> None:
    """Each journal NOTIFY carries the events it announces when they fit in a payload: the watcher on the
    other replica is handed them and reads the journal only for one that did not fit (8,000 bytes), each
    event once and in order whichever way it came."""
    async with watched_on_another_replica(two_stores, "r1") as (written, counted, _, watch):
        assert counted.reads == 1  # the journal read once, empty, before waiting
        now = datetime.now(UTC)
        texts = ["small", "x" * 9000, "after"]
        for text in texts:
            await written.append("r1", domain.LogLine(container="main", time=now, text=text))
        await written.append("r1", domain.PodResult(phase=domain.PodPhase.SUCCEEDED, exit_code=0))
        async with asyncio.timeout(30):  # bounds a failure only
            events = await watch
        assert [e.seq for e in events] == [1, 2, 3, 4]
        assert [e.item.text for e in events[:3]] == texts  # type: ignore[union-attr]
        assert isinstance(events[3].item, domain.PodResult)
        assert counted.reads == 2  # and once more for the line too long to be carried


async def _collect(journal: Journal, request_id: str) -> list[domain.StreamEvent]:
    return [event async for event in journal.follow(request_id)]


async def test_replicas_starting_together_register_the_same_clusters(two_stores: tuple[SqlStore, SqlStore]) -> None:
    """Two replicas on a fresh database put the same cluster at once (bench/takeover.py found one failing
    to start on the insert's unique key)."""
    a, b = two_stores
    sim = domain.CredentialsRef(source="sim")
    specs = [domain.ClusterSpec(name=f"c{i}", provider="sim", credentials=sim, region="r") for i in range(20)]
    await asyncio.gather(*(store.put_cluster(spec) for spec in specs for store in (a, b)))
    assert [c.name for c in await a.list_clusters()] == sorted(f"c{i}" for i in range(20))


async def test_a_lease_is_renewed_while_pod_writes_are_stuck_behind_a_lock(
    postgres_server: PostgresServer, two_stores: tuple[SqlStore, SqlStore]
) -> None:
    """A busy replica keeps its lease: the renewal does not queue behind pod writes (bench/replicas.py found
    replicas losing their leases behind a 10-19 s write backlog and taking each other's pods over)."""
    a, _ = two_stores
    a.act_as("a", "podgate_test")
    await a.register_replica("a", "", SHORT)
    names = [f"stuck-{i}" for i in range(8)]  # more requests than the writer has lanes: every lane is stuck
    for name in names:
        await a.create_pod_record(record(name))
    blocker = await asyncpg.connect(
        host=str(postgres_server.socket_dir), user=postgres_server.user, database=a.read_engine.url.database
    )
    try:
        holding = blocker.transaction()
        await holding.start()
        await blocker.execute("LOCK TABLE pod_records IN ACCESS EXCLUSIVE MODE")
        writes = [asyncio.create_task(a.record_phase(n, domain.PodPhase.PENDING)) for n in names]
        await asyncio.sleep(0.2)
        async with asyncio.timeout(10):
            assert await a.renew_replica("a", SHORT) is True
        assert not any(w.done() for w in writes)  # the writes were still waiting for the lock
        await holding.rollback()
        async with asyncio.timeout(10):
            assert {r.phase for r in await asyncio.gather(*writes)} == {domain.PodPhase.PENDING}
    finally:
        await blocker.close()


async def test_a_replica_paused_inside_a_transaction_does_not_keep_its_request_from_being_taken_over(
    postgres_server: PostgresServer,
) -> None:
    """a is stopped in the middle of a write: its transaction holds the record's row lock, which the claims of
    the others skip. The server ends a session idle in a transaction after `idle_transaction_seconds` (the
    lease's length), so b takes the request over instead of waiting for a to wake (found by the SIGSTOP
    test: one request of four stayed with the paused replica)."""
    async with postgres_server.database(database_name()) as url:
        text = url.render_as_string(hide_password=False)
        a = await SqlStore.open(text, idle_transaction_seconds=SHORT.duration)
        b = await SqlStore.open(text, idle_transaction_seconds=SHORT.duration)
        try:
            a.act_as("a", "podgate_test")
            await a.register_replica("a", "", SHORT)
            await a.create_pod_record(record("r1"))
            async with a.read_engine.connect() as paused:  # a's session, halfway through a write
                await paused.begin()
                await paused.execute(text_statement("SELECT 1 FROM pod_records WHERE request_id = 'r1' FOR UPDATE"))
                await asyncio.sleep(SHORT.duration + 0.1)  # past a's lease
                b.act_as("b", "podgate_test")
                await b.register_replica("b", "", LeasePolicy())  # b's own lease outlives its tries
                claimed: list[str] = []
                for _ in range(30):
                    claimed += [r.request.request_id for r in await b.claim_orphans("b")]
                    if claimed:
                        break
                    await asyncio.sleep(0.2)
                assert claimed == ["r1"]
                await paused.invalidate()
        finally:
            await a.close()
            await b.close()


async def test_a_notification_whose_events_cannot_be_read_sends_the_watcher_to_the_store(
    two_stores: tuple[SqlStore, SqlStore],
) -> None:
    """Anyone who can NOTIFY on the channel can send any text: a payload whose events are not JSON, of an
    unknown kind or of the wrong shape hands the watcher nothing; it reads the journal instead and gets the
    stored events, each once."""
    async with watched_on_another_replica(two_stores, "r2") as (written, counted, owner, watch):
        reads = counted.reads
        forged = ['1 r2 [{"i": 1, "kind": "nonsense", "time": "x", "payload": {}}]', "1 r2 {not json", "1 r2 [1]"]
        for payload in forged:
            await two_stores[0].notify(owner.channel, payload)
        async with asyncio.timeout(30):  # bounds a failure only: each forged payload sends the watcher to the store
            while counted.reads < reads + 1:  # noqa: ASYNC110 - counted by the store wrapper
                await asyncio.sleep(0.01)
        now = datetime.now(UTC)
        await written.append("r2", domain.LogLine(container="main", time=now, text="real"))
        await written.append("r2", domain.PodResult(phase=domain.PodPhase.SUCCEEDED, exit_code=0))
        async with asyncio.timeout(30):  # bounds a failure only
            events = await watch
        assert [e.seq for e in events] == [1, 2]
        assert events[0].item == domain.LogLine(container="main", time=now, text="real")
        assert isinstance(events[1].item, domain.PodResult)
