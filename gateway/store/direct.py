"""The pod path's hottest statements on SQLite, run on the driver's cursor with SQLAlchemy's own SQL and types.

Each record write on SQLite executes an UPDATE ... RETURNING and, with events, a journal INSERT, in the
group writer's thread. Through `Connection.execute` each statement cost ~40-60 us of SQLAlchemy's Python
(execution context, cache lookup, parameter and result processing set up per call) around ~10 us in
sqlite3 itself: about three quarters of the writer thread's time (bench/README.md, issue 16). Here a
statement is compiled once by SQLAlchemy for the engine's dialect, and its bind and result processors
(the dialect's, as SQLAlchemy would apply them: datetimes as SQLite's text, JSON through the engine's
serializer) are looked up once; a call runs the SQL on the DBAPI cursor of the connection it is given, in
that connection's transaction and savepoint, and converts the driver's errors as SQLAlchemy does (an
IntegrityError stays an `sqlalchemy.exc.IntegrityError`). Decision record: docs/decisions/0031.

Only for statements whose parameters are all bound (no column defaults computed at execution, no
expanding IN lists): `prepare` refuses any other.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Dialect, Select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import UpdateBase

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class Direct:
    """A statement compiled for one dialect, with the processors of its parameters and returned columns."""

    sql: str
    names: tuple[str, ...]  # the positional parameters, in order
    binds: tuple[Processor, ...]
    columns: tuple[str, ...]  # the returned columns' keys, in order
    results: tuple[Processor, ...]

    def first(self, conn: Connection, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """The first row (as a dict by column key), None if there is none."""
        cursor = _cursor(conn)
        try:
            row = self._run(cursor, lambda c, p: c.execute(self.sql, p), self._bound(params), conn).fetchone()
        finally:
            cursor.close()
        if row is None:
            return None
        return {
            key: (value if process is None else process(value))
            for key, process, value in zip(self.columns, self.results, row, strict=True)
        }

    def many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Runs the statement once per row of parameters (the driver's executemany)."""
        cursor = _cursor(conn)
        try:
            self._run(cursor, lambda c, p: c.executemany(self.sql, p), [self._bound(row) for row in rows], conn)
        finally:
            cursor.close()

    def _bound(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(
            params[name] if process is None else process(params[name])
            for name, process in zip(self.names, self.binds, strict=True)
        )

    def _run(self, cursor: Any, call: Callable[[Any, Any], Any], params: Any, conn: Connection) -> Any:
        dbapi = conn.dialect.loaded_dbapi
        try:
            call(cursor, params)
        except dbapi.Error as e:
            raise DBAPIError.instance(self.sql, params, e, dbapi.Error, dialect=conn.dialect) from e
        return cursor


def _cursor(conn: Connection) -> Any:
    raw = conn.connection.dbapi_connection
    assert raw is not None
    return raw.cursor()


@functools.cache
def prepare(statement: Select[Any] | UpdateBase, dialect: Dialect, keys: tuple[str, ...] | None = None) -> Direct:
    """`statement` compiled for `dialect`, with the processors of its parameters and of the columns it
    selects or returns; an INSERT of the columns `keys` only (as `Connection.execute` compiles it for the
    keys of its parameters), else of every column."""
    compiled = statement.compile(dialect=dialect, column_keys=None if keys is None else list(keys))
    returning = statement.selected_columns if isinstance(statement, Select) else statement.exported_columns
    if getattr(compiled, "insert_prefetch", None) or getattr(compiled, "update_prefetch", None):
        raise ValueError("a statement with column defaults computed at execution cannot run directly")
    names = tuple(compiled.positiontup or ())
    binds = tuple(compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names)
    if any(compiled.binds[name].expanding for name in names):
        raise ValueError("a statement with an expanding parameter cannot run directly")
    columns = tuple(str(column.name) for column in returning)
    results = tuple(column.type.dialect_impl(dialect).result_processor(dialect, None) for column in returning)
    return Direct(sql=str(compiled), names=names, binds=binds, columns=columns, results=results)
