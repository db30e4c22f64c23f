"""The disconnect policy's deadline on each pod record, so a restart still cancels a pod nobody reattached to.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pod_records") as batch:
        batch.add_column(sa.Column("reattach_deadline", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pod_records") as batch:
        batch.drop_column("reattach_deadline")
