"""The store's tables (SQLAlchemy Core), in portable types only so SQLite and Postgres share them.

The migrations under `migrations/versions/` create exactly this schema; a test compares the two.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def naive_utc(value: datetime) -> datetime:
    """As stored: UTC without a zone (a naive value is taken as UTC already)."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


class UtcDateTime(TypeDecorator[datetime]):
    """Stores UTC without a zone (SQLite has none) and hands back aware UTC datetimes."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else naive_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


# An integer key that SQLite also auto-increments (it only does so for INTEGER PRIMARY KEY).
Serial = BigInteger().with_variant(Integer(), "sqlite")

clusters = Table(
    "clusters",
    metadata,
    Column("name", String(253), primary_key=True),
    Column("spec", JSON, nullable=False),
    Column("cordoned", Boolean, nullable=False, default=False),
    Column("cordon_reason", Text, nullable=False, default=""),
    Column("updated_at", UtcDateTime, nullable=False),
)

pod_records = Table(
    "pod_records",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("request_id", String(253), nullable=False),
    Column("phase", String(32), nullable=False),
    # NULL until placed: SQL treats NULLs as distinct, so unplaced records never collide.
    Column("cluster", String(253), nullable=True),
    Column("region", String(64), nullable=True),
    Column("namespace", String(63), nullable=True),
    Column("name", String(253), nullable=True),
    Column("dag_id", String(250), nullable=True),
    Column("tenant", String(253), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("request", JSON, nullable=False),
    Column("decision", JSON, nullable=True),
    Column("result", JSON, nullable=True),
    Column("last_seq", BigInteger, nullable=False, default=0),
    # Set while no client that ran the pod is attached: the disconnect policy cancels it then (survives restarts).
    Column("reattach_deadline", UtcDateTime, nullable=True),
    # The replica following the request and its fencing token (docs/decisions/0021-replica-leases.md).
    Column("owner", String(253), nullable=True),
    Column("fence", BigInteger, nullable=False, default=0, server_default="0"),
    # A cancel asked for (by any replica), acted on by whichever replica runs the request, now or later.
    Column("cancel_requested_at", UtcDateTime, nullable=True),
    Column("cancel_reason", Text, nullable=True),
    UniqueConstraint("request_id"),
    UniqueConstraint("cluster", "namespace", "name"),
    Index(None, "finished_at"),
    Index(None, "dag_id"),
    Index(None, "tenant"),
    Index(None, "owner"),
)

# One lease per gateway replica, renewed in one write; `expires_at` is on the database's clock.
replicas = Table(
    "replicas",
    metadata,
    Column("id", String(253), primary_key=True),
    Column("listen", String(253), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("renewed_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Index(None, "expires_at"),
)

journal_events = Table(
    "journal_events",
    metadata,
    Column("record_id", Serial, ForeignKey("pod_records.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("time", UtcDateTime, nullable=False),
    Column("payload", JSON, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("time", UtcDateTime, nullable=False),
    Column("action", String(128), nullable=False),
    Column("actor", String(253), nullable=False),
    Column("record", JSON, nullable=False),
    Index(None, "action"),
    Index(None, "actor"),
)
