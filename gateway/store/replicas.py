"""The replica lease statements of docs/decisions/0021 (PostgreSQL): register, renew, release, claim.

Each is an `Operation` run in one write transaction; "now" is always the database's clock, so replicas
with skewed clocks agree on expiry. The rules themselves are in `gateway.store.lease` (pure).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, DateTime, RowMapping, and_, delete, exists, func, insert, literal_column, or_, select
from sqlalchemy import update as sql_update

from gateway.store import lease, statements
from gateway.store.schema import pod_records, replicas

NOW: Any = literal_column("timezone('UTC', statement_timestamp())", DateTime())
FORGET_AFTER = timedelta(hours=1)  # a dead replica's row is dropped this long after expiry, once it owns nothing
# A NOTIFY payload must be under 8,000 bytes: "<last_seq> <request_id>" takes at most 275 of them.
FEED_BYTES = 7000


def register(conn: Connection, replica: str, listen: str, policy: lease.LeasePolicy) -> None:
    """A fresh lease under a name no earlier incarnation used (the caller makes it unique)."""
    conn.execute(delete(replicas).where(replicas.c.id == replica))
    conn.execute(
        insert(replicas).values(
            id=replica,
            listen=listen,
            started_at=NOW,
            renewed_at=NOW,
            expires_at=NOW + timedelta(seconds=policy.duration),
        )
    )


def renew(conn: Connection, replica: str, policy: lease.LeasePolicy) -> bool:
    """One statement for all the replica's requests; an expired lease is not revived (False)."""
    r = replicas.c
    statement = (
        sql_update(replicas)
        .where(r.id == replica, r.expires_at > NOW)
        .values(renewed_at=NOW, expires_at=NOW + timedelta(seconds=policy.duration))
    )
    return conn.execute(statement).rowcount == 1


def release(conn: Connection, replica: str) -> None:
    """Hand-over (SIGTERM): the lease ends now, so the others claim its requests at their next round."""
    conn.execute(sql_update(replicas).where(replicas.c.id == replica).values(expires_at=NOW))


def _orphan_filter() -> Any:
    """Unfinished records whose owner holds no live lease (or that have no owner, from before 0003)."""
    p, r = pod_records.c, replicas.c
    live_owner = exists().where(r.id == p.owner, r.expires_at > NOW)
    return and_(p.finished_at.is_(None), or_(p.owner.is_(None), ~live_owner))


def claim(conn: Connection, replica: str) -> list[RowMapping]:
    """Takes over this replica's share of the orphaned requests (lease.share), each with its fence raised
    (lease.take_over), rows another claimer holds skipped; returns the claimed rows. Nothing for a claimer
    whose own lease has expired on the database's clock, judged in the claiming statement itself: a claim
    that waited out an outage past its lease would otherwise take its own expired requests under new fences
    while their runners still write under the old ones (the replica checks its local deadline too)."""
    p, r = pod_records.c, replicas.c
    orphans = conn.execute(select(func.count()).select_from(pod_records).where(_orphan_filter())).scalar_one()
    if not orphans:
        _forget_dead(conn)
        return []
    live = conn.execute(select(func.count()).select_from(replicas).where(r.expires_at > NOW)).scalar_one()
    chosen = (
        select(p.id)
        .where(_orphan_filter())
        .order_by(p.id)
        .limit(lease.share(int(orphans), int(live)))
        .with_for_update(skip_locked=True, of=pod_records)
    )
    statement = (
        sql_update(pod_records)
        .where(p.id.in_(chosen.scalar_subquery()), exists().where(r.id == replica, r.expires_at > NOW))
        .values(owner=replica, fence=p.fence + 1)
        .returning(*statements.RECORD_COLUMNS)
    )
    return [row._mapping for row in conn.execute(statement)]


def _forget_dead(conn: Connection) -> None:
    r, p = replicas.c, pod_records.c
    owns = exists().where(p.owner == r.id, p.finished_at.is_(None))
    conn.execute(delete(replicas).where(r.expires_at < NOW - FORGET_AFTER, ~owns))


def feed(array: str) -> str:
    """What a journal NOTIFY carries after "<last_seq> <request_id>": " " and the events it announces (their
    `rows.event_array`), so that the watchers on the other replicas need not read them back from the
    journal; nothing when they would not fit in a payload (the watchers then read them)."""
    return " " + array if len(array) <= FEED_BYTES // 4 or len(array.encode()) <= FEED_BYTES else ""


def notify(conn: Connection, channel: str, request_id: str, last_seq: int) -> None:
    """Wakes the journal followers of every replica (LISTEN on `channel`); delivered at commit."""
    conn.execute(statements.NOTIFY, {"p_channel": channel, "p_payload": f"{last_seq} {request_id}"})
