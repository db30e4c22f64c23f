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

Two processors are applied here in one step instead of SQLAlchemy's chain, for what they are always
handed on this path (bench/README.md, helper sqlw2): a `UtcDateTime` (the TypeDecorator's call, `naive_utc`,
then SQLite's DATETIME formatting a dict; reading back, `fromisoformat` then the zone) and JSON text already
`Encoded` (bound as is, which the engine's serializer does too). Anything else goes through SQLAlchemy's own
processor; tests/unit/test_store_direct_processors.py holds both equal.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Connection, Dialect, Select
from sqlalchemy.dialects.sqlite import DATETIME
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.types import TypeEngine

from gateway.store.jsontext import Encoded, serialize
from gateway.store.schema import UtcDateTime

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class Direct:
    """A statement compiled for one dialect, with the processors of its parameters and returned columns."""

    sql: str
    names: tuple[str, ...]  # the positional parameters, in order
    binds: tuple[Processor, ...]
    columns: tuple[str, ...]  # the returned columns' keys, in order
    results: tuple[Processor, ...]
    # Derived: the parameters' values in order, and only the positions that have a processor.
    _values: Callable[[Mapping[str, Any]], tuple[Any, ...]] = field(init=False, repr=False, compare=False)
    _bind_at: tuple[tuple[int, Callable[[Any], Any]], ...] = field(init=False, repr=False, compare=False)
    _result_at: tuple[tuple[str, Callable[[Any], Any]], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = self.names
        if len(names) == 1:
            values: Callable[[Mapping[str, Any]], tuple[Any, ...]] = lambda params: (params[names[0]],)  # noqa: E731
        elif names:
            values = operator.itemgetter(*names)
        else:
            values = lambda params: ()  # noqa: E731
        object.__setattr__(self, "_values", values)
        object.__setattr__(self, "_bind_at", tuple((i, p) for i, p in enumerate(self.binds) if p is not None))
        results = zip(self.columns, self.results, strict=True)
        object.__setattr__(self, "_result_at", tuple((k, p) for k, p in results if p is not None))

    def first(self, conn: Connection, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """The first row (as a dict by column key), None if there is none."""
        bound = self._bound(params)
        cursor = _cursor(conn)
        try:
            cursor.execute(self.sql, bound)
            row = cursor.fetchone()
        except conn.dialect.loaded_dbapi.Error as e:
            raise self._error(e, bound, conn) from e
        finally:
            cursor.close()
        if row is None:
            return None
        record = dict(zip(self.columns, row, strict=True))
        for key, process in self._result_at:
            record[key] = process(record[key])
        return record

    def many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Runs the statement once per row of parameters (the driver's executemany)."""
        bound = [self._bound(row) for row in rows]
        cursor = _cursor(conn)
        try:
            cursor.executemany(self.sql, bound)
        except conn.dialect.loaded_dbapi.Error as e:
            raise self._error(e, bound, conn) from e
        finally:
            cursor.close()

    def _bound(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        values = self._values(params)
        if not self._bind_at:
            return values
        processed = list(values)
        for i, process in self._bind_at:
            processed[i] = process(processed[i])
        return tuple(processed)

    def _error(self, error: Exception, params: Any, conn: Connection) -> Exception:
        """The driver's error as SQLAlchemy raises it (an IntegrityError stays one)."""
        dbapi = conn.dialect.loaded_dbapi
        return DBAPIError.instance(self.sql, params, error, dbapi.Error, dialect=conn.dialect)


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
    binds = tuple(bind_processor(compiled.binds[name].type, dialect) for name in names)
    if any(compiled.binds[name].expanding for name in names):
        raise ValueError("a statement with an expanding parameter cannot run directly")
    columns = tuple(str(column.name) for column in returning)
    results = tuple(result_processor(column.type, dialect) for column in returning)
    return Direct(sql=str(compiled), names=names, binds=binds, columns=columns, results=results)


def bind_processor(type_: TypeEngine[Any], dialect: Dialect) -> Processor:
    """SQLAlchemy's bind processor of `type_` on `dialect`, or the same in one step (see the module's doc)."""
    general = type_.dialect_impl(dialect).bind_processor(dialect)
    if general is None:
        return None
    if _utc_datetime_text(type_, dialect):
        return functools.partial(_bind_utc, general)
    if isinstance(type_, JSON) and getattr(dialect, "_json_serializer", None) is serialize:
        return functools.partial(_bind_json, general)
    return general


def result_processor(type_: TypeEngine[Any], dialect: Dialect) -> Processor:
    """SQLAlchemy's result processor of `type_` on `dialect`, or the same in one step."""
    if _utc_datetime_text(type_, dialect):
        return _utc_from_text
    return type_.dialect_impl(dialect).result_processor(dialect, None)


def _utc_datetime_text(type_: TypeEngine[Any], dialect: Dialect) -> bool:
    """A `UtcDateTime` stored as SQLite's DATETIME in its default format (ISO 8601 with a space, microseconds)."""
    if not isinstance(type_, UtcDateTime):
        return False
    impl = type_.dialect_impl(dialect)
    stored = getattr(impl, "impl", None)
    return (
        type(stored) is DATETIME
        and stored._storage_format == DATETIME._storage_format
        and stored._reg is None
    )  # fmt: skip


def _bind_utc(general: Callable[[Any], Any], value: Any) -> Any:
    """As `general` (UtcDateTime, then DATETIME's format) for a plain datetime or None, in one step. A value
    in UTC (the gateway's clock, datetime.now(UTC)) is its own text less its offset, "+00:00": one call where
    the conversion to naive UTC took two more (1.2 us of ~2.2; bench/README.md, helper writer6)."""
    if type(value) is not datetime:
        return None if value is None else general(value)
    if value.tzinfo is UTC:
        return value.isoformat(" ", "microseconds")[:-6]
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(" ", "microseconds")


def _bind_json(general: Callable[[Any], Any], value: Any) -> Any:
    """JSON text already `Encoded` is bound as is (what the engine's serializer returns for it), as a plain
    str: pysqlite binds an exact str directly but looks a subclass up among its adapters first (0.4 us)."""
    return str(value) if type(value) is Encoded else general(value)


def _utc_from_text(value: str | None) -> datetime | None:
    """As SQLite's DATETIME result processor (`fromisoformat`) and then UtcDateTime's (the UTC zone). The text
    with UTC's offset appended is parsed into the same value in one call: `replace(tzinfo=...)` parses its
    keyword arguments, 1.3 of the 1.5 us the two calls took (helper writer6). Text that already carries an
    offset (never written by this store) is read as before, its offset replaced."""
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value + "+00:00")
    except ValueError:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
