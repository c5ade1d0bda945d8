"""Repair PostgreSQL databases migrated by 0002 before its two PostgreSQL fixes.

Two fixes to 0002 landed after it was first written: the tickets id sequence is moved
past the handoffs copied with their ids (else the first new ticket fails on the primary
key), and the audit log's trigger function raises ``restrict_violation`` (an integrity
error, as on SQLite) with a statement trigger that refuses TRUNCATE. A database upgraded
by the first 0002 has neither; this brings it to what 0002 creates now. On a database
created by the fixed 0002 it changes nothing, and on SQLite it does nothing.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Migrations are snapshots: 0002's statements are repeated here, not imported.
_REPAIRS = (
    "CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger AS $$ "
    "BEGIN RAISE EXCEPTION 'audit_events is append-only' "
    "USING ERRCODE = 'restrict_violation'; END; $$ LANGUAGE plpgsql",
    "DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events",
    "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()",
    # Never moves the sequence back: the next id is past both the rows and the sequence.
    "SELECT setval(pg_get_serial_sequence('tickets', 'id'), "
    "GREATEST(COALESCE((SELECT MAX(id) FROM tickets), 0) + 1, "
    "nextval(pg_get_serial_sequence('tickets', 'id'))), false)",
)


def upgrade() -> None:
    """Re-apply 0002's PostgreSQL fixes (idempotent)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in _REPAIRS:
        op.execute(statement)


def downgrade() -> None:
    """Nothing to undo: the repaired state is what 0002 itself creates."""
