"""phone verification: method, hashed one-time code, verification SMS

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("user_phones", schema=None) as batch_op:
        # Rows registered before this revision were verified by reply, if at all.
        batch_op.add_column(
            sa.Column("method", sa.String(length=8), nullable=False, server_default="reply")
        )
        batch_op.add_column(sa.Column("code_hash", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("code_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("code_attempts", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("verification_message_id", sa.String(length=36), nullable=True)
        )
        batch_op.add_column(
            sa.Column("verification_sent_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("user_phones", schema=None) as batch_op:
        batch_op.drop_column("verification_sent_at")
        batch_op.drop_column("verification_message_id")
        batch_op.drop_column("code_attempts")
        batch_op.drop_column("code_hash")
        batch_op.drop_column("code_expires_at")
        batch_op.drop_column("method")
