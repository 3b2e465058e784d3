"""credits ledger, client settings, webhook outbox

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("api_clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("balance", sa.Numeric(precision=14, scale=4), nullable=True))
        batch_op.add_column(
            sa.Column("low_credit_alerted", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("rate_limit_per_second", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("webhook_secret", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    # Existing clients keep what they were granted as their balance.
    op.execute("UPDATE api_clients SET balance = quota WHERE quota IS NOT NULL")

    op.create_table(
        "credit_ledger",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("delta", sa.Numeric(precision=14, scale=4), nullable=False),
        sa.Column("balance_after", sa.Numeric(precision=14, scale=4), nullable=True),
        sa.Column("message_id", sa.String(length=36), nullable=True),
        sa.Column("reason", sa.String(length=255), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["api_clients.id"], name=op.f("fk_credit_ledger_client_id_api_clients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_ledger")),
    )
    with op.batch_alter_table("credit_ledger", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_credit_ledger_client_id"), ["client_id"], unique=False)
        batch_op.create_index("uq_credit_ledger_message_kind", ["message_id", "kind"], unique=True)
    op.execute(
        "INSERT INTO credit_ledger (client_id, kind, delta, balance_after, reason, created_at) "
        "SELECT id, 'grant', quota, quota, 'opening balance', CURRENT_TIMESTAMP "
        "FROM api_clients WHERE quota IS NOT NULL"
    )

    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["api_clients.id"],
            name=op.f("fk_webhook_deliveries_client_id_api_clients"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_deliveries_client_id"), ["client_id"], unique=False
        )
        batch_op.create_index(
            "ix_webhook_deliveries_status_due", ["status", "next_attempt_at"], unique=False
        )


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("credit_ledger")
    with op.batch_alter_table("api_clients", schema=None) as batch_op:
        batch_op.drop_column("updated_at")
        batch_op.drop_column("webhook_secret")
        batch_op.drop_column("rate_limit_per_second")
        batch_op.drop_column("low_credit_alerted")
        batch_op.drop_column("balance")
