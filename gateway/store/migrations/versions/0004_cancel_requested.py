"""A cancel recorded on its pod record, so it outlives the replica it was sent to (or a restart).

docs/decisions/0021-replica-leases.md: a CancelPod is stored before it is acted on; the replica running the
request acts on it when told, and a replica taking the request over (or a restarted gateway) at once.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pod_records") as batch:
        batch.add_column(sa.Column("cancel_requested_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("cancel_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pod_records") as batch:
        batch.drop_column("cancel_reason")
        batch.drop_column("cancel_requested_at")
