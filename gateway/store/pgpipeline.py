"""PostgreSQL: a batch's one-statement writes sent as a pipeline, one round trip for each statement's writes.

The group writer (pgwriter.py) ran a batch's operations one after another through SQLAlchemy, each
statement a round trip in turn and ~150 µs of the gateway's CPU (SQLAlchemy's execution, the greenlet
hand-over, the result's processing). As one asyncpg `fetchmany` (the Bind/Execute of every argument set sent
at once, one Sync), `bench/pg_batch.py`: a batch of 100 journal appends 26.8 -> 6.6 ms, 153 -> 28 µs of CPU a
write, the store's own work included (bench/README.md, "The PostgreSQL writer's pipelines (helper pglanes,
Dec 5, fourth session)"). So a batch no longer costs a round trip a write, and a lane may take large batches
without making each write wait for them.

What may go in a pipeline is a `OneRow` operation: one statement with its parameters, whose value is its
first row (or None) and whose row, if any, names its `key` in `request_id` (each store write of a pod is one
such statement: statements.update_record, claim_seqs, journalled). `plan` orders a batch into steps by rank:
a key's first write in the batch has rank 1, its second rank 2, and so on (writes of one key stay in order;
writes of different keys touch different rows, and the writer's contract lets it commit them apart); the
`OneRow` writes of a rank grouped by statement, a pipeline each; any other write of a known key (`Keyed`: a
pod record's creation) a step of its own in its rank; an operation of no key a barrier that everything
before it precedes and everything after it follows. Every operation still runs in the batch's one
transaction; a failure anywhere aborts it, and the writer runs the batch again the old way, with a SAVEPOINT
per operation, so that a failing write fails alone and gets SQLAlchemy's own error.

The statement is compiled by SQLAlchemy for the engine's dialect, once per statement object (the store's hot
statements are built once, statements.py), and its parameters and results processed by the dialect's own
processors (JSON text bound as is, UTC datetimes), as SQLAlchemy's execution does.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import CompoundSelect, Connection, Dialect, Insert, Select, Update, func, select
from sqlalchemy.sql.compiler import SQLCompiler

Statement = Select[Any] | CompoundSelect[Any] | Update | Insert
T = TypeVar("T")
MAX_PREPARED = 256  # statements kept compiled; the store has a few dozen shapes


@dataclass(frozen=True, eq=False)
class OneRow:
    """A write of one statement: its value is the first row as a mapping, None if it matched none. The row
    (if any) has a `request_id` column equal to `key`; the statement returns at most one row. With a
    `channel`, the row's `notice` column (if not null) is a notification for the replicas listening there
    (statements.journalled's `notice`): the group writer sends it with every other of its batch, a few per
    batch (`notices`), not one a write; run by itself, the write sends it at once."""

    statement: Statement
    params: Mapping[str, Any]
    key: str
    channel: str = ""

    def __call__(self, conn: Connection) -> Mapping[Any, Any] | None:
        row = conn.execute(self.statement, dict(self.params)).first()
        if row is None:
            return None
        if self.channel and (notice := row._mapping.get("notice")):
            conn.execute(select(func.pg_notify(self.channel, notice)))
        return row._mapping


NOTIFY_BYTES = 7999  # PostgreSQL refuses a payload of 8,000 bytes or more
NOTIFY = "SELECT pg_notify($1, $2)"


def notices(lines: Sequence[str], limit: int = NOTIFY_BYTES) -> list[str]:
    """The payloads that carry `lines` (notifications of one channel, none containing a newline, each within
    `limit` bytes), in order, as few as fit: lines joined by newlines, each payload within `limit` bytes."""
    payloads: list[str] = []
    current: list[str] = []
    size = 0
    for line in lines:
        length = len(line) if line.isascii() else len(line.encode())
        if current and size + 1 + length > limit:
            payloads.append("\n".join(current))
            current, size = [], 0
        size += length + (1 if current else 0)
        current.append(line)
    if current:
        payloads.append("\n".join(current))
    return payloads


@dataclass(frozen=True)
class Single:
    """Step: run operation `index` by itself (SQLAlchemy, in order)."""

    index: int


@dataclass(frozen=True)
class Many:
    """Step: run the `OneRow` operations at `indices`, all of `statement` and of distinct keys, as one pipeline."""

    statement: Statement
    indices: tuple[int, ...]


Step = Single | Many


@dataclass(frozen=True, eq=False)
class Keyed(Generic[T]):
    """Any other write, with the key (request) it is about: writes of other keys may run before or after it."""

    operation: Callable[[Connection], T]
    key: str

    def __call__(self, conn: Connection) -> T:
        return self.operation(conn)


def plan(operations: Sequence[object]) -> list[Step]:
    """The steps that run `operations` with the same effects as in order. Each write of a key (a `OneRow` or
    `Keyed`) has the rank after its key's previous write; an operation of no known key ranks after everything
    before it, and everything after it after it. Rank by rank: its `Keyed` writes one by one, its `OneRow`
    writes grouped by statement (a pipeline each)."""
    ranked: list[tuple[int, int]] = []  # (rank, index)
    ranks: dict[str, int] = {}
    floor = top = 0
    for index, operation in enumerate(operations):
        key = operation.key if isinstance(operation, (OneRow, Keyed)) else None
        if key is None:
            rank = floor = top + 1
        else:
            rank = ranks[key] = max(ranks.get(key, 0), floor) + 1
        top = max(top, rank)
        ranked.append((rank, index))
    steps: list[Step] = []
    groups: dict[Statement, list[int]] = {}
    current = 0
    for rank, index in sorted(ranked):
        if rank != current:
            steps += [Many(statement, tuple(indices)) for statement, indices in groups.items()]
            groups.clear()
            current = rank
        operation = operations[index]
        if isinstance(operation, OneRow):
            groups.setdefault(operation.statement, []).append(index)
        else:
            steps.append(Single(index))
    steps += [Many(statement, tuple(indices)) for statement, indices in groups.items()]
    return steps


class Unaligned(Exception):
    """A pipeline's rows could not be matched to its writes (a statement broke OneRow's contract)."""


@dataclass(frozen=True)
class PipelineStatement:
    """A statement compiled for asyncpg: its SQL, its parameters in order with their processors, and its
    result columns' names and processors."""

    compiled: SQLCompiler
    sql: str
    names: tuple[str, ...]
    binds: tuple[Callable[[Any], Any] | None, ...]
    columns: tuple[str, ...]
    results: tuple[Callable[[Any], Any] | None, ...]

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        values = self.compiled.construct_params(dict(params))
        return [
            value if process is None else process(value)
            for value, process in zip((values[name] for name in self.names), self.binds, strict=True)
        ]

    def mapping(self, record: Sequence[Any]) -> dict[str, Any]:
        return {
            name: value if process is None else process(value)
            for name, value, process in zip(self.columns, record, self.results, strict=True)
        }


_prepared: weakref.WeakKeyDictionary[Dialect, dict[Statement, PipelineStatement]] = weakref.WeakKeyDictionary()


def prepared(statement: Statement, dialect: Dialect) -> PipelineStatement:
    """`statement` compiled for `dialect` (kept with the dialect, whose JSON serializer its processors hold:
    the store's statements are built once)."""
    kept = _prepared.setdefault(dialect, {})
    found = kept.get(statement)
    if found is not None:
        return found
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    if compiled.positiontup is None or compiled.post_compile_params or compiled.literal_execute_params:
        raise ValueError("a pipelined statement takes positional parameters, none expanded at execution")
    names = tuple(compiled.positiontup)
    processors = compiled._bind_processors  # what SQLAlchemy's execution context applies
    columns = compiled._result_columns
    found = PipelineStatement(
        compiled=compiled,
        sql=compiled.string,
        names=names,
        binds=tuple(processors.get(name) for name in names),  # type: ignore[misc]
        columns=tuple(column.keyname for column in columns),
        results=tuple(column.type._cached_result_processor(dialect, None) for column in columns),
    )
    if len(kept) >= MAX_PREPARED:
        kept.clear()
    kept[statement] = found
    return found


def aligned(operations: Sequence[OneRow], prepared: PipelineStatement, records: Sequence[Sequence[Any]]) -> list[Any]:
    """Each operation's value from the rows of its pipeline (a flat list: a write that matched no row has
    none), matched by `request_id`; Unaligned if they do not match one to one."""
    by_key: dict[str, dict[str, Any]] = {}
    for record in records:
        row = prepared.mapping(record)
        key = row.get("request_id")
        if not isinstance(key, str) or key in by_key:
            raise Unaligned(f"a row without a request_id, or two for one: {key!r}")
        by_key[key] = row
    values = [by_key.pop(operation.key, None) for operation in operations]
    if by_key:
        raise Unaligned(f"rows of requests no write of the pipeline names: {sorted(by_key)[:3]}")
    return values


def lost(raw: Any, error: Exception) -> bool:
    """`raw`'s connection is gone (closed, cut, the backend terminated) after `error` from a statement on it."""
    if raw.is_closed() or isinstance(error, (OSError, asyncpg.ConnectionDoesNotExistError)):
        return True
    state = getattr(error, "sqlstate", None) or ""
    return isinstance(error, asyncpg.PostgresError) and (state.startswith("08") or state.startswith("57P0"))
