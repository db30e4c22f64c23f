"""Replica leases: a lease row per replica, and each pod record's owner and fencing token.

docs/decisions/0021-replica-leases.md. Nothing writes these yet; a single gateway never needs them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replicas",
        sa.Column("id", sa.String(253), nullable=False),
        sa.Column("listen", sa.String(253), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("renewed_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_replicas"),
    )
    op.create_index("ix_replicas_expires_at", "replicas", ["expires_at"])
    with op.batch_alter_table("pod_records") as batch:
        batch.add_column(sa.Column("owner", sa.String(253), nullable=True))
        batch.add_column(sa.Column("fence", sa.BigInteger(), nullable=False, server_default="0"))
        batch.create_index("ix_pod_records_owner", ["owner"])


def downgrade() -> None:
    with op.batch_alter_table("pod_records") as batch:
        batch.drop_index("ix_pod_records_owner")
        batch.drop_column("fence")
        batch.drop_column("owner")
    op.drop_index("ix_replicas_expires_at", table_name="replicas")
    op.drop_table("replicas")
