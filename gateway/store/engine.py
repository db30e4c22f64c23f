"""Database engines and migrations: the only place that knows about SQLite's quirks.

SQLite allows one writer at a time. Rather than let concurrent writers collide on the file lock
(`database is locked`), every write goes through one `GroupCommitWriter` (gateway.store.writer), which
owns the only write connection (synchronous pysqlite, in the writer's own thread) and commits queued
writes together in `BEGIN IMMEDIATE` transactions; reads use a separate async pool and, thanks to WAL,
never wait for a writer. On PostgreSQL (asyncpg) writes are committed in groups too
(`gateway.store.pgwriter`: a commit waits for the WAL to reach disk) on an engine of their own, reads run
in autocommit on another, and replicas starting at once migrate one at a time (an advisory lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from gateway.store.jsontext import serialize
from gateway.store.pgwriter import LANES as PG_LANES
from gateway.store.pgwriter import PostgresGroupWriter
from gateway.store.url import database_url, describe
from gateway.store.writer import (
    UNAVAILABLE_AFTER,
    DirectWriter,
    GroupCommitWriter,
    Writer,
    connect,
    lost_as_unavailable,
)

log = logging.getLogger(__name__)

DEFAULT_PATH = Path(".podgate") / "podgate.db"
MIGRATIONS = "gateway.store:migrations"
BUSY_TIMEOUT_MS = 10_000  # how long SQLite itself waits for another process's lock before `database is locked`
IDLE_TRANSACTION_SECONDS = 15.0  # the default lease's length (settings: database.lease_seconds)
MIGRATION_LOCK = 0x706F6467  # "podg": the PostgreSQL advisory lock held while one replica migrates
# PRAGMA synchronous on every SQLite connection (settings: database.sqlite_synchronous; decision 0032). In WAL
# mode "full" syncs the WAL at every commit (one fsync a group-commit batch): an acknowledged write survives a
# power cut or kernel crash; "normal" syncs it at checkpoints: it survives a crash or kill of the gateway only.
# FULL by default: measured, it costs a pod no CPU (bigger batches) and the suite no time, only an fsync's latency.
SQLITE_SYNCHRONOUS = ("normal", "full")
DEFAULT_SQLITE_SYNCHRONOUS = "full"


def sqlite_url(path: Path | str = DEFAULT_PATH) -> str:
    return f"sqlite+aiosqlite:///{Path(path)}"


@dataclass(frozen=True)
class Engines:
    """Where writes go and the engine for reads."""

    writer: Writer
    read: AsyncEngine
    unavailable_after: float = UNAVAILABLE_AFTER  # how long a read waits for an unreachable database
    # Replica lease statements on a connection of their own (PostgreSQL): a renewal queued behind a deep
    # backlog of pod writes would let a busy, healthy replica lose its lease (bench/README.md, replicas.py).
    lease_writer: Writer | None = None

    @property
    def for_leases(self) -> Writer:
        return self.lease_writer or self.writer

    def reading(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """A read connection, waiting out a restarting database like a write does."""
        return _connected(self.read, self.unavailable_after)

    async def dispose(self) -> None:
        await self.writer.close()
        if self.lease_writer is not None:
            await self.lease_writer.close()
        await self.read.dispose()


@contextlib.asynccontextmanager
async def _connected(engine: AsyncEngine, wait: float) -> AsyncIterator[AsyncConnection]:
    conn = await connect(engine, wait=wait)
    try:
        with lost_as_unavailable():
            yield conn
    finally:
        await conn.close()


async def open_engines(
    url: str,
    *,
    password_file: Path | None = None,
    group_commit: bool = True,
    unavailable_after: float = UNAVAILABLE_AFTER,
    idle_transaction_seconds: float = IDLE_TRANSACTION_SECONDS,
    sqlite_synchronous: str = DEFAULT_SQLITE_SYNCHRONOUS,
) -> Engines:
    """Engines for `url` (see gateway.store.url), the schema migrated. `group_commit=False` gives one
    transaction per write (the behaviour before group commit, kept for comparison): on SQLite on a single
    pooled connection. `sqlite_synchronous` (one of SQLITE_SYNCHRONOUS) applies to SQLite only."""
    parsed = database_url(url, password_file=password_file)
    if parsed.get_backend_name() == "postgresql":
        return await _postgres_engines(parsed, unavailable_after, idle_transaction_seconds, group_commit=group_commit)
    database = parsed.database or ""
    if database in ("", ":memory:"):
        raise ValueError("the SQLite store needs a file (WAL and a separate read pool do not work in memory)")
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(_switch_to_wal, Path(database))
    writer = await (
        _group_writer(parsed, sqlite_synchronous) if group_commit else _direct_writer(parsed, sqlite_synchronous)
    )
    read = create_async_engine(parsed, pool_size=4, max_overflow=4, pool_timeout=None, json_serializer=serialize)
    _configure_sqlite(read, immediate=False, synchronous=sqlite_synchronous)
    return Engines(writer=writer, read=read, unavailable_after=0)  # a local file: nothing to wait out


async def _postgres_engines(
    url: URL, unavailable_after: float, idle_transaction_seconds: float, *, group_commit: bool = True
) -> Engines:
    """No pool timeout: a read waits for a connection rather than fail because others are queued.

    A replica paused (SIGSTOP, a VM frozen) in the middle of a write transaction keeps its row locks: the
    others' claims skip locked rows, so that request was never taken over until the replica woke (found by
    the SIGSTOP test). The server ends a session idle inside a transaction for `idle_transaction_seconds`
    (the lease's length: a replica that slow has lost its lease anyway), which releases them."""
    settings = {"idle_in_transaction_session_timeout": str(max(1, round(idle_transaction_seconds * 1000)))}
    options: dict[str, Any] = (
        {"connect_args": {"server_settings": settings}} if url.drivername.endswith("asyncpg") else {}
    )
    options["json_serializer"] = serialize
    # The writer's lanes keep a connection each (gateway.store.pgwriter); one more for asking a lost
    # commit's fate, a few for DirectWriter's concurrent transactions (group_commit=False).
    engine = create_async_engine(url, pool_size=PG_LANES + 2, max_overflow=4, pool_timeout=None, **options)
    _check_on_checkout(engine)
    log.info("store: PostgreSQL at %s", describe(url))
    try:
        await migrate(engine)
    except BaseException:
        await engine.dispose()
        raise
    writer: Writer = (
        PostgresGroupWriter(engine, unavailable_after=unavailable_after)
        if group_commit
        else DirectWriter(engine, unavailable_after=unavailable_after)
    )
    # Reads in autocommit: each of them is one statement (under READ COMMITTED every statement takes its
    # own snapshot anyway), so the BEGIN before it and the ROLLBACK when its connection is given back
    # were two round trips for nothing; with no transaction to end, nothing to reset on return either.
    read = create_async_engine(
        url,
        pool_size=10,
        max_overflow=10,
        pool_timeout=None,
        isolation_level="AUTOCOMMIT",
        pool_reset_on_return=None,
        **options,
    )
    _check_on_checkout(read)
    # One connection kept for the lease: never waits for the pool or the write queue.
    lease_engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=None, **options)
    _check_on_checkout(lease_engine)
    lease_writer = DirectWriter(lease_engine, unavailable_after=unavailable_after)
    return Engines(writer=writer, read=read, unavailable_after=unavailable_after, lease_writer=lease_writer)


def _check_on_checkout(engine: AsyncEngine) -> None:
    """Replaces a pooled connection the database closed (a restart, a terminated backend) at checkout,
    without a round trip: SQLAlchemy's pool_pre_ping costs three on asyncpg (BEGIN, an empty statement,
    ROLLBACK) at every checkout, 6 % of a replica's busy samples (bench/README.md, "Two replicas on
    PostgreSQL, third session"). The driver learns of a closed socket as soon as the event loop reads
    its end, so the pings only ever caught what this local check catches; a connection lost after the
    check fails its statement as it did after a ping (StoreUnavailable, or a write batch run again).
    DisconnectionError in a checkout listener makes the pool drop it and take another (SQLAlchemy's
    documented pessimistic handling with a custom check)."""

    @event.listens_for(engine.sync_engine, "checkout")
    def _alive(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if dbapi_connection.driver_connection.is_closed():
            raise DisconnectionError("the database closed this pooled connection")


def _switch_to_wal(path: Path, timeout: float = BUSY_TIMEOUT_MS / 1000) -> None:
    """Put the file in WAL mode once, before any pooled connection opens it. Two connections converting a
    fresh file at once deadlock (each holds SHARED and wants EXCLUSIVE), so SQLite answers one of them
    `database is locked` at once without waiting: replicas starting together failed that way in CI. WAL
    mode is stored in the file; converted here with retries, the per-connection pragma is then a no-op."""
    deadline = time.monotonic() + timeout
    while True:
        connection = sqlite3.connect(path, timeout=timeout)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if ("locked" not in str(e) and "busy" not in str(e)) or time.monotonic() > deadline:
                raise
        finally:
            connection.close()
        time.sleep(0.01 + random.random() * 0.05)  # in a worker thread (open_engines), not on the loop


def sqlite_write_engine(
    url: URL | str, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS, synchronous: str = DEFAULT_SQLITE_SYNCHRONOUS
) -> Engine:
    """The synchronous (pysqlite) engine of the group-commit writer, for the same file as `url`."""
    engine = create_engine(
        make_url(url).set(drivername="sqlite+pysqlite"), pool_size=1, max_overflow=0, json_serializer=serialize
    )
    _configure_sqlite(engine, immediate=True, busy_timeout_ms=busy_timeout_ms, synchronous=synchronous)
    return engine


async def _group_writer(url: URL, synchronous: str) -> Writer:
    return await GroupCommitWriter.start(sqlite_write_engine(url, synchronous=synchronous), prepare=upgrade)


async def _direct_writer(url: URL, synchronous: str) -> Writer:
    engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=None, json_serializer=serialize)
    _configure_sqlite(engine, immediate=True, synchronous=synchronous)
    try:
        await migrate(engine)
    except BaseException:
        await engine.dispose()
        raise
    return DirectWriter(engine, unavailable_after=0)


def _configure_sqlite(
    engine: AsyncEngine | Engine,
    *,
    immediate: bool,
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    synchronous: str = DEFAULT_SQLITE_SYNCHRONOUS,
) -> None:
    """WAL, a busy timeout for other processes, `synchronous` (SQLITE_SYNCHRONOUS), foreign keys; explicit
    BEGIN (pysqlite's is lazy)."""
    if synchronous not in SQLITE_SYNCHRONOUS:  # interpolated into the PRAGMA below: only the known words
        raise ValueError(f"sqlite_synchronous must be one of {', '.join(SQLITE_SYNCHRONOUS)}, got {synchronous!r}")
    sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")  # first: the pragmas below may wait
        cursor.execute("PRAGMA journal_mode=WAL")  # already WAL (_switch_to_wal): a no-op read
        cursor.execute(f"PRAGMA synchronous={synchronous.upper()}")  # see SQLITE_SYNCHRONOUS
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        raw: Any = conn.connection.dbapi_connection
        if not isinstance(raw, sqlite3.Connection):  # aiosqlite's adapter: through SQLAlchemy
            conn.exec_driver_sql(begin)
            return
        try:  # the group writer's pysqlite connection: on the driver, 40 -> 15 us a transaction (bench/README.md, sqlw2)
            raw.execute(begin)
        except sqlite3.Error as e:  # as SQLAlchemy raises it (is_locked reads either)
            raise DBAPIError.instance(begin, (), e, sqlite3.Error, dialect=conn.dialect) from e


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS)
    return cfg


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Bring the schema to `revision` (idempotent; a fresh database gets every table)."""
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


async def migrate(engine: AsyncEngine) -> None:
    """In one transaction; on PostgreSQL (transactional DDL) under an advisory lock, so that replicas
    starting together do not race to create the same tables: the second finds the schema at head."""
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        await conn.run_sync(upgrade)
