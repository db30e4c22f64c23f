"""Database engines and migrations: the only place that knows about SQLite's quirks.

SQLite allows one writer at a time. Rather than let concurrent writers collide on the file lock
(`database is locked`), writes go through an engine with exactly one connection whose transactions
start with `BEGIN IMMEDIATE`; reads use a separate pool and, thanks to WAL, never wait for a writer.
Any other database (Postgres) uses one ordinary engine for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

DEFAULT_PATH = Path(".podgate") / "podgate.db"
MIGRATIONS = "gateway.store:migrations"


def sqlite_url(path: Path | str = DEFAULT_PATH) -> str:
    return f"sqlite+aiosqlite:///{Path(path)}"


@dataclass(frozen=True)
class Engines:
    """The engine for writes and the one for reads (the same object except on SQLite)."""

    write: AsyncEngine
    read: AsyncEngine

    async def dispose(self) -> None:
        await self.write.dispose()
        if self.read is not self.write:
            await self.read.dispose()


def create_engines(url: str) -> Engines:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = create_async_engine(url, pool_pre_ping=True)
        return Engines(write=engine, read=engine)
    database = parsed.database or ""
    if database in ("", ":memory:"):
        raise ValueError("the SQLite store needs a file (WAL and a separate read pool do not work in memory)")
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    write = create_async_engine(url, pool_size=1, max_overflow=0)
    read = create_async_engine(url, pool_size=4, max_overflow=4)
    _configure_sqlite(write, immediate=True)
    _configure_sqlite(read, immediate=False)
    return Engines(write=write, read=read)


def _configure_sqlite(engine: AsyncEngine, *, immediate: bool) -> None:
    """WAL, a busy timeout for other processes, foreign keys; explicit BEGIN (pysqlite's is lazy)."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable at each WAL checkpoint; safe with WAL
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS)
    return cfg


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to `revision` (idempotent; a fresh database gets every table)."""

    def _upgrade(connection: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)
