"""The knowledge base's truth: articles, their revisions, publications and working copies.

Tables (migration 0003):

* ``kb_articles``: one row per article id (slug); ``retired`` articles leave the live
  index on the next publish and keep their history. ``published_revision_id`` is the
  revision last put live (kept while retired, so a restore has something to publish);
  ``in_live_build`` says whether the live build holds the article.
* ``kb_revisions``: numbered per article, append-only content (full front matter and
  body, as :class:`knowledge.articles.Article` needs them), with a state that moves
  draft → in_review → approved/rejected → published → superseded.
* ``kb_publications``: every publish attempt (sequence = id), who, when, which revisions,
  build id, status (running/succeeded/failed) and the error.
* ``kb_publish_lock``: a single row; a publish takes it with a conditional UPDATE, so two
  editors (on any replica, SQLite or PostgreSQL) never build at the same time.
* ``kb_working_copies``: the unsaved form an editor is typing, autosaved per editor and
  article, so a session that expires mid-edit loses nothing.
* ``kb_tune_jobs`` (migration 0005): every encoder tune a lead started from the browser,
  its progress (steps, heartbeat) and outcome; ``active`` is true while it is queued or
  running and NULL after, and a unique index on it lets one job be active at a time
  (NULLs never collide, on SQLite and PostgreSQL alike).
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, UTCDateTime, utcnow


class RevisionState(StrEnum):
    """Where a revision stands."""

    DRAFT = "draft"  # saved; publishable when the knowledge base needs no review
    IN_REVIEW = "in_review"  # submitted; waits for a lead
    APPROVED = "approved"  # a lead approved it; publishable
    REJECTED = "rejected"  # a lead rejected it (see the review comment)
    PUBLISHED = "published"  # the revision in the live build
    SUPERSEDED = "superseded"  # replaced by a newer revision (never published, or not any more)


class PublicationStatus(StrEnum):
    """Outcome of a publish attempt."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class KbArticle(Base):
    """An article id and its life (live or retired); the content is in its revisions."""

    __tablename__ = "kb_articles"

    id: Mapped[str] = mapped_column(String(120), primary_key=True)
    retired: Mapped[bool] = mapped_column(Boolean, default=False)
    published_revision_id: Mapped[int | None] = mapped_column(Integer, default=None)
    in_live_build: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class KbRevision(Base):
    """One saved version of an article: its full content, author and state."""

    __tablename__ = "kb_revisions"
    __table_args__ = (UniqueConstraint("article_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[str] = mapped_column(
        ForeignKey("kb_articles.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL"), default=None
    )
    author_name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Article.canonical_content(): id, title, audience, tags, questions, language,
    # updated (ISO date), owner, body.
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    note: Mapped[str] = mapped_column(String(500), default="")
    state: Mapped[str] = mapped_column(String(16), default=RevisionState.DRAFT.value, index=True)
    reviewer_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL"), default=None
    )
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    review_comment: Mapped[str] = mapped_column(Text, default="")
    published_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)


class KbPublication(Base):
    """One publish attempt: the revisions it put live and the build it produced."""

    __tablename__ = "kb_publications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # the sequence
    actor: Mapped[str] = mapped_column(String(64))
    agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL"), default=None
    )
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    status: Mapped[str] = mapped_column(String(16), default=PublicationStatus.RUNNING.value)
    # {"article_id": revision_id} of every article in the build, and the retired ids.
    revisions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    build_id: Mapped[str | None] = mapped_column(String(120), default=None)
    error: Mapped[str] = mapped_column(Text, default="")
    seconds: Mapped[float | None] = mapped_column(Float, default=None)


class KbPublishLock(Base):
    """The single publisher row (id 1); ``publication_id`` is set while a publish runs."""

    __tablename__ = "kb_publish_lock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    publication_id: Mapped[int | None] = mapped_column(Integer, default=None)
    acquired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)


class KbWorkingCopy(Base):
    """An editor's unsaved form for one article (``key``: the article id or ``new``)."""

    __tablename__ = "kb_working_copies"
    __table_args__ = (UniqueConstraint("agent_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(120))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    base_revision: Mapped[int | None] = mapped_column(Integer, default=None)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TuneJobStatus(StrEnum):
    """Where a tune job stands."""

    QUEUED = "queued"  # started by a lead; the tune process has not reported yet
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # tuned and published
    FAILED = "failed"
    CANCELLED = "cancelled"


class KbTuneJob(Base):
    """One encoder tune started from the browser: who, with what settings, how far, outcome."""

    __tablename__ = "kb_tune_jobs"
    __table_args__ = (Index("uq_kb_tune_jobs_active", "active", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default=TuneJobStatus.QUEUED.value)
    active: Mapped[bool | None] = mapped_column(Boolean, default=True)
    requested_by: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL"), default=None
    )
    requested_by_name: Mapped[str] = mapped_column(String(200), default="")
    # {"max_minutes": float, "epochs": int}
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    steps_done: Mapped[int] = mapped_column(Integer, default=0)
    steps_planned: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    message: Mapped[str] = mapped_column(Text, default="")
    encoder_name: Mapped[str | None] = mapped_column(String(200), default=None)
    build_id: Mapped[str | None] = mapped_column(String(120), default=None)
    pid: Mapped[int | None] = mapped_column(Integer, default=None)
