"""Knowledge editor: articles, revisions, publications, the publish lock, working copies.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 10:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _agent_fk(table: str, column: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], ["agents.id"], name=op.f(f"fk_{table}_{column}_agents"), ondelete="SET NULL"
    )


def upgrade() -> None:
    """Create the editor tables and the single publisher row."""
    op.create_table(
        "kb_articles",
        sa.Column("id", sa.String(length=120), nullable=False),
        sa.Column("retired", sa.Boolean(), nullable=False),
        sa.Column("published_revision_id", sa.Integer(), nullable=True),
        sa.Column("in_live_build", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _agent_fk("kb_articles", "created_by"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_articles")),
    )
    op.create_table(
        "kb_revisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.String(length=120), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("author_name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("review_comment", sa.Text(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["kb_articles.id"],
            name=op.f("fk_kb_revisions_article_id_kb_articles"),
            ondelete="CASCADE",
        ),
        _agent_fk("kb_revisions", "author_id"),
        _agent_fk("kb_revisions", "reviewer_id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_revisions")),
        sa.UniqueConstraint("article_id", "number", name=op.f("uq_kb_revisions_article_id")),
    )
    op.create_index(op.f("ix_kb_revisions_article_id"), "kb_revisions", ["article_id"])
    op.create_index(op.f("ix_kb_revisions_state"), "kb_revisions", ["state"])
    op.create_table(
        "kb_publications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("revisions", sa.JSON(), nullable=False),
        sa.Column("build_id", sa.String(length=120), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=True),
        _agent_fk("kb_publications", "agent_id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_publications")),
    )
    lock = op.create_table(
        "kb_publish_lock",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("publication_id", sa.Integer(), nullable=True),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_publish_lock")),
    )
    op.bulk_insert(lock, [{"id": 1, "publication_id": None, "acquired_at": None}])
    op.create_table(
        "kb_working_copies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("base_revision", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_kb_working_copies_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_working_copies")),
        sa.UniqueConstraint("agent_id", "key", name=op.f("uq_kb_working_copies_agent_id")),
    )
    op.create_index(op.f("ix_kb_working_copies_agent_id"), "kb_working_copies", ["agent_id"])


def downgrade() -> None:
    """Drop the editor tables (their content is lost; export it first)."""
    for table in (
        "kb_working_copies",
        "kb_publish_lock",
        "kb_publications",
        "kb_revisions",
        "kb_articles",
    ):
        op.drop_table(table)
