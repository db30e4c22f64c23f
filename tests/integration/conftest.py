"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.store.sql import SqlStore
from tests.postgres import PostgresServer, database_name


@pytest.fixture
async def two_stores(postgres_server: PostgresServer) -> AsyncIterator[tuple[SqlStore, SqlStore]]:
    """Two stores on one fresh PostgreSQL database, as two replicas hold them."""
    async with postgres_server.database(database_name()) as url:
        text = url.render_as_string(hide_password=False)
        a, b = await SqlStore.open(text), await SqlStore.open(text)
        try:
            yield a, b
        finally:
            await a.close()
            await b.close()
