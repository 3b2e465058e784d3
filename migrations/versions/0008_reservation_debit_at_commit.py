"""debit a reservation's credits at commit (PostgreSQL)

A ``reserve`` ledger row written without ``balance_after`` is debited from its
client's balance by a deferred constraint trigger, when the transaction
commits: the client's row is then locked only while the commit runs on the
server, not while the API process works towards its COMMIT. A balance that
can no longer cover it fails the commit with SQLSTATE ``P0402`` (answered 402).

SQLite has one writer at a time: it keeps debiting in the transaction.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FUNCTION = """
CREATE OR REPLACE FUNCTION smsgw_debit_reservation() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    remaining numeric;
BEGIN
    UPDATE api_clients SET balance = balance + NEW.delta
     WHERE id = NEW.client_id AND balance IS NOT NULL AND balance + NEW.delta >= 0
    RETURNING balance INTO remaining;
    IF FOUND THEN
        UPDATE credit_ledger SET balance_after = remaining WHERE id = NEW.id;
    ELSIF EXISTS (SELECT 1 FROM api_clients WHERE id = NEW.client_id AND balance IS NOT NULL)
    THEN
        RAISE EXCEPTION 'not enough credits left for a reservation'
            USING ERRCODE = 'P0402';
    END IF;
    -- Otherwise the client became unlimited meanwhile: nothing to take.
    RETURN NULL;
END
$$
"""

_TRIGGER = """
CREATE CONSTRAINT TRIGGER credit_ledger_debit_at_commit
AFTER INSERT ON credit_ledger
DEFERRABLE INITIALLY DEFERRED
FOR EACH ROW
WHEN (NEW.kind = 'reserve' AND NEW.balance_after IS NULL)
EXECUTE FUNCTION smsgw_debit_reservation()
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_FUNCTION)
    op.execute(_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS credit_ledger_debit_at_commit ON credit_ledger")
    op.execute("DROP FUNCTION IF EXISTS smsgw_debit_reservation()")
