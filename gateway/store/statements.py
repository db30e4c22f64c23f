"""The hot statements of the pod path, built once with bound parameters and reused.

A statement built per call (`update(...).where(...).values(phase=...)`) costs SQLAlchemy its construction,
a fresh cache key (walking every clause, and the type of every literal value) and the lookup of its
compiled form: about a third of the store's CPU per write in bench/store.py (bench/README.md, issue 16).
A statement object built once memoizes its cache key, so executing it with a parameter dict goes straight
to the compiled form. Shapes are few (which columns a write sets, fenced or not, with events or not), so
each is built at its first use and kept.

Parameter names carry a `p_` prefix: a bound parameter may not share its name with a column it sets.

A record is read and returned as `RECORD_COLUMNS`: its JSON columns as their text, not decoded by the
driver or SQLAlchemy; rows.DecodeCache decodes only a text it has not seen (an unchanged request, placement
or result read back costs a digest).
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CompoundSelect,
    Delete,
    Insert,
    Select,
    String,
    Text,
    Update,
    bindparam,
    cast,
    column,
    exists,
    false,
    func,
    insert,
    literal_column,
    null,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gateway.store.schema import UtcDateTime, audit_log, journal_events, pod_records

p = pod_records.c

RECORD_COLUMNS: tuple[Any, ...] = tuple(
    cast(column, Text).label(column.name) if isinstance(column.type, JSON) else column for column in pod_records.c
)


def _param(column: str) -> Any:
    return bindparam(f"p_{column}", type_=pod_records.c[column].type)


def params(values: dict[str, Any]) -> dict[str, Any]:
    """The parameter dict of `values` (column -> value) for the statements below."""
    return {f"p_{column}": value for column, value in values.items()}


@functools.cache
def update_record(columns: frozenset[str], *, fenced: bool, events: bool) -> Update:
    """Sets `columns` on the record of `p_request_id` (when `fenced`, only while it is owned by `p_owner`
    at fence `p_fence`), counting `p_events` more journal events if `events`; returns the whole row."""
    where = [p.request_id == _param("request_id")]
    if fenced:
        where += [p.owner == _param("owner"), p.fence == _param("fence")]
    values: dict[str, Any] = {column: _param(column) for column in sorted(columns)}
    if events:
        values["last_seq"] = p.last_seq + bindparam("p_events", type_=p.last_seq.type)
    return update(pod_records).where(*where).values(values).returning(*RECORD_COLUMNS)


@functools.cache
def claim_seqs(*, fenced: bool) -> Update:
    """Counts `p_events` more journal events on the record (fenced as `update_record`)."""
    where = [p.request_id == _param("request_id")]
    if fenced:
        where += [p.owner == _param("owner"), p.fence == _param("fence")]
    return (
        update(pod_records)
        .where(*where)
        .values(last_seq=p.last_seq + bindparam("p_events", type_=p.last_seq.type))
        .returning(p.id, p.request_id, p.last_seq)
    )


@functools.cache
def journalled(change: Update, *, notify: bool, notice: bool = False) -> Select[Any]:
    """PostgreSQL: `change` (an UPDATE of one record returning at least its id, request_id and last_seq, as
    counted after `p_events` more events) with the journal rows of those events (`p_journal`: one JSON
    array, rows.event_array) inserted in the same statement, a data-modifying CTE; with `notify`, the
    replicas' live feed is told on `p_channel` too (what replicas.notify sends), or with `notice` handed the
    notification's text as the column `notice` instead, for the group writer to send with the rest of its
    batch's (pgpipeline.notices). One round trip instead of two or three; the statement succeeds or fails
    whole. Returns `change`'s row, none if it matched none."""
    record = change.cte("changed")
    journal = _journal_of(record)
    returned: list[Any] = list(record.c)
    if notify or notice:  # "<last_seq> <request_id>", then " <p_journal>" when it fits (`p_feed`: see replicas.feed)
        payload = cast(record.c.last_seq, Text).concat(literal_column("' '")).concat(record.c.request_id)
        payload = payload.concat(bindparam("p_feed", type_=Text))
        if notice:
            returned.append(payload.label("notice"))
        else:
            returned.append(func.pg_notify(bindparam("p_channel", type_=Text), payload).label("notified"))
    return select(*returned).add_cte(journal.cte("journal"))


@functools.cache
def created(
    columns: frozenset[str], *, events: bool, notify: bool, audit: bool, notice: bool = False
) -> CompoundSelect[Any]:
    """PostgreSQL: the record of `columns` (their `p_` parameters) inserted unless one of its request_id is
    there, with (if `events`) its journal rows (`p_journal`, `p_events` as `journalled`), the replicas told on
    `p_channel` (if `notify`: "<last_seq> <request_id>"; with `notice` that text returned as the column
    `notice` instead, as `journalled`), and (if `audit`) its audit row (`p_audit_*`): one statement, one round
    trip instead of four or five (the group writer pipelines it, pgpipeline.py). Returns the record's row and
    `created`: true, inserted now; false, it was there. No row when another transaction inserted it meanwhile
    (the INSERT waited for it and did nothing; this statement's snapshot misses it)."""
    new = (
        pg_insert(pod_records)
        .values({column: _param(column) for column in sorted(columns)})
        .on_conflict_do_nothing(index_elements=[p.request_id])
        .returning(*RECORD_COLUMNS)
        .cte("created")
    )
    told = events and notice
    payload = cast(new.c.last_seq, Text).concat(literal_column("' '")).concat(new.c.request_id)
    answer = select(*new.c, true().label("created"), *([payload.label("notice")] if told else [])).select_from(new)
    if events:
        answer = answer.add_cte(_journal_of(new).cte("journal"))
        if notify and not notice:
            sent = select(func.pg_notify(bindparam("p_channel", type_=Text), payload)).select_from(new).cte("told")
            answer = answer.add_cte(sent).where(exists(sent.select()))
    if audit:
        entry = select(*(bindparam(f"p_audit_{c.name}", type_=c.type) for c in audit_log.c if c.name != "id"))
        row = insert(audit_log).from_select([c.name for c in audit_log.c if c.name != "id"], entry.select_from(new))
        answer = answer.add_cte(row.cte("audited"))
    there = select(*RECORD_COLUMNS, false().label("created"), *([null().label("notice")] if told else []))
    there = there.where(p.request_id == _param("request_id"))
    return union_all(answer, there)


def _journal_of(record: Any) -> Insert:
    """The journal rows of `p_journal` (rows.event_array) for `record` (a CTE returning its id and last_seq, as
    counted after `p_events` more events)."""
    rows = (
        func.json_to_recordset(bindparam("p_journal", type_=JSON))
        .table_valued(
            column("i", BigInteger), column("kind", String), column("time", UtcDateTime), column("payload", JSON)
        )
        .render_derived(name="event", with_types=True)
    )
    seq = record.c.last_seq - bindparam("p_events", type_=p.last_seq.type) + rows.c.i
    return insert(journal_events).from_select(
        ["record_id", "seq", "kind", "time", "payload"],
        select(record.c.id, seq, rows.c.kind, rows.c.time, rows.c.payload).select_from(record).join(rows, true()),
    )


RECORD_BY_REQUEST: Select[Any] = select(*RECORD_COLUMNS).where(p.request_id == _param("request_id"))
INSERT_RECORD: Insert = insert(pod_records).returning(*RECORD_COLUMNS)
# SQLite: the record inserted unless one of its request_id is there (then no row; another unique key's conflict,
# a pod name, still raises). Its ON CONFLICT target is checked before the other unique keys (SQLite's UPSERT).
INSERT_NEW_RECORD: Insert = (
    sqlite_insert(pod_records).on_conflict_do_nothing(index_elements=[p.request_id]).returning(*RECORD_COLUMNS)
)
INSERT_EVENTS: Insert = insert(journal_events)
INSERT_AUDIT: Insert = insert(audit_log)
NOTIFY: Select[Any] = select(func.pg_notify(bindparam("p_channel"), bindparam("p_payload")))

_record_id = select(p.id).where(p.request_id == _param("request_id")).scalar_subquery()
_j = journal_events.c
READ_EVENTS: Select[Any] = (
    select(journal_events)
    .where(_j.record_id == _record_id, _j.seq > bindparam("p_after", type_=_j.seq.type))
    .order_by(_j.seq)
    .limit(bindparam("p_limit"))
)
DELETE_EVENTS: Delete = journal_events.delete().where(_j.record_id == _record_id)
