"""Initial schema: clusters, pod records, the event journal and the audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "clusters",
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("cordoned", sa.Boolean(), nullable=False),
        sa.Column("cordon_reason", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_clusters"),
    )
    op.create_table(
        "pod_records",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(253), nullable=False),
        sa.Column("phase", sa.String(32), nullable=False),
        sa.Column("cluster", sa.String(253), nullable=True),
        sa.Column("region", sa.String(64), nullable=True),
        sa.Column("namespace", sa.String(63), nullable=True),
        sa.Column("name", sa.String(253), nullable=True),
        sa.Column("dag_id", sa.String(250), nullable=True),
        sa.Column("tenant", sa.String(253), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("decision", sa.JSON(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pod_records"),
        sa.UniqueConstraint("request_id", name="uq_pod_records_request_id"),
        sa.UniqueConstraint("cluster", "namespace", "name", name="uq_pod_records_cluster_namespace_name"),
    )
    op.create_index("ix_pod_records_finished_at", "pod_records", ["finished_at"])
    op.create_index("ix_pod_records_dag_id", "pod_records", ["dag_id"])
    op.create_index("ix_pod_records_tenant", "pod_records", ["tenant"])
    op.create_table(
        "journal_events",
        sa.Column("record_id", SERIAL, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("time", sa.DateTime(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["record_id"], ["pod_records.id"], name="fk_journal_events_record_id_pod_records", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("record_id", "seq", name="pk_journal_events"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("time", sa.DateTime(), nullable=False),
        sa.Column("action", sa.String(128), nullable=False),
        sa.Column("actor", sa.String(253), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_action", "audit_log", ["action"])
    op.create_index("ix_audit_log_actor", "audit_log", ["actor"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("journal_events")
    op.drop_table("pod_records")
    op.drop_table("clusters")
