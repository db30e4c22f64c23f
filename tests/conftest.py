"""Shared fixtures. Tests bind to 127.0.0.1 only and must leave no asyncio task pending."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # imported in the fixtures: tests/airflow's venv loads this file without asyncpg
    from tests.postgres import PostgresServer

pytest_plugins = ["tests.fixtures_sim"]

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# A harness without job control (`make test &`) starts the suite with SIGINT ignored, and children inherit
# that: the CLI tests' Ctrl-C would never arrive. A handler (unlike SIG_IGN) is reset to the default at exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Tests that use their own CAs must not depend on the machine's global CA variables.
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE", "AWS_CA_BUNDLE", "SSL_CERT_DIR")


def clean_env(**extra: str) -> dict[str, str]:
    """Environment for subprocesses: no global CA overrides, our venv first on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in CA_VARIABLES}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


@pytest.fixture
def subprocess_env() -> Iterator[dict[str, str]]:
    yield clean_env()


@pytest.fixture(autouse=True, scope="session")
def _nothing_left_behind() -> Iterator[None]:
    """After the whole suite: no process of ours, no simulator mount, no simulator cgroup is left."""
    from tests.sim.leaks import child_processes, sim_cgroups, sim_mounts

    yield
    assert (child_processes(), sim_mounts(), sim_cgroups()) == ([], [], [])


@pytest.fixture(autouse=True)
async def _no_pending_tasks() -> AsyncIterator[None]:
    """Fails a test that leaves asyncio tasks behind (kopf does the same). Tasks still ending are given 2 s:
    a grpc.aio server stopped in a fixture's teardown finishes its cancelled RPC tasks a few loop turns
    later (one such task, pending after a single turn, failed a clean-clone CI run); a leak stays pending."""
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)
    leftover = [t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()]
    if leftover:
        await asyncio.wait(leftover, timeout=2.0)
        leftover = [t for t in leftover if not t.done()]
    if leftover:
        for t in leftover:
            t.cancel()
        await asyncio.gather(*leftover, return_exceptions=True)
        pytest.fail(f"test left {len(leftover)} asyncio task(s) pending: {[t.get_coro() for t in leftover]}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole run, started by the first test that needs it."""
    from tests.postgres import running_server

    with running_server() as server:
        yield server


@dataclass(frozen=True)
class Database:
    """An empty database for one test: `backend` is "sqlite" or "postgres"; `url` a SQLAlchemy URL."""

    backend: str
    url: str


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """Runs the test once on a SQLite file and once on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield Database("sqlite", f"sqlite+aiosqlite:///{tmp_path / 'state' / 'podgate.db'}")
        return
    from tests.postgres import database_name

    server: PostgresServer = request.getfixturevalue("postgres_server")
    async with server.database(database_name()) as url:
        yield Database("postgres", url.render_as_string(hide_password=False))


@dataclass
class Served:
    """A `podgate serve` process (what `make run` starts) and what it printed before serving."""

    process: subprocess.Popen[str]
    address: str
    printed: list[str]


@contextlib.contextmanager
def podgate_serve(state_dir: Path, *extra: str) -> Iterator[Served]:
    """Starts `podgate serve` on a free loopback port with the embedded clusters; stops it with SIGTERM."""
    proc = subprocess.Popen(
        [str(BIN / "podgate"), "serve", "--listen", "127.0.0.1:0", "--state-dir", str(state_dir), *extra],
        cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        printed: list[str] = []
        while not (match := re.search(r"serving on (127\.0\.0\.1:\d+)", printed[-1] if printed else "")):
            line = proc.stdout.readline()
            assert line, "".join(printed) + (proc.stderr.read() if proc.stderr else "")
            printed.append(line)
        yield Served(process=proc, address=match.group(1), printed=printed)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
