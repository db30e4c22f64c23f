"""Alembic environment: runs on the connection the store hands over (`config.attributes["connection"]`).

`gateway.store.engine.migrate()` is the normal entry point. For authoring a revision with the alembic
command line, pass `-x url=sqlite:///path.db` (a synchronous URL) instead.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from gateway.store.schema import metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit(
            "pass -x url=sqlite:///PATH (a synchronous database URL) or use gateway.store.engine.migrate()"
        )
    with create_engine(url).connect() as conn:
        _run(conn)
        conn.commit()
