"""People who work the desk: agents, their teams, their sign-in sessions and attempts."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import Boolean, Column, ForeignKey, Integer, String, Table
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.accounts.models import Team
from bot.db.base import Base, UTCDateTime, utcnow


class Role(StrEnum):
    """What a desk user may do; each role includes the ones before it except ``editor``."""

    AGENT = "agent"  # works the queues of their teams
    LEAD = "lead"  # an agent who also sees reports and reviews articles
    EDITOR = "editor"  # edits knowledge-base articles (no tickets)
    ADMIN = "admin"  # manages agents; must use two-step sign-in


agent_teams = Table(
    "agent_teams",
    Base.metadata,
    Column("agent_id", ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
    Column("team_id", ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
)


class Agent(Base):
    """A desk user (agent, lead, editor or admin)."""

    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # stored lower-case
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default=Role.AGENT.value)
    password_hash: Mapped[str] = mapped_column(String(255))
    totp_secret: Mapped[str | None] = mapped_column(String(64), default=None)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    teams: Mapped[list[Team]] = relationship(secondary=agent_teams, lazy="selectin")

    @property
    def team_ids(self) -> set[int]:
        """Ids of the teams whose queues this agent works."""
        return {team.id for team in self.teams}

    def __repr__(self) -> str:
        return f"Agent(id={self.id!r}, email={self.email!r}, role={self.role!r})"


class AgentSession(Base):
    """A server-side sign-in session; the cookie holds a random token, we keep its hash."""

    __tablename__ = "agent_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the token
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    # True between a correct password and a correct TOTP code (two-step sign-in).
    second_factor_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    agent: Mapped[Agent] = relationship(lazy="joined")


class LoginAttempt(Base):
    """One sign-in attempt, kept for rate limiting across bot-service replicas."""

    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(400), index=True)  # "email:…" or "ip:…"
    succeeded: Mapped[bool] = mapped_column(Boolean, default=False)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
