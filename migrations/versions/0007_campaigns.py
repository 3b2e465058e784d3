"""campaigns, and what kind of message each is (reminders, campaign messages)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("delimiter", sa.String(length=1), nullable=False),
        sa.Column("columns", _JSON, nullable=False),
        sa.Column("quiet_hours", sa.Boolean(), nullable=False),
        sa.Column("send_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("summary", _JSON, nullable=False),
        sa.Column("credits", sa.Numeric(precision=14, scale=4), nullable=False),
        sa.Column("cost", sa.Numeric(precision=14, scale=4), nullable=False),
        sa.Column("charged", sa.Boolean(), nullable=False),
        sa.Column("credits_held", sa.Numeric(precision=14, scale=4), nullable=False),
        sa.Column("next_row", sa.Integer(), nullable=False),
        sa.Column("messages_created", sa.Integer(), nullable=False),
        sa.Column("pace_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"], ["api_clients.id"], name=op.f("fk_campaigns_client_id_api_clients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.create_index(
            "ix_campaigns_client_created", ["client_id", "created_at"], unique=False
        )
        batch_op.create_index("ix_campaigns_status", ["status"], unique=False)

    op.create_table(
        "campaign_chunks",
        sa.Column("campaign_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_campaign_chunks_campaign_id_campaigns")
        ),
        sa.PrimaryKeyConstraint("campaign_id", "seq", name=op.f("pk_campaign_chunks")),
    )

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="transactional")
        )
        batch_op.add_column(
            sa.Column("quiet_hours", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("campaign_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("reminder_key", sa.String(length=255), nullable=True))
        batch_op.create_index(batch_op.f("ix_messages_campaign_id"), ["campaign_id"], unique=False)
        batch_op.create_index(
            "uq_messages_client_reminder", ["client_id", "reminder_key"], unique=True
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_messages_campaign_id_campaigns"), "campaigns", ["campaign_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_messages_campaign_id_campaigns"), type_="foreignkey"
        )
        batch_op.drop_index("uq_messages_client_reminder")
        batch_op.drop_index(batch_op.f("ix_messages_campaign_id"))
        batch_op.drop_column("reminder_key")
        batch_op.drop_column("campaign_id")
        batch_op.drop_column("quiet_hours")
        batch_op.drop_column("kind")
    op.drop_table("campaign_chunks")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_index("ix_campaigns_status")
        batch_op.drop_index("ix_campaigns_client_created")
    op.drop_table("campaigns")
