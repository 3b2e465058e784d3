"""delivery reports keep their tag and a key of their receiver (lost answers, batch order)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("delivery_reports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tag", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("receiver_key", sa.String(length=32), nullable=True))
        batch_op.create_index("ix_delivery_reports_tag", ["tag"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("delivery_reports", schema=None) as batch_op:
        batch_op.drop_index("ix_delivery_reports_tag")
        batch_op.drop_column("receiver_key")
        batch_op.drop_column("tag")
