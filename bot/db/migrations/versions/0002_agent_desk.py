"""Agent desk: tickets (replacing handoffs), agents, sessions, attachments, notes, audit lock.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN_WHERE = "status IN ('queued', 'assigned')"


def _audit_lock_sql(dialect: str) -> list[str]:
    if dialect == "sqlite":
        return [
            "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
            "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
            "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
            "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
        ]
    if dialect == "postgresql":
        return [
            # restrict_violation (SQLSTATE 23001), an integrity error as on SQLite, so
            # both backends raise sqlalchemy.exc.IntegrityError.
            "CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'audit_events is append-only' "
            "USING ERRCODE = 'restrict_violation'; END; $$ LANGUAGE plpgsql",
            "CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()",
            # Row triggers do not fire on TRUNCATE, which would empty the log at once.
            "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()",
        ]
    return []


def _resync_id_sequence(dialect: str, table: str) -> None:
    """After rows were copied with their ids, move PostgreSQL's id sequence past them.

    Without it the next insert takes id 1 from the untouched sequence and fails on the
    primary key. SQLite picks max(id) + 1 by itself.
    """
    if dialect == "postgresql":
        op.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
            f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
        )


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("totp_secret", sa.String(length=64), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
        sa.UniqueConstraint("email", name=op.f("uq_agents_email")),
    )
    op.create_table(
        "agent_teams",
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_agent_teams_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_agent_teams_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("agent_id", "team_id", name=op.f("pk_agent_teams")),
    )
    op.create_table(
        "agent_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("second_factor_pending", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_agent_sessions_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_sessions")),
    )
    op.create_index(
        op.f("ix_agent_sessions_agent_id"), "agent_sessions", ["agent_id"], unique=False
    )
    op.create_table(
        "login_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_attempts")),
    )
    op.create_index(op.f("ix_login_attempts_key"), "login_attempts", ["key"], unique=False)
    op.create_index(op.f("ix_login_attempts_at"), "login_attempts", ["at"], unique=False)

    # Plain ADD COLUMN, never a batch "move and copy": on SQLite a rebuilt parent table is
    # dropped, and with foreign keys on that cascades (it deleted every message).
    op.add_column("teams", sa.Column("business_hours", sa.JSON(), nullable=True))
    op.add_column(
        "conversations",
        sa.Column("rasa_paused", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "conversations",
        sa.Column("language", sa.String(length=8), nullable=False, server_default="en"),
    )
    op.add_column(
        "messages", sa.Column("private", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    # No foreign key: SQLite can add one only by rebuilding the table, and agents are
    # never deleted (they are deactivated), so the id always resolves.
    op.add_column("messages", sa.Column("agent_id", sa.Integer(), nullable=True))
    op.add_column("audit_events", sa.Column("ticket_id", sa.Integer(), nullable=True))
    op.create_index(op.f("ix_audit_events_ticket_id"), "audit_events", ["ticket_id"], unique=False)

    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason_code", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("assignee_id", sa.Integer(), nullable=True),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("identity_verified", sa.Boolean(), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("resolution_note", sa.Text(), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_agent_reply_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_tickets_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_tickets_team_id_teams"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["assignee_id"],
            ["agents.id"],
            name=op.f("fk_tickets_assignee_id_agents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_tickets_contact_id_contacts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_tickets_account_id_accounts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tickets")),
    )
    for column in (
        "conversation_id",
        "status",
        "team_id",
        "assignee_id",
        "contact_id",
        "account_id",
    ):
        op.create_index(op.f(f"ix_tickets_{column}"), "tickets", [column], unique=False)
    op.create_index(
        "uq_tickets_open_conversation",
        "tickets",
        ["conversation_id"],
        unique=True,
        sqlite_where=sa.text(_OPEN_WHERE),
        postgresql_where=sa.text(_OPEN_WHERE),
    )
    op.create_index("ix_tickets_queue", "tickets", ["team_id", "status", "priority", "created_at"])
    # Handoffs become tickets: pending → queued, assigned → assigned, closed → resolved.
    op.execute(
        "INSERT INTO tickets (id, conversation_id, status, reason_code, reason, priority, "
        "team_id, identity_verified, channel, language, summary, context, created_at, "
        "updated_at) SELECT id, conversation_id, CASE status WHEN 'pending' THEN 'queued' "
        "WHEN 'assigned' THEN 'assigned' ELSE 'resolved' END, 'customer_request', reason, 1, "
        "team_id, false, 'webchat', 'en', '', context, created_at, updated_at FROM handoffs"
    )
    _resync_id_sequence(dialect, "tickets")
    op.drop_table("handoffs")

    op.create_table(
        "canned_replies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("shortcut", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_canned_replies_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canned_replies")),
        sa.UniqueConstraint("shortcut", name=op.f("uq_canned_replies_shortcut")),
    )
    op.create_index(op.f("ix_canned_replies_team_id"), "canned_replies", ["team_id"], unique=False)
    op.create_table(
        "attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(length=32), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("uploaded_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_attachments_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_attachments_message_id_messages"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachments")),
    )
    op.create_index(
        op.f("ix_attachments_conversation_id"), "attachments", ["conversation_id"], unique=False
    )
    op.create_index(op.f("ix_attachments_message_id"), "attachments", ["message_id"], unique=False)
    for statement in _audit_lock_sql(dialect):
        op.execute(statement)


def _drop_audit_lock(dialect: str) -> None:
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_delete")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_change ON audit_events")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS audit_events_append_only()")


def downgrade() -> None:
    """Back to 0001: tickets become handoffs again; the desk's tables and columns go.

    Lossy by nature: what 0001 has no column for (assignee, notes, ratings, agents,
    sessions, attachments rows, canned replies) is dropped. The audit log keeps its rows.
    """
    dialect = op.get_bind().dialect.name
    _drop_audit_lock(dialect)
    op.drop_index(op.f("ix_attachments_message_id"), table_name="attachments")
    op.drop_index(op.f("ix_attachments_conversation_id"), table_name="attachments")
    op.drop_table("attachments")
    op.drop_index(op.f("ix_canned_replies_team_id"), table_name="canned_replies")
    op.drop_table("canned_replies")

    op.create_table(
        "handoffs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_handoffs_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_handoffs_team_id_teams"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handoffs")),
    )
    op.create_index(
        op.f("ix_handoffs_conversation_id"), "handoffs", ["conversation_id"], unique=False
    )
    op.create_index(op.f("ix_handoffs_status"), "handoffs", ["status"], unique=False)
    op.create_index(op.f("ix_handoffs_team_id"), "handoffs", ["team_id"], unique=False)
    # Tickets become handoffs: queued → pending, assigned → assigned, the rest → closed.
    op.execute(
        "INSERT INTO handoffs (id, conversation_id, status, reason, team_id, context, "
        "created_at, updated_at) SELECT id, conversation_id, CASE status WHEN 'queued' THEN "
        "'pending' WHEN 'assigned' THEN 'assigned' ELSE 'closed' END, reason, team_id, "
        "context, created_at, updated_at FROM tickets"
    )
    _resync_id_sequence(dialect, "handoffs")
    op.drop_index("ix_tickets_queue", table_name="tickets")
    op.drop_index("uq_tickets_open_conversation", table_name="tickets")
    for column in (
        "conversation_id",
        "status",
        "team_id",
        "assignee_id",
        "contact_id",
        "account_id",
    ):
        op.drop_index(op.f(f"ix_tickets_{column}"), table_name="tickets")
    op.drop_table("tickets")

    op.drop_index(op.f("ix_audit_events_ticket_id"), table_name="audit_events")
    op.drop_column("audit_events", "ticket_id")
    op.drop_column("messages", "agent_id")
    op.drop_column("messages", "private")
    op.drop_column("conversations", "language")
    op.drop_column("conversations", "rasa_paused")
    op.drop_column("teams", "business_hours")

    op.drop_index(op.f("ix_login_attempts_at"), table_name="login_attempts")
    op.drop_index(op.f("ix_login_attempts_key"), table_name="login_attempts")
    op.drop_table("login_attempts")
    op.drop_index(op.f("ix_agent_sessions_agent_id"), table_name="agent_sessions")
    op.drop_table("agent_sessions")
    op.drop_table("agent_teams")
    op.drop_table("agents")
