"""Group commit on PostgreSQL: the writes queued meanwhile go in one transaction, as on SQLite.

One transaction per write paid, for every write, a pool checkout with its ping, BEGIN, and a COMMIT that
waits for the WAL to reach disk (bench/README.md: 24 pods/s against SQLite's 94 at the same moment). Here
a lane's task takes every operation queued to it (up to `MAX_BATCH`), runs them in one transaction on
one connection (a key's writes in the order submitted; gateway.store.pgpipeline.plan), commits, and only
then resolves each caller's future: a write is durable when its await returns, as before.

Writes of a known key (its request id) go to a keyed lane chosen by the key, so the writes of one
request stay in order in one lane. There is `LANES` = 1 of them (decision 0035): a batch's one-statement
writes are sent as pipelines (gateway.store.pgpipeline: one round trip for each statement, not for each
write), so a large batch costs a few round trips and a lane keeps up with any load by taking larger batches;
more lanes only split the same writes into smaller batches, each paying its BEGIN, id and COMMIT (measured:
4 lanes, 2.0 transactions a pod and 11 ms of CPU a pod on two capped replicas; 1 lane, 0.3 and 8.5 ms).
A batch of `OneRow` writes only (a pod's creation and its changes) runs straight on asyncpg, outside
SQLAlchemy's transaction (`_on_the_driver`); any other batch in SQLAlchemy's, its `OneRow` writes still
pipelined. Writes without a key (lease renewals and claims, clusters, audit) have one more lane of their
own: a renewal never waits behind a batch of pod writes, or a replica under load would lose its lease to
its own write queue.

A failing operation fails alone, and SAVEPOINTs (two more round trips per write) are paid only by a
batch in which one fails: a batch runs plainly first; a PostgreSQL transaction is unusable after an
error anyway, so at the first operation that raises it is rolled back and run again with a SAVEPOINT per
operation, each failing one rolled back to its own and its caller given its error. Every outcome handed
out is the one of the run that committed. Operations must therefore have no effect outside their
transaction (every store operation is SQL on the connection it is given). An operation that is fenced
out (LeaseLost) does not raise here: it matches no row and returns None, so it costs the others nothing.

A connection lost before the COMMIT was sent (the database restarted, a failover, the backend killed)
means PostgreSQL rolled the transaction back: the batch runs again on a new connection, waiting for the
database up to `unavailable_after` from the cut, so a short restart costs the callers a delay, not an
error (a pod's runner would otherwise fail its request over a write that can simply be made again).
A connection lost after the COMMIT was sent leaves its outcome unknown: PostgreSQL may have committed
and lost only the answer. Reported failed, a write the caller then makes again is made twice (a log
batch journalled twice: repeated lines). Each batch therefore notes its transaction id first, and the
writer asks the database, once it is back, what became of it (`pg_xact_status`, PostgreSQL's own answer
to this question): committed, every caller gets its outcome; rolled back, the batch runs again.
Errors that are not one operation's fail the whole batch, and nothing of it is reported done:
- the COMMIT itself failed with the connection up, its outcome could not be learnt before
  `unavailable_after`, or the database stayed away: every caller gets the error (StoreUnavailable for a
  lost connection), as each got it from its own transaction before;
- a deadlock or serialization failure with another replica's transaction: the whole batch is run again
  (a few times, with backoff), since PostgreSQL rolled it back whole and no operation is to blame.
A database that cannot be reached is waited for (`connect`) up to `unavailable_after`, then every
queued caller gets StoreUnavailable.

Each lane keeps its connection between batches (bench/README.md, "Two replicas on PostgreSQL, third
session"): a checkout from the pool per batch cost a pre-ping (BEGIN, a statement, ROLLBACK: three round
trips) and the pool's bookkeeping. A kept connection is idle and outside any transaction between batches
(a batch ends in COMMIT or ROLLBACK, or the connection is given back): it holds no lock and no snapshot,
and `idle_in_transaction_session_timeout` never applies to it. One found dead (the database restarted,
the backend was terminated) fails the batch's first statement, before its COMMIT: the batch is cut
before its commit, as above, and runs again on a new connection. Any other error gives the connection
back to the pool (rolled back there, or dropped when broken); `close()` gives every kept one back.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.store.pgpipeline import NOTIFY, Keyed, Many, OneRow, aligned, notices, plan, prepared
from gateway.store.pgpipeline import lost as _lost
from gateway.store.writer import (
    MAX_BATCH,
    UNAVAILABLE_AFTER,
    Lane,
    Operation,
    Outcome,
    Pending,
    StoreClosed,
    StoreUnavailable,
    WriterStats,
    as_unavailable,
    backoff,
    connect,
    lost_connection,
    settle,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRIED_STATES = frozenset({"40P01", "40001"})  # deadlock detected, serialization failure
MAX_RETRIES = 5
LANES = 1  # keyed lanes: one, its batches pipelined (docs/decisions/0035-postgres-writer-pipelines.md)


class _CutBeforeCommit(Exception):
    """The connection was lost before the COMMIT was sent: nothing of the batch was committed."""


class _CommitUnanswered(Exception):
    """The connection was lost after the COMMIT was sent: transaction `xid` may have committed `outcomes`."""

    def __init__(self, xid: str, outcomes: list[Outcome]) -> None:
        super().__init__(xid)
        self.xid = xid
        self.outcomes = outcomes


CURRENT_XID = text("SELECT pg_current_xact_id()::text")
XID_STATUS = text("SELECT pg_xact_status(CAST(CAST(:xid AS text) AS xid8))")


def retried(error: BaseException) -> bool:
    """A deadlock or serialization failure: PostgreSQL rolled the transaction back, run it again (as
    SQLAlchemy raises it, or as asyncpg does in a pipeline)."""
    if isinstance(error, DBAPIError):
        return getattr(error.orig, "sqlstate", None) in RETRIED_STATES
    return isinstance(error, asyncpg.PostgresError) and error.sqlstate in RETRIED_STATES


def operations_error(error: Exception) -> bool:
    """An error of the operation that raised it (a constraint, bad data, a Python error in it), not of the
    connection or of the transaction as a whole."""
    if retried(error):
        return False
    return not (isinstance(error, DBAPIError) and error.connection_invalidated)


class PostgresGroupWriter:
    """Same contract as `GroupCommitWriter`: `close()` commits every write already submitted, later ones
    raise StoreClosed; a caller cancelled before its batch makes no write."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        unavailable_after: float = UNAVAILABLE_AFTER,
        max_batch: int = MAX_BATCH,
        lanes: int = LANES,
    ) -> None:
        self.engine = engine
        self.stats = WriterStats()
        self._wait = unavailable_after
        self._max_batch = max_batch
        self._closing = False
        self._lanes = [Lane() for _ in range(1 + max(1, lanes))]  # the first: writes without a key
        self._kept: dict[int, AsyncConnection] = {}  # each lane's connection between its batches
        for n, lane in enumerate(self._lanes):
            lane.task = asyncio.create_task(self._drain(lane, n), name=f"podgate-store-writer-{n}")

    async def run(self, operation: Operation[T], key: str = "") -> T:
        if self._closing:
            raise StoreClosed("the store is closing; the write was not made")
        lane = self._lanes[1 + hash(key) % (len(self._lanes) - 1) if key else 0]
        return await lane.submit(operation if not key or isinstance(operation, OneRow) else Keyed(operation, key))

    async def close(self) -> None:
        self._closing = True
        for lane in self._lanes:
            lane.ready.set()
        await asyncio.shield(asyncio.gather(*(lane.task for lane in self._lanes if lane.task is not None)))
        await self.engine.dispose()
        self.stats.report()

    async def _drain(self, lane: Lane, n: int) -> None:
        running: list[Pending] = []
        try:
            while True:
                running = lane.take(self._max_batch)
                if running:
                    await self._commit(running, n)
                elif self._closing:
                    return
                else:
                    lane.ready.clear()
                    await lane.ready.wait()
        finally:
            _fail(running, StoreClosed("the store's writer stopped during this write"))
            _fail(lane.queue, StoreClosed("the store's writer stopped before this write was made"))
            lane.queue.clear()
            kept = self._kept.pop(n, None)
            if kept is not None:
                await asyncio.shield(_close(kept))  # back to the pool before close() disposes of it

    async def _commit(self, batch: list[Pending], lane: int) -> None:
        """Runs `batch` until it commits: first plainly, then (after an operation raised) each operation
        under a SAVEPOINT, so that a batch costs at most one rollback however many of its writes fail."""
        retries = cuts = 0
        savepoints = False
        loop = asyncio.get_running_loop()
        cut_until: float | None = None
        while True:
            try:
                outcomes = await self._transaction([p.operation for p in batch], lane, savepoints=savepoints)
            except _CommitUnanswered as unanswered:
                status = await self._fate(unanswered.xid, loop.time() + self._wait)
                if status == "committed":
                    log.warning("store: the answer to a batch's commit was lost; the database says it committed")
                    outcomes = unanswered.outcomes
                elif status == "aborted":
                    self.stats.retries += 1
                    log.warning("store: the answer to a batch's commit was lost; it was rolled back, running it again")
                    continue
                else:
                    cause = unanswered.__cause__ if isinstance(unanswered.__cause__, Exception) else unanswered
                    log.error("store: a batch of %d writes may or may not have committed: %s", len(batch), _cause(cause))
                    _fail(batch, as_unavailable(cause))
                    return
            except _CutBeforeCommit as cut:
                lost = cut.__cause__ if isinstance(cut.__cause__, Exception) else cut
                cut_until = cut_until if cut_until is not None else loop.time() + self._wait
                if loop.time() < cut_until:
                    cuts += 1
                    self.stats.retries += 1
                    log.warning("store: connection lost before a batch's commit (%s); running it again", _cause(lost))
                    await asyncio.sleep(backoff(cuts, cap=1.0))
                    continue
                log.error("store: a write transaction of %d operations failed: %s", len(batch), _cause(lost))
                _fail(batch, as_unavailable(lost))
                return
            except Exception as e:  # the commit, or the transaction as a whole
                if retried(e) and retries < MAX_RETRIES:
                    retries += 1
                    self.stats.retries += 1
                    log.warning("store: write batch rolled back by the database (%s), retry %d", _cause(e), retries)
                    await asyncio.sleep(backoff(retries))
                    continue
                log.error("store: a write transaction of %d operations failed: %s", len(batch), _cause(e))
                _fail(batch, as_unavailable(e))
                return
            if outcomes is None:  # an operation raised: rolled back, run again with SAVEPOINTs
                savepoints = True
                self.stats.retries += 1
                continue
            self.stats.committed(len(batch))
            settle(batch, outcomes)
            return

    async def _transaction(
        self, operations: list[Operation[Any]], lane: int, *, savepoints: bool
    ) -> list[Outcome] | None:
        """Each operation's outcome once committed; None when, without `savepoints`, an operation raised
        its own error (rolled back). An error of the connection or the transaction is raised. On the
        lane's kept connection (or a new one), kept again only when the transaction ended cleanly."""
        conn = self._kept.pop(lane, None) or await connect(self.engine, wait=self._wait)
        xid, outcomes = "", None
        committing = ended = False
        try:
            if not savepoints and all(isinstance(operation, OneRow) for operation in operations):
                outcomes = await _on_the_driver(conn, operations)
                ended = True
                return outcomes
            transaction = await conn.begin()
            if savepoints or not any(isinstance(operation, OneRow) for operation in operations):
                xid, outcomes = await conn.run_sync(_numbered, operations, savepoints)
            else:
                xid, outcomes = await _pipelined(conn, operations)
            if outcomes is None:
                await transaction.rollback()
            else:
                committing = True
                await transaction.commit()
            ended = not conn.in_transaction()
            return outcomes
        except DBAPIError as e:
            if lost_connection(e) is None:
                raise
            if committing and outcomes is not None:
                raise _CommitUnanswered(xid, outcomes) from e
            raise _CutBeforeCommit() from e
        finally:
            if ended:
                self._kept[lane] = conn
            else:
                await _close(conn)

    async def _fate(self, xid: str, deadline: float) -> str | None:
        """'committed' or 'aborted' as the database knows transaction `xid`; None if it cannot say before
        `deadline`. 'in progress' means its old session has not finished yet: asked again shortly."""
        loop = asyncio.get_running_loop()
        attempt = 0
        while loop.time() < deadline:
            attempt += 1
            try:
                conn = await connect(self.engine, wait=max(0.0, deadline - loop.time()))
            except StoreUnavailable:
                return None
            try:
                status = (await conn.execute(XID_STATUS, {"xid": xid})).scalar_one_or_none()
            except DBAPIError as e:
                if lost_connection(e) is None:
                    log.error("store: could not learn what became of a batch's commit: %s", _cause(e))
                    return None
                status = "unreachable"
            finally:
                await _close(conn)
            if status in ("committed", "aborted"):
                return str(status)
            await asyncio.sleep(backoff(attempt, first=0.02, cap=0.5))
        return None


async def _on_the_driver(conn: AsyncConnection, operations: list[Any]) -> list[Outcome] | None:
    """A batch of `OneRow` writes only (most of a pod's: its creation and every change), as `_transaction`
    makes it, straight on asyncpg: BEGIN, the transaction's id, the pipelines, COMMIT, without SQLAlchemy's
    transaction (its greenlet hand-overs and execution cost more than the statements; bench/README.md,
    helper pglanes). None, rolled back, when a write raised its own error. SQLAlchemy does not know of this
    transaction: one left open by an error is never handed back to the pool, the connection is invalidated."""
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None
    xid, outcomes, committing = "", None, False
    try:
        await raw.execute("BEGIN")
        xid = await raw.fetchval("SELECT pg_current_xact_id()::text")
        outcomes = await _pipelines(conn, raw, operations)
        if outcomes is None:
            await raw.execute("ROLLBACK")
            return None
        committing = True
        await raw.execute("COMMIT")
        return outcomes
    except BaseException as e:
        lost = isinstance(e, Exception) and _lost(raw, e)
        await asyncio.shield(conn.invalidate())  # the pool never sees this one again, open or closed
        if not lost:
            raise
        if committing and outcomes is not None:
            raise _CommitUnanswered(xid, outcomes) from e
        raise _CutBeforeCommit() from e


async def _pipelines(conn: AsyncConnection, raw: Any, operations: list[Any]) -> list[Outcome] | None:
    """Runs `operations` by their plan (pgpipeline.plan) on `conn` in its transaction: the pipelines on the
    driver's connection `raw`, any other operation through SQLAlchemy in its place. Each write's outcome, or
    None when one raised its own error (the transaction is then aborted: the batch runs again the old way,
    with a SAVEPOINT per operation, where a failing write fails alone with SQLAlchemy's error). A lost
    connection or a deadlock is raised."""
    outcomes: list[Outcome] = [Outcome()] * len(operations)
    told: dict[str, list[str]] = {}  # each channel's notifications, in the order of their writes
    for step in plan(operations):
        if not isinstance(step, Many):
            done = await conn.run_sync(_in_order, [operations[step.index]], False)
            if done is None:
                return None
            outcomes[step.index] = done[0]
            continue
        writes: list[OneRow] = [operations[i] for i in step.indices]
        statement = prepared(step.statement, conn.dialect)
        try:
            records = await raw.fetchmany(statement.sql, [statement.arguments(w.params) for w in writes])
            values = aligned(writes, statement, records)
        except Exception as e:
            if _lost(raw, e) or retried(e):
                raise
            log.debug("store: a pipelined write failed (%s); the batch runs again with SAVEPOINTs", _cause(e))
            return None
        for write, index, value in zip(writes, step.indices, values, strict=True):
            outcomes[index] = Outcome(value=value)
            if write.channel and value is not None and (notice := value.get("notice")):
                told.setdefault(write.channel, []).append(notice)
    if told:  # delivered at the COMMIT, a few payloads for the whole batch (pgpipeline.notices)
        try:
            await raw.executemany(NOTIFY, [(channel, p) for channel, lines in told.items() for p in notices(lines)])
        except Exception as e:
            if _lost(raw, e) or retried(e):
                raise
            log.debug("store: a batch's notifications failed (%s); the batch runs again with SAVEPOINTs", _cause(e))
            return None
    return outcomes


async def _pipelined(conn: AsyncConnection, operations: list[Operation[Any]]) -> tuple[str, list[Outcome] | None]:
    """As `_numbered` without SAVEPOINTs, the `OneRow` writes in pipelines (`_pipelines`)."""
    xid = (await conn.execute(CURRENT_XID)).scalar_one()  # SQLAlchemy's BEGIN goes with it
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None  # the connection is open: the statement above ran on it
    try:
        return xid, await _pipelines(conn, raw, operations)
    except Exception as e:
        if _lost(raw, e):
            raise _CutBeforeCommit() from e
        raise


def _numbered(
    conn: Connection, operations: list[Operation[Any]], savepoints: bool
) -> tuple[str, list[Outcome] | None]:
    """The transaction's id (to ask its fate if the answer to its COMMIT is lost), then `_in_order`."""
    return conn.execute(CURRENT_XID).scalar_one(), _in_order(conn, operations, savepoints)


def _in_order(conn: Connection, operations: list[Operation[Any]], savepoints: bool) -> list[Outcome] | None:
    outcomes: list[Outcome] = []
    for operation in operations:
        nested = conn.begin_nested() if savepoints else None
        try:
            value = operation(conn)
        except Exception as e:
            if not operations_error(e):
                raise
            if nested is None:
                return None
            nested.rollback()
            outcomes.append(Outcome(error=e))
        else:
            if nested is not None:
                nested.commit()
            outcomes.append(Outcome(value=value))
    return outcomes


async def _close(conn: AsyncConnection) -> None:
    """Returns the connection (rolling back a transaction left open by an error); a broken one is dropped."""
    try:
        await conn.close()
    except Exception as e:  # already reported through the batch's error
        log.debug("store: closing a broken write connection: %s", _cause(e))


def _fail(pending: Any, error: Exception) -> None:
    for p in pending:
        if not p.future.done():
            p.future.set_exception(error)


def _cause(error: BaseException) -> str:
    text = str(error).splitlines()[0][:200] if str(error) else ""
    return f"{type(error).__name__}: {text}"
