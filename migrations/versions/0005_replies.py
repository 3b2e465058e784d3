"""incoming SMS, booking requests answerable by reply, when a send became uncertain

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("uncertain_since", sa.DateTime(timezone=True), nullable=True))

    op.create_table(
        "incoming_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("provider_id", sa.String(length=80), nullable=False),
        sa.Column("sender", sa.String(length=32), nullable=False),
        sa.Column("text", sa.String(length=1600), nullable=False),
        sa.Column("received_at", sa.String(length=64), nullable=True),
        sa.Column("keyword", sa.String(length=16), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("booking_request_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incoming_messages")),
        sa.UniqueConstraint(
            "provider", "provider_id", name=op.f("uq_incoming_messages_provider_provider_id")
        ),
    )
    with op.batch_alter_table("incoming_messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_incoming_messages_sender"), ["sender"], unique=False)

    op.create_table(
        "booking_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("booking_id", sa.String(length=128), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("user_ref", sa.String(length=128), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("code", sa.String(length=4), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("message_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["api_clients.id"],
            name=op.f("fk_booking_requests_client_id_api_clients"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booking_requests")),
        sa.UniqueConstraint(
            "client_id", "booking_id", name=op.f("uq_booking_requests_client_id_booking_id")
        ),
    )
    with op.batch_alter_table("booking_requests", schema=None) as batch_op:
        batch_op.create_index(
            "ix_booking_requests_number_status", ["number", "status"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("uncertain_since")
    op.drop_table("booking_requests")
    op.drop_table("incoming_messages")
