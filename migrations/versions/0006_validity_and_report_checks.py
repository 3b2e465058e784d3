"""message validity, missing-report checks, batch tags, provider health and call budget

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("request_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("job_tag", sa.String(length=20), nullable=True))
        batch_op.create_index(batch_op.f("ix_messages_job_tag"), ["job_tag"], unique=False)

    with op.batch_alter_table("number_states", schema=None) as batch_op:
        batch_op.add_column(sa.Column("opted_in_at", sa.DateTime(timezone=True), nullable=True))

    op.create_table(
        "provider_state",
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("circuit", sa.String(length=16), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=255), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("provider", name=op.f("pk_provider_state")),
    )
    op.create_table(
        "provider_call_windows",
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("provider", "window_start", name=op.f("pk_provider_call_windows")),
    )


def downgrade() -> None:
    op.drop_table("provider_call_windows")
    op.drop_table("provider_state")
    with op.batch_alter_table("number_states", schema=None) as batch_op:
        batch_op.drop_column("opted_in_at")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_messages_job_tag"))
        batch_op.drop_column("job_tag")
        batch_op.drop_column("request_id")
        batch_op.drop_column("checked_at")
        batch_op.drop_column("valid_until")
