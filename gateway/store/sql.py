"""`SqlStore`: the Store over SQLAlchemy's async engine, on SQLite (the default) or PostgreSQL.

Unique constraints make creates idempotent (on the hot path through each dialect's upsert, `INSERT ... ON
CONFLICT DO NOTHING`: docs/decisions/0035 and 0043), and `UPDATE ... RETURNING` hands out journal sequence
numbers atomically.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self, TypeVar

from sqlalchemy import ColumnElement, Connection, Insert, RowMapping, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.domain import ClusterSpec, JournalEvent, PlacementDecision, PodPhase, PodRecord, PodResult
from gateway.errors import AlreadyExists, NotFound
from gateway.store import direct, lease, pgreads, quota, replicas, statements
from gateway.store.base import DEFAULT_PAGE, MAX_PAGE, AuditRecord, LeaseLost, TenantAdmission
from gateway.store.codec import decode_cluster, encode_cluster
from gateway.store.engine import (
    DEFAULT_PATH,
    DEFAULT_SQLITE_SYNCHRONOUS,
    IDLE_TRANSACTION_SECONDS,
    Engines,
    open_engines,
    sqlite_url,
)
from gateway.store.jsontext import Encoded, dumps
from gateway.store.pgpipeline import OneRow, Statement
from gateway.store.rows import (
    DecodeCache,
    clamp_limit,
    decode_page_token,
    encode_page_token,
    event_array,
    event_from_row,
    event_rows,
    record_from_row,
    record_values,
)
from gateway.store.schema import audit_log, clusters, journal_events, pod_records
from gateway.store.writer import UNAVAILABLE_AFTER, Operation, WriterStats

T = TypeVar("T")
Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def open_store(
    url: str | None = None, *, path: Path | str = DEFAULT_PATH, password_file: Path | None = None
) -> SqlStore:
    """The gateway's store: the database at `url` (password there or in `password_file`), else the SQLite
    file at `path`; migrated to the current schema."""
    return await SqlStore.open(url, path=path, password_file=password_file)


class SqlStore:
    """Open with `await SqlStore.open(url)` (runs migrations); close with `await store.close()`."""

    def __init__(self, engines: Engines, *, clock: Clock = _utcnow) -> None:
        self._engines = engines
        self._clock = clock
        self._decoded = DecodeCache()
        # Replicas (docs/decisions/0021): who this store writes as, and the fence of each request it owns.
        self._owner: str | None = None
        self._channel = ""
        self._fences: dict[str, int] = {}
        self._replicated = False  # once a replica: owner writes without a live fence are refused
        dialect = engines.read.dialect
        self._on_the_driver = dialect.name == "postgresql" and dialect.driver == "asyncpg"  # the hot reads: pgreads

    @classmethod
    async def open(
        cls,
        url: str | None = None,
        *,
        path: Path | str = DEFAULT_PATH,
        password_file: Path | None = None,
        clock: Clock = _utcnow,
        group_commit: bool = True,
        unavailable_after: float = UNAVAILABLE_AFTER,
        idle_transaction_seconds: float = IDLE_TRANSACTION_SECONDS,
        sqlite_synchronous: str = DEFAULT_SQLITE_SYNCHRONOUS,
    ) -> Self:
        """`url` is a SQLAlchemy URL (`postgresql+asyncpg://...`, `sqlite:///file`; see gateway.store.url),
        its password in the URL or in `password_file`; without one, the SQLite file at `path`. Writes on
        SQLite are committed in groups (gateway.store.writer) unless `group_commit=False`. A call waits up to
        `unavailable_after` seconds for an unreachable database, then raises StoreUnavailable. On PostgreSQL
        the server ends a session left inside a transaction for `idle_transaction_seconds` (see engine.py).
        `sqlite_synchronous`: SQLite's PRAGMA synchronous, "normal" or "full" (engine.SQLITE_SYNCHRONOUS)."""
        engines = await open_engines(
            url or sqlite_url(path),
            password_file=password_file,
            group_commit=group_commit,
            unavailable_after=unavailable_after,
            idle_transaction_seconds=idle_transaction_seconds,
            sqlite_synchronous=sqlite_synchronous,
        )
        return cls(engines, clock=clock)

    async def close(self) -> None:
        """Writes already submitted are committed first; later ones raise `StoreClosed`."""
        await self._engines.dispose()

    @property
    def shared(self) -> bool:
        """Whether several replicas may share this database (PostgreSQL; SQLite is one gateway's alone)."""
        return self._engines.read.dialect.name == "postgresql"

    @property
    def writes(self) -> WriterStats:
        """What the writer has done since the store opened: write operations and transactions committed."""
        return self._engines.writer.stats

    @property
    def read_engine(self) -> AsyncEngine:
        """For a LISTEN connection (gateway.pods.replication); queries go through the methods."""
        return self._engines.read

    # --- replica leases (docs/decisions/0021; PostgreSQL only) ------------------------------

    def act_as(self, replica: str | None, channel: str = "") -> None:
        """From now on, records are created owned by `replica`, owner writes are fenced, and journal
        appends notify `channel`. None: no owner (one gateway, every write unconditional)."""
        self._owner = replica
        self._channel = channel
        self._fences.clear()
        self._replicated = self._replicated or replica is not None

    def disown(self, request_ids: Iterable[str]) -> None:
        """A later write for these requests by this replica is refused (LeaseLost), as for any request it
        holds no fence of."""
        for request_id in request_ids:
            self._fences[request_id] = -1

    async def register_replica(self, replica: str, listen: str, policy: lease.LeasePolicy) -> None:
        await self._engines.for_leases.run(lambda conn: replicas.register(conn, replica, listen, policy))

    async def renew_replica(self, replica: str, policy: lease.LeasePolicy) -> bool:
        """On the lease's own connection: never behind the pod writes (see Engines.lease_writer)."""
        return await self._engines.for_leases.run(lambda conn: replicas.renew(conn, replica, policy))

    async def release_replica(self, replica: str) -> None:
        """Ends the lease now and tells the other replicas (on the channel of `act_as`) to claim at once."""
        channel = self._channel

        def release(conn: Connection) -> None:
            replicas.release(conn, replica)
            if channel:
                conn.execute(select(func.pg_notify(channel, "released")))

        await self._write(release)

    async def claim_orphans(self, replica: str) -> list[PodRecord]:
        """Takes over this replica's share of the requests of replicas whose lease ran out."""
        rows = await self._write(lambda conn: replicas.claim(conn, replica))
        claimed = [self._record(row) for row in rows]
        if replica == self._owner:
            for row in rows:
                self._fences[row["request_id"]] = row["fence"]
        return claimed

    async def notify(self, channel: str, payload: str) -> None:
        """A NOTIFY to the replicas listening on `channel`."""
        await self._write(lambda conn: conn.execute(select(func.pg_notify(channel, payload))))

    def _fence(self, request_id: str) -> dict[str, Any] | None:
        """The parameters of an owner write's condition (lease.accepts): exact owner and fence, when acting
        as a replica; None when writes are unconditional."""
        if not self._replicated:
            return None
        return {"p_owner": self._owner or "", "p_fence": self._fences.get(request_id, -1)}

    async def _refused(self, request_id: str, fence: dict[str, Any] | None) -> Exception:
        """A fenced write matched nothing. `fence` is the one it was made with: a newer one (this replica
        claimed the request again while the write was on its way) stays."""
        if await self.get_pod_record(request_id) is None:
            return NotFound(f"no pod record for request {request_id!r}")
        if fence is None or self._fences.get(request_id, -1) == fence["p_fence"]:
            self._fences[request_id] = -1
        return LeaseLost(f"request {request_id!r} is owned by another replica now; this one stops following it")

    async def _write(self, operation: Operation[T], key: str = "") -> T:
        """`key`: the request the write is about, if one (its writes stay in order; see the writers)."""
        return await self._engines.writer.run(operation, key)

    def _change(
        self, change: Any, bound: dict[str, Any], journal: _Journal | None, request_id: str
    ) -> Operation[Mapping[Any, Any] | None]:
        """The write `_changed` makes; on PostgreSQL one statement, which the writer may pipeline with
        others (gateway.store.pgpipeline)."""
        if self.shared and (journal is None or journal.array is not None):
            channel = journal.channel if journal is not None else ""
            return OneRow(*_statement_of(change, bound, journal, notice=True), key=request_id, channel=channel)
        return lambda conn: _changed(conn, change, bound, journal)

    def _remember(self, request_id: str, values: Mapping[str, Any], **written: Any) -> None:
        """The values a write stores, with their encoding in `values`: its RETURNING row needs no decoding."""
        for column, value in written.items():
            if value is not None:
                self._decoded.put(column, request_id, values[column], value)

    def _record(self, row: Mapping[Any, Any]) -> PodRecord:
        """Decoded in the event loop's thread, where the decode cache lives."""
        return record_from_row(row, self._decoded)

    def _journal_of(self, events: Sequence[JournalEvent]) -> _Journal | None:
        """`events` encoded for the backend's way of appending them with a change (see `_changed`)."""
        if not events:
            return None
        if self.shared:
            return _Journal(array=event_array(events), channel=self._channel)
        return _Journal(rows=event_rows(events), channel=self._channel)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- clusters -------------------------------------------------------------------------

    async def put_cluster(self, spec: ClusterSpec) -> None:
        values = {"spec": encode_cluster(spec), "updated_at": self._clock()}

        def put(conn: Connection) -> None:
            done = conn.execute(update(clusters).where(clusters.c.name == spec.name).values(values))
            if done.rowcount == 0:
                conn.execute(insert(clusters).values(name=spec.name, cordoned=False, cordon_reason="", **values))

        try:
            await self._write(put)
        except IntegrityError:  # another replica inserted it between our update and insert: update it now
            await self._write(put)

    async def get_cluster(self, name: str) -> ClusterSpec | None:
        async with self._engines.reading() as conn:
            data = await conn.scalar(select(clusters.c.spec).where(clusters.c.name == name))
        return None if data is None else decode_cluster(data)

    async def list_clusters(self) -> list[ClusterSpec]:
        async with self._engines.reading() as conn:
            rows = await conn.scalars(select(clusters.c.spec).order_by(clusters.c.name))
            return [decode_cluster(data) for data in rows]

    async def delete_cluster(self, name: str) -> bool:
        statement = delete(clusters).where(clusters.c.name == name)
        return bool(await self._write(lambda conn: conn.execute(statement).rowcount))

    async def set_cordon(self, name: str, cordoned: bool, reason: str = "") -> None:
        values = {"cordoned": cordoned, "cordon_reason": reason if cordoned else "", "updated_at": self._clock()}
        statement = update(clusters).where(clusters.c.name == name).values(values)
        if await self._write(lambda conn: conn.execute(statement).rowcount) == 0:
            raise NotFound(f"cluster {name!r} is not registered")

    async def get_cordons(self) -> dict[str, str]:
        query = select(clusters.c.name, clusters.c.cordon_reason).where(clusters.c.cordoned.is_(True))
        async with self._engines.reading() as conn:
            return {name: reason for name, reason in await conn.execute(query)}

    # --- pod records ----------------------------------------------------------------------

    async def create_pod_record(
        self,
        record: PodRecord,
        *,
        events: Sequence[JournalEvent] = (),
        admission: TenantAdmission | None = None,
        audit: Mapping[Any, Any] | None = None,
    ) -> tuple[PodRecord, bool]:
        request_id = record.request.request_id
        if not request_id:
            raise ValueError("a pod record needs a request_id")
        values = record_values(record, self._clock())
        values["last_seq"] = record.last_seq + len(events)
        self._remember(request_id, values, request=record.request, decision=record.decision, result=record.result)
        if self._owner is not None:
            values |= {"owner": self._owner, "fence": 1}
        journal = _Journal(rows=event_rows(events), channel=self._channel) if events else None
        audited = None if audit is None else self._audit_values(audit)

        def create(conn: Connection) -> tuple[Mapping[Any, Any], bool]:
            row = _inserted(conn, values, admission)
            if row is None:  # the request is stored already
                existing = _first(conn, statements.RECORD_BY_REQUEST, {"p_request_id": request_id})
                assert existing is not None  # its record is there, in this transaction's view
                return existing, False
            if journal is not None:
                _insert_events(conn, row, journal)
            if audited is not None:
                _insert(conn, statements.INSERT_AUDIT, [audited])
            return row, True

        try:
            made: tuple[Mapping[Any, Any], bool] | None = None
            if self.shared and admission is None:  # one statement, pipelined by the writer
                made = await self._create_statement(request_id, values, events, audited)
            if made is None:  # or another writer inserted it meanwhile, unseen by that statement: `create` reads it
                made = await self._write(create, request_id)
            row, created = made
            if created and self._owner is not None:
                self._fences[request_id] = 1
            return self._record(row), created
        except IntegrityError as e:  # another writer inserted it meanwhile (Postgres), or the name clashed
            existing = await self.get_pod_record(request_id)
            if existing is None:  # the clash was on (cluster, namespace, name)
                raise AlreadyExists(f"another request already owns pod {record.namespace}/{record.name}") from e
            return existing, False

    async def _create_statement(
        self,
        request_id: str,
        values: dict[str, Any],
        events: Sequence[JournalEvent],
        audited: dict[str, Any] | None,
    ) -> tuple[Mapping[Any, Any], bool] | None:
        """PostgreSQL without a tenant's admission: `create`'s write as one statement (statements.created)."""
        notify = bool(events) and bool(self._channel)
        statement = statements.created(
            frozenset(values), events=bool(events), notify=notify, audit=audited is not None, notice=notify
        )
        bound = statements.params(values) | {"p_request_id": request_id, "p_events": len(events)}
        if events:
            bound["p_journal"] = event_array(events)
        if audited is not None:
            bound |= {f"p_audit_{name}": value for name, value in audited.items()}
        row = await self._write(OneRow(statement, bound, request_id, self._channel if notify else ""), request_id)
        return None if row is None else (row, bool(row["created"]))

    async def get_pod_record(self, request_id: str) -> PodRecord | None:
        rows = await self._read(statements.RECORD_BY_REQUEST, {"p_request_id": request_id})
        return self._record(rows[0]) if rows else None

    async def _read(self, statement: Statement, params: Mapping[str, Any]) -> list[Mapping[Any, Any]]:
        """A hot statement's rows: on asyncpg straight on the driver (pgreads), else through SQLAlchemy."""
        async with self._engines.reading() as conn:
            if self._on_the_driver:
                return await pgreads.fetch(conn, statement, params)
            return [row._mapping for row in await conn.execute(statement, params)]

    async def record_placement(
        self,
        request_id: str,
        *,
        cluster: str,
        region: str,
        namespace: str,
        name: str,
        decision: PlacementDecision | None,
        phase: PodPhase | None = None,
        events: Sequence[JournalEvent] = (),
    ) -> PodRecord:
        values: dict[str, Any] = {
            "cluster": cluster or None,
            "region": region or None,
            "namespace": namespace or None,
            "name": name or None,
            "decision": dumps(decision),
        }
        if phase is not None:
            values["phase"] = phase.value
        self._remember(request_id, values, decision=decision)
        try:
            return await self._update(request_id, values, events=events)
        except IntegrityError as e:
            raise AlreadyExists(f"pod {namespace}/{name} on cluster {cluster!r} belongs to another request") from e

    async def record_phase(self, request_id: str, phase: PodPhase, *, events: Sequence[JournalEvent] = ()) -> PodRecord:
        return await self._update(request_id, {"phase": phase.value}, events=events)

    async def record_result(
        self, request_id: str, result: PodResult, *, events: Sequence[JournalEvent] = ()
    ) -> PodRecord:
        values = {"result": dumps(result), "phase": result.phase.value}
        self._remember(request_id, values, result=result)
        return await self._update(request_id, values, events=events)

    async def record_finished(self, request_id: str, finished_at: datetime | None = None) -> PodRecord:
        record = await self._update(request_id, {"finished_at": finished_at or self._clock()})
        self._fences.pop(request_id, None)
        return record

    async def set_reattach_deadline(self, request_id: str, deadline: datetime | None) -> PodRecord:
        """Not an owner write: the replica a client is attached to sets it (its owner acts on it)."""
        return await self._update(request_id, {"reattach_deadline": deadline}, owner_write=False)

    async def request_cancel(self, request_id: str, reason: str) -> PodRecord:
        """Not an owner write: any replica records a cancel; the first one asked for is kept."""
        c = pod_records.c
        statement = (
            update(pod_records)
            .where(c.request_id == request_id, c.finished_at.is_(None), c.cancel_requested_at.is_(None))
            .values(updated_at=self._clock(), cancel_requested_at=self._clock(), cancel_reason=reason)
            .returning(*statements.RECORD_COLUMNS)
        )
        row = await self._write(lambda conn: conn.execute(statement).first(), request_id)
        record = self._record(row._mapping) if row is not None else await self.get_pod_record(request_id)
        if record is None:
            raise NotFound(f"no pod record for request {request_id!r}")
        return record

    async def _update(
        self,
        request_id: str,
        values: dict[str, Any],
        *,
        owner_write: bool = True,
        events: Sequence[JournalEvent] = (),
    ) -> PodRecord:
        """One write: the record's change, fenced for an owner write, and `events` appended to its journal."""
        fence = self._fence(request_id) if owner_write else None
        values = {"updated_at": self._clock(), **values}
        statement = statements.update_record(frozenset(values), fenced=fence is not None, events=bool(events))
        bound = statements.params(values) | {"p_request_id": request_id, "p_events": len(events)} | (fence or {})
        journal = self._journal_of(events)
        row = await self._write(self._change(statement, bound, journal, request_id), request_id)
        if row is None:
            raise await self._refused(request_id, fence)
        return self._record(row)

    async def list_pod_records(
        self,
        *,
        cluster: str | None = None,
        phases: Iterable[PodPhase] | None = None,
        dag_id: str | None = None,
        tenant: str | None = None,
        limit: int = DEFAULT_PAGE,
        page_token: str = "",
    ) -> tuple[list[PodRecord], str]:
        c = pod_records.c
        filters: list[ColumnElement[bool]] = []
        if cluster is not None:
            filters.append(c.cluster == cluster)
        if phases is not None:
            filters.append(c.phase.in_([PodPhase(p).value for p in phases]))
        if dag_id is not None:
            filters.append(c.dag_id == dag_id)
        if tenant is not None:
            filters.append(c.tenant == tenant)
        rows, token = await self._page(statements.RECORD_COLUMNS, c.id, filters, limit, page_token)
        return [self._record(r) for r in rows], token

    async def list_unfinished(self, *, tenant: str | None = None) -> list[PodRecord]:
        c = pod_records.c
        query = select(*statements.RECORD_COLUMNS).where(c.finished_at.is_(None)).order_by(c.id)
        if tenant is not None:
            query = query.where(c.tenant == (tenant or None))
        async with self._engines.reading() as conn:
            return [self._record(row._mapping) for row in await conn.execute(query)]

    async def running_counts(self) -> dict[str, int]:
        """Unfinished placed records per cluster: the gateway's own load on each (for concurrency limits)."""
        c = pod_records.c
        query = (
            select(c.cluster, func.count()).where(c.finished_at.is_(None), c.cluster.is_not(None)).group_by(c.cluster)
        )
        async with self._engines.reading() as conn:
            return {cluster: int(n) for cluster, n in await conn.execute(query)}

    async def _page(
        self, columns: Sequence[Any], key: Any, filters: list[ColumnElement[bool]], limit: int, page_token: str
    ) -> tuple[list[RowMapping], str]:
        """One page, newest (highest key) first; the token is the last key handed out."""
        size = clamp_limit(limit, MAX_PAGE)
        below = decode_page_token(page_token)
        if below is not None:
            filters = [*filters, key < below]
        query = select(*columns).where(*filters).order_by(key.desc()).limit(size + 1)
        async with self._engines.reading() as conn:
            rows = [row._mapping for row in await conn.execute(query)]
        if len(rows) <= size:
            return rows, ""
        rows = rows[:size]
        return rows, encode_page_token(rows[-1][key.name])

    # --- the event journal ----------------------------------------------------------------

    async def append_events(self, request_id: str, events: list[JournalEvent]) -> list[int]:
        if not events:
            return []
        fence = self._fence(request_id)
        claim = statements.claim_seqs(fenced=fence is not None)
        bound = {"p_request_id": request_id, "p_events": len(events)} | (fence or {})
        journal = self._journal_of(events)
        claimed = await self._write(self._change(claim, bound, journal, request_id), request_id)
        if claimed is None:
            raise await self._refused(request_id, fence)
        last = claimed["last_seq"]
        return list(range(last - len(events) + 1, last + 1))

    async def read_events(
        self, request_id: str, after_seq: int = 0, limit: int = MAX_PAGE
    ) -> list[tuple[int, JournalEvent]]:
        """Events after the cursor in sequence order; empty for an unknown request."""
        bound = {"p_request_id": request_id, "p_after": after_seq, "p_limit": clamp_limit(limit, 10 * MAX_PAGE)}
        return [(row["seq"], event_from_row(row)) for row in await self._read(statements.READ_EVENTS, bound)]

    async def prune_events(self, request_id: str) -> int:
        bound = {"p_request_id": request_id}
        return int(await self._write(lambda conn: conn.execute(statements.DELETE_EVENTS, bound).rowcount, request_id))

    async def apply_retention(
        self, *, journal_before: datetime, records_before: datetime | None = None
    ) -> tuple[int, int]:
        finished = pod_records.c.finished_at
        old_journals = select(pod_records.c.id).where(finished.is_not(None), finished < journal_before)

        def retain(conn: Connection) -> tuple[int, int]:
            events = conn.execute(delete(journal_events).where(journal_events.c.record_id.in_(old_journals)))
            records = 0
            if records_before is not None:
                old = select(pod_records.c.id).where(finished.is_not(None), finished < records_before)
                conn.execute(delete(journal_events).where(journal_events.c.record_id.in_(old)))
                records = conn.execute(delete(pod_records).where(pod_records.c.id.in_(old))).rowcount
            return events.rowcount, records

        return await self._write(retain)

    @staticmethod
    def _record_id(request_id: str) -> Any:
        return select(pod_records.c.id).where(pod_records.c.request_id == request_id).scalar_subquery()

    # --- audit ----------------------------------------------------------------------------

    async def append_audit(self, record: Mapping[str, Any]) -> int:
        statement = insert(audit_log).values(self._audit_values(record)).returning(audit_log.c.id)
        return int(await self._write(lambda conn: conn.execute(statement).scalar_one()))

    def _audit_values(self, record: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "time": self._clock(),
            "action": str(record.get("action", "")),
            "actor": str(record.get("actor", "")),
            "record": dumps(record),
        }

    async def list_audit(
        self,
        *,
        action: str | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        limit: int = DEFAULT_PAGE,
        page_token: str = "",
    ) -> tuple[list[AuditRecord], str]:
        c = audit_log.c
        filters: list[ColumnElement[bool]] = []
        if action is not None:
            filters.append(c.action == action)
        if actor is not None:
            filters.append(c.actor == actor)
        if since is not None:
            filters.append(c.time >= since)
        rows, token = await self._page(tuple(audit_log.c), c.id, filters, limit, page_token)
        entries = [
            AuditRecord(id=r["id"], time=r["time"], action=r["action"], actor=r["actor"], record=r["record"])
            for r in rows
        ]
        return entries, token

    async def count_events(self, request_id: str) -> int:
        """Journal rows held for a request (after pruning, fewer than its last sequence number)."""
        query = select(func.count()).where(journal_events.c.record_id == self._record_id(request_id))
        async with self._engines.reading() as conn:
            return int(await conn.scalar(query) or 0)


@dataclass(frozen=True)
class _Journal:
    """Events to append with a record's change, encoded before the write (an event that cannot be encoded
    fails its caller before anything is written): `rows` for an INSERT, `array` for statements.journalled."""

    rows: list[dict[str, Any]] | None = None
    array: Encoded | None = None
    channel: str = ""


def _changed(
    conn: Connection, change: Any, bound: dict[str, Any], journal: _Journal | None
) -> Mapping[Any, Any] | None:
    """Runs `change` (an UPDATE of one record returning at least its id, request_id and last_seq, counting the
    journal's events) and appends the events to its journal: on PostgreSQL in the same statement
    (statements.journalled), elsewhere with a second one. The row returned, None if it matched none."""
    if journal is not None and journal.array is not None:
        found = conn.execute(*_statement_of(change, bound, journal)).first()
        return None if found is None else found._mapping
    row = _first(conn, change, bound)
    if row is not None and journal is not None:
        _insert_events(conn, row, journal)
    return row


def _statement_of(
    change: Any, bound: dict[str, Any], journal: _Journal | None, *, notice: bool = False
) -> tuple[Any, dict[str, Any]]:
    """PostgreSQL: the one statement of `_changed`, and its parameters; with `notice`, its notification
    returned for the group writer to send with its batch's others (OneRow's `channel`), not sent."""
    if journal is None:
        return change, bound
    assert journal.array is not None
    extra: dict[str, str] = {"p_journal": journal.array}
    if journal.channel:
        extra |= {"p_feed": replicas.feed(journal.array)} | ({} if notice else {"p_channel": journal.channel})
    told = bool(journal.channel)
    return statements.journalled(change, notify=told and not notice, notice=told and notice), bound | extra


def _first(conn: Connection, statement: Any, bound: dict[str, Any]) -> Mapping[Any, Any] | None:
    """The statement's first row: on SQLite run on the driver's cursor (gateway.store.direct)."""
    if conn.dialect.name == "sqlite":
        keys = tuple(bound) if isinstance(statement, Insert) else None
        return direct.prepare(statement, conn.dialect, keys).first(conn, bound)
    row = conn.execute(statement, bound).first()
    return None if row is None else row._mapping


def _inserted(conn: Connection, values: dict[str, Any], admission: TenantAdmission | None) -> Mapping[Any, Any] | None:
    """The record of `values` inserted, its row; None when a record of its request is there. On SQLite without
    a tenant's admission one statement (statements.INSERT_NEW_RECORD, whose conflict on the request id inserts
    nothing) instead of a look for the record first; an admission must look first, so as not to count a
    request already stored against its tenant."""
    if admission is None and conn.dialect.name == "sqlite":
        return _first(conn, statements.INSERT_NEW_RECORD, values)
    if _first(conn, statements.RECORD_BY_REQUEST, {"p_request_id": values["request_id"]}) is not None:
        return None
    if admission is not None:
        quota.admit(conn, admission)
    row = _first(conn, statements.INSERT_RECORD, values)
    assert row is not None  # RETURNING the row inserted
    return row


def _insert(conn: Connection, statement: Insert, rows: list[dict[str, Any]]) -> None:
    """Inserts `rows` (each with the same keys): on SQLite on the driver's cursor (gateway.store.direct)."""
    if conn.dialect.name == "sqlite":
        direct.prepare(statement, conn.dialect, tuple(rows[0])).many(conn, rows)
    else:
        conn.execute(statement, rows)


def _insert_events(conn: Connection, row: Mapping[Any, Any], journal: _Journal) -> None:
    """Appends the journal's events to the record `row` (as written, its `last_seq` already counting them), in
    the caller's transaction, and notifies the journal's channel."""
    assert journal.rows is not None
    last = row["last_seq"]
    first = last - len(journal.rows) + 1
    _insert(
        conn,
        statements.INSERT_EVENTS,
        [{"record_id": row["id"], "seq": seq} | event for seq, event in enumerate(journal.rows, first)],
    )
    if journal.channel:
        replicas.notify(conn, journal.channel, row["request_id"], last)
