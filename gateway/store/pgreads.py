"""PostgreSQL: the hot reads (a record by its request, a page of its journal) run straight on asyncpg.

Through SQLAlchemy, each read cost its execution layer (the greenlet hand-over, the adapter's cursor, the
result's processing): with the checkout around it, ~20 % of a capped replica's busy samples in
`bench/replicas.py ... --py-spy` (bench/README.md, "PostgreSQL reads on asyncpg (helper pgreads)"). Here the
statement, compiled once for the dialect (pgpipeline.prepared, its parameters and columns processed by the
dialect's own processors: JSON and UTC datetimes decode as SQLAlchemy's execution decodes them), runs as one
asyncpg `fetch` on the pooled connection SQLAlchemy checked out (so the wait for a restarting database and
the pool's check of closed connections stay as they were).

Errors as before: a connection lost in the statement invalidates it and raises StoreUnavailable (as
writer.lost_as_unavailable does for SQLAlchemy's error); any other error runs the statement again through
SQLAlchemy, so the caller gets SQLAlchemy's own error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.pgpipeline import Statement, lost, prepared
from gateway.store.writer import StoreUnavailable


async def fetch(conn: AsyncConnection, statement: Statement, params: Mapping[str, Any]) -> list[Mapping[Any, Any]]:
    """The rows of `statement` with `params` on `conn` (checked out, autocommit), each a mapping by column."""
    compiled = prepared(statement, conn.dialect)
    raw: Any = conn.sync_connection.connection.driver_connection  # type: ignore[union-attr]  # checked out: open
    try:
        records = await raw.fetch(compiled.sql, *compiled.arguments(params))
    except Exception as e:
        if not lost(raw, e):
            return [row._mapping for row in await conn.execute(statement, dict(params))]
        await asyncio.shield(conn.invalidate())
        first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise StoreUnavailable(f"the database connection was lost during the statement ({first})") from e
    return [compiled.mapping(record) for record in records]
