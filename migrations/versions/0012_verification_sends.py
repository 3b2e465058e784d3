"""verification SMS counted per number key and client (pumping limits); erased numbers

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "verification_sends",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("number_key", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_verification_sends_number_key", "verification_sends", ["number_key"])
    op.create_index("ix_verification_sends_client_id", "verification_sends", ["client_id"])
    op.create_index("ix_verification_sends_created_at", "verification_sends", ["created_at"])
    op.create_table(
        "erased_numbers",
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("number_key", sa.String(length=32), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("client_id", "number_key"),
    )


def downgrade() -> None:
    op.drop_table("erased_numbers")
    op.drop_index("ix_verification_sends_created_at", table_name="verification_sends")
    op.drop_index("ix_verification_sends_client_id", table_name="verification_sends")
    op.drop_index("ix_verification_sends_number_key", table_name="verification_sends")
    op.drop_table("verification_sends")
