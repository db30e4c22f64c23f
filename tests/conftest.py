"""Shared fixtures. Tests bind to 127.0.0.1 only and must leave no asyncio task pending."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures_sim"]

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

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


@pytest.fixture(autouse=True)
async def _no_pending_tasks() -> AsyncIterator[None]:
    """Fails a test that leaves asyncio tasks behind (kopf does the same)."""
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)
    leftover = [t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()]
    if leftover:
        for t in leftover:
            t.cancel()
        await asyncio.gather(*leftover, return_exceptions=True)
        pytest.fail(f"test left {len(leftover)} asyncio task(s) pending: {[t.get_coro() for t in leftover]}")
