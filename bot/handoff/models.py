"""Handoffs: requests for a human to take over a conversation."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.accounts.models import Team
from bot.db.base import Base, UTCDateTime, utcnow


class HandoffStatus(StrEnum):
    """Lifecycle of a handoff."""

    PENDING = "pending"  # waiting for an agent
    ASSIGNED = "assigned"  # an agent took it
    CLOSED = "closed"


ACTIVE_HANDOFF_STATUSES: tuple[str, ...] = (
    HandoffStatus.PENDING.value,
    HandoffStatus.ASSIGNED.value,
)


class Handoff(Base):
    """A request for a human agent, routed to a team, with the context the bot collected."""

    __tablename__ = "handoffs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default=HandoffStatus.PENDING.value, index=True)
    reason: Mapped[str] = mapped_column(String(200))
    team_id: Mapped[int | None] = mapped_column(
        ForeignKey("teams.id", ondelete="SET NULL"), index=True, default=None
    )
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    team: Mapped[Team | None] = relationship(lazy="joined")

    def __repr__(self) -> str:
        return (
            f"Handoff(id={self.id!r}, conversation_id={self.conversation_id!r}, "
            f"status={self.status!r}, team_id={self.team_id!r})"
        )
