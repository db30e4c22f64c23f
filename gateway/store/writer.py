"""Group commit: one task owns SQLite's write connection and commits the writes queued meanwhile together.

SQLite takes one writer at a time, and a transaction costs about 2 ms whatever its size (thread hand-offs,
not disk: WAL with synchronous=NORMAL does not fsync at commit; FULL, the default, adds one fsync a
transaction, decision 0032). One transaction per write capped the gateway at a few hundred writes/s, and
callers queued for the single pooled connection until SQLAlchemy's pool timeout failed them. Here a write is
an *operation* — a function of a synchronous `Connection` — with a future. The writer takes every queued
operation (up to `MAX_BATCH`), runs them in one transaction in its own thread (one hand-off per batch, not
several per statement), commits, then resolves the futures: a caller's write is durable when its await
returns. A failing operation fails only its own caller: the batch in which one raised is rolled back and run
again with a SAVEPOINT per operation. Nothing times out because the queue is long; a database locked by
another process is retried with backoff.

`DirectWriter` runs the same operations one transaction per call, for databases with real concurrent
writers (Postgres).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, Self, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.errors import Unavailable
from gateway.observability.descriptors import is_exhaustion

log = logging.getLogger(__name__)

T = TypeVar("T")
Operation = Callable[[Connection], T]

MAX_BATCH = 500
UNAVAILABLE_AFTER = 30.0  # seconds a caller waits for an unreachable database before StoreUnavailable


@dataclass
class WriterStats:
    """Counters since start: operations run, transactions committed, batches run again (SQLite: found
    locked; PostgreSQL: a deadlock, or an operation failed and the batch runs again with SAVEPOINTs), and the
    CPU the SQLite writer's thread spent in its transactions (a sampling profiler counts that thread's waits
    for the GIL inside sqlite3 as busy: this is what it used; bench/README.md, helper sqlw)."""

    operations: int = 0
    transactions: int = 0
    retries: int = 0
    thread_seconds: float = 0.0

    def committed(self, operations: int) -> None:
        self.transactions += 1
        self.operations += operations

    def report(self) -> None:
        """Logged when the writer closes: how well writes were grouped (bench/README.md reads it)."""
        if self.operations:
            log.info(
                "store: %d writes in %d transactions (%.1f a transaction), %d batches run again%s",
                self.operations, self.transactions, self.operations / max(1, self.transactions), self.retries,
                f", writer thread {self.thread_seconds:.3f} s CPU" if self.thread_seconds else "",
            )  # fmt: skip


class Writer(Protocol):
    stats: WriterStats

    async def run(self, operation: Operation[T], key: str = "") -> T:
        """Run `operation` in a write transaction; its result once committed, or its exception. Writes of
        one `key` (a request id) are made in the order submitted; a writer may commit other keys' apart."""
        ...

    async def close(self) -> None: ...


class StoreClosed(Unavailable):
    """A write was submitted after close() began (or the writer was stopped before running it)."""


class StoreUnavailable(Unavailable):
    """The database could not be reached (restarting, failed over, cut off) for longer than the wait."""


async def connect(engine: AsyncEngine, *, wait: float = UNAVAILABLE_AFTER) -> AsyncConnection:
    """A connection, waiting out a database that is restarting or unreachable: nothing has been sent yet,
    so waiting is always safe (an error once a transaction has begun is the caller's, as before).
    StoreUnavailable after `wait` seconds; the pool's checkout check (PostgreSQL: engine._check_on_checkout)
    replaces connections the restart closed.
    `wait=0` (SQLite: a local file is never "unreachable") makes one attempt and raises its error."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    attempt = 0
    while True:
        try:
            return await engine.connect()
        except (DBAPIError, OSError) as e:
            if wait <= 0 or is_exhaustion(e):  # out of descriptors: the gateway's trouble, shed load at once
                raise
            attempt += 1
            left = deadline - loop.time()
            cause = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            if left <= 0:
                raise StoreUnavailable(f"the database has been unreachable for {wait:g} s ({cause})") from None
            delay = min(backoff(attempt, cap=1.0), left)
            log.warning("store: database unreachable (%s), attempt %d, retrying in %.2f s", cause, attempt, delay)
            await asyncio.sleep(delay)


def lost_connection(error: DBAPIError) -> StoreUnavailable | None:
    """A statement cut off by the database going away (a restart, a failover): unavailable, as a client
    must hear it (UNAVAILABLE: try again), not an internal error. None for any other error."""
    if not error.connection_invalidated and not isinstance(error.orig, OSError):
        return None
    first = str(error.orig).splitlines()[0][:200] if str(error.orig) else type(error.orig).__name__
    return StoreUnavailable(f"the database connection was lost during the statement ({first})")


@contextlib.contextmanager
def lost_as_unavailable() -> Iterator[None]:
    """Inside it, a statement cut off by the database going away raises StoreUnavailable (lost_connection)."""
    try:
        yield
    except DBAPIError as e:
        lost = lost_connection(e)
        if lost is None:
            raise
        raise lost from e


def as_unavailable(error: Exception) -> Exception:
    """`error`, or StoreUnavailable when it is a lost connection (see lost_connection)."""
    lost = lost_connection(error) if isinstance(error, DBAPIError) else None
    if lost is None:
        return error
    lost.__cause__ = error
    return lost


def is_locked(error: BaseException) -> bool:
    """SQLITE_BUSY / SQLITE_LOCKED (`database is locked`): another process holds the write lock."""
    cause = error.orig if isinstance(error, OperationalError) else error
    if not isinstance(cause, sqlite3.OperationalError):
        return False
    code = getattr(cause, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "database is locked" in str(cause)


def backoff(attempt: int, *, first: float = 0.05, cap: float = 2.0) -> float:
    """Seconds to wait before retry `attempt` (1, 2, ...) of a batch that found the database locked."""
    return float(min(cap, first * 2 ** (attempt - 1)))


@dataclass(frozen=True, eq=False)
class Pending:
    """A queued write and the future its caller awaits (both writers queue these)."""

    operation: Operation[Any]
    future: asyncio.Future[Any]


@dataclass(frozen=True)
class Outcome:
    """One operation's value or error, handed out once its batch committed."""

    value: Any = None
    error: Exception | None = None


def settle(batch: list[Pending], outcomes: list[Outcome]) -> None:
    """Hands each caller its operation's outcome, once its batch committed (a caller gone meanwhile is skipped)."""
    for pending, outcome in zip(batch, outcomes, strict=True):
        if pending.future.done():
            continue
        if outcome.error is not None:
            pending.future.set_exception(outcome.error)
        else:
            pending.future.set_result(outcome.value)


class Lane:
    """A queue of writes and the task committing them in batches (each group writer has one or more)."""

    def __init__(self) -> None:
        self.queue: collections.deque[Pending] = collections.deque()
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def submit(self, operation: Operation[T]) -> T:
        """Queues `operation` for the lane's task; its value once its batch committed, or its error."""
        if self.task is None or self.task.done():
            raise StoreClosed("the store's writer is not running; the write was not made")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self.queue.append(Pending(operation, future))
        self.ready.set()
        return await future

    def take(self, max_batch: int) -> list[Pending]:
        batch: list[Pending] = []
        while self.queue and len(batch) < max_batch:
            pending = self.queue.popleft()
            if not pending.future.done():  # a caller cancelled before its turn: its write is not made
                batch.append(pending)
        return batch


class GroupCommitWriter:
    """Start with `await GroupCommitWriter.start(engine)`; `close()` runs every write already submitted."""

    def __init__(self, engine: Engine, *, max_batch: int = MAX_BATCH) -> None:
        self.engine = engine
        self.stats = WriterStats()
        self._max_batch = max_batch
        self._lane = Lane()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="podgate-store-writer")
        self._connection: Connection | None = None
        self._running: list[Pending] = []
        self._closing = False

    @classmethod
    async def start(cls, engine: Engine, *, prepare: Operation[None] | None = None, max_batch: int = MAX_BATCH) -> Self:
        """Connects in the writer's thread and runs `prepare` (migrations) in a first transaction."""
        writer = cls(engine, max_batch=max_batch)
        try:
            await writer._in_thread(writer._connect, prepare)
        except BaseException:
            await writer._shutdown()
            raise
        writer._lane.task = asyncio.create_task(writer._drain(), name="podgate-store-writer")
        return writer

    async def run(self, operation: Operation[T], key: str = "") -> T:
        if self._closing:
            raise StoreClosed("the store is closing; the write was not made")
        return await self._lane.submit(operation)

    async def close(self) -> None:
        """Drains: every write submitted before close() is committed (or fails on its own); later ones
        raise StoreClosed. Then the connection is closed."""
        self._closing = True
        self._lane.ready.set()
        if self._lane.task is not None:
            await asyncio.shield(self._lane.task)
        await self._shutdown()
        self.stats.report()

    async def _drain(self) -> None:
        try:
            while True:
                self._running = batch = self._lane.take(self._max_batch)
                if batch:
                    await self._commit(batch)
                elif self._closing:
                    return
                else:
                    self._lane.ready.clear()
                    await self._lane.ready.wait()
        finally:
            self._fail_queued()

    async def _commit(self, batch: list[Pending]) -> None:
        operations = [p.operation for p in batch]
        attempt = 0
        savepoints = False
        while True:
            try:
                outcomes = await self._in_thread(self._transaction, operations, savepoints)
            except Exception as e:  # the transaction as a whole failed, not one operation
                if is_locked(e):
                    attempt += 1
                    self.stats.retries += 1
                    delay = backoff(attempt)
                    log.warning("store: database locked by another process, retry %d in %.2f s", attempt, delay)
                    await asyncio.sleep(delay)
                    continue
                log.error("store: a write transaction of %d operations failed: %s", len(batch), e)
                outcomes = [Outcome(error=e)] * len(batch)
            else:
                if outcomes is None:  # an operation raised: rolled back, run again with SAVEPOINTs
                    savepoints = True
                    self.stats.retries += 1
                    continue
                self.stats.committed(len(batch))
            break
        settle(batch, outcomes)

    def _fail_queued(self) -> None:
        """Only when the writer task is cancelled (close() drains instead)."""
        for pending in self._running:
            if not pending.future.done():
                pending.future.set_exception(StoreClosed("the store's writer stopped during this write"))
        while self._lane.queue:
            future = self._lane.queue.popleft().future
            if not future.done():
                future.set_exception(StoreClosed("the store's writer stopped before this write was made"))

    # --- in the writer's thread -------------------------------------------------------------

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def _connect(self, prepare: Operation[None] | None) -> None:
        self._connection = self.engine.connect()
        if prepare is not None:
            with self._connection.begin():
                prepare(self._connection)

    def _transaction(self, operations: list[Operation[Any]], savepoints: bool) -> list[Outcome] | None:
        """One transaction. Without `savepoints` the operations run plainly and the first that raises rolls
        the transaction back (None: the batch runs again with them); with, each runs under its own SAVEPOINT
        and one that raises is rolled back to it alone. The savepoints go straight to the sqlite3 connection:
        through SQLAlchemy's `begin_nested()` they took a third of the batch's time, and even so two
        statements a write, paid now only by a batch in which a write fails (as on PostgreSQL, pgwriter.py)."""
        started = time.thread_time()
        try:
            return self._run_batch(operations, savepoints)
        finally:
            self.stats.thread_seconds += time.thread_time() - started

    def _run_batch(self, operations: list[Operation[Any]], savepoints: bool) -> list[Outcome] | None:
        conn = self._connection
        assert conn is not None
        raw = conn.connection.dbapi_connection
        assert raw is not None
        outcomes: list[Outcome] = []
        with conn.begin() as transaction:
            for operation in operations:
                if savepoints:
                    raw.execute("SAVEPOINT podgate_op")
                try:
                    value = operation(conn)
                except Exception as e:
                    if is_locked(e):
                        raise  # the whole batch is rolled back and retried
                    if not savepoints:
                        transaction.rollback()
                        return None
                    raw.execute("ROLLBACK TO SAVEPOINT podgate_op")
                    outcomes.append(Outcome(error=e))
                else:
                    outcomes.append(Outcome(value=value))
                if savepoints:
                    raw.execute("RELEASE SAVEPOINT podgate_op")
        return outcomes

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self.engine.dispose()  # pysqlite connections belong to the thread that opened them

    async def _shutdown(self) -> None:
        try:
            await self._in_thread(self._disconnect)
        finally:
            self._thread.shutdown(wait=False)


class DirectWriter:
    """One transaction per operation on an async engine: for databases that take concurrent writers.

    Same contract as the group writer: close() lets the writes already submitted finish, then refuses
    new ones with StoreClosed (disposing the engine alone would let a later write open a new connection);
    a database that cannot be reached is waited for (`connect`), as the group writer waits out a lock.
    """

    def __init__(self, engine: AsyncEngine, *, unavailable_after: float = UNAVAILABLE_AFTER) -> None:
        self.engine = engine
        self.stats = WriterStats()
        self._wait = unavailable_after
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False

    async def run(self, operation: Operation[T], key: str = "") -> T:
        if self._closing:
            raise StoreClosed("the store is closing; the write was not made")
        self._in_flight += 1
        self._idle.clear()
        try:
            conn = await connect(self.engine, wait=self._wait)
            try:
                with lost_as_unavailable():
                    async with conn.begin():
                        value = await conn.run_sync(operation)
                self.stats.committed(1)
                return value
            finally:
                await conn.close()
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def close(self) -> None:
        self._closing = True
        await self._idle.wait()
        await self.engine.dispose()
