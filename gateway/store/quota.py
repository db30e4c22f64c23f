"""A tenant's quota checked in the transaction that inserts its new record (docs/decisions/0021).

Counting the tenant's unfinished records and inserting one more must be one step, or two replicas
admitting its last slot within milliseconds both pass. On PostgreSQL the transaction first takes an
advisory lock of the tenant (released at commit or rollback); SQLite has one writer, whose transaction
already excludes every other. The rule itself is the caller's (`TenantAdmission.check`); this module
only reads what it needs, decoding only the records the caller had not read already.
"""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from gateway.domain import PodRecord
from gateway.store import statements
from gateway.store.base import TenantAdmission
from gateway.store.rows import record_from_row
from gateway.store.schema import pod_records

TENANT_LOCK = 0x706F6474  # "podt": the first key of every tenant's advisory lock (the second is its hash)


def admit(conn: Connection, admission: TenantAdmission) -> None:
    """Raises what `admission.check` raises, given the tenant's unfinished records as of now, under its lock."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(TENANT_LOCK, func.hashtext(admission.tenant))))
    c = pod_records.c
    unfinished = select(c.request_id).where(c.tenant == admission.tenant, c.finished_at.is_(None))
    ids = set(conn.execute(unfinished).scalars())
    known = [r for r in admission.known if r.request.request_id in ids]
    unread = ids - {r.request.request_id for r in known}
    read: list[PodRecord] = []
    if unread:  # admitted meanwhile (by another replica, most often): decoded here, without the loop's cache
        rows = conn.execute(select(*statements.RECORD_COLUMNS).where(c.request_id.in_(unread)))
        read = [record_from_row(row._mapping) for row in rows]
    admission.check(known + read)
