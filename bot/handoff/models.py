"""Tickets: a conversation handed to a person, routed to a team, with the bot's context.

A ticket is open while it is ``queued`` (waiting for an agent of its team) or
``assigned`` (an agent owns the conversation). A conversation has at most one open
ticket; the database enforces that with a partial unique index, so two handoff
requests racing each other in two processes still give one ticket.
"""

from __future__ import annotations

import datetime as dt
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.accounts.models import Team
from bot.db.base import Base, UTCDateTime, utcnow

if TYPE_CHECKING:
    from bot.agents.models import Agent


class TicketStatus(StrEnum):
    """Lifecycle of a ticket (Chatwoot's pending/open/resolved, in our words)."""

    QUEUED = "queued"  # waiting for an agent of its team
    ASSIGNED = "assigned"  # an agent owns the conversation
    RESOLVED = "resolved"  # closed by an agent with a note; the bot answers again
    HANDED_BACK = "handed_back"  # the agent gave the conversation back to the bot
    WITHDRAWN = "withdrawn"  # the customer no longer needed a person


OPEN_TICKET_STATUSES: tuple[str, ...] = (TicketStatus.QUEUED.value, TicketStatus.ASSIGNED.value)
CLOSED_TICKET_STATUSES: tuple[str, ...] = (
    TicketStatus.RESOLVED.value,
    TicketStatus.HANDED_BACK.value,
    TicketStatus.WITHDRAWN.value,
)


class Priority(IntEnum):
    """How urgent a ticket is; queues sort by priority, then by waiting time."""

    LOW = 0
    NORMAL = 1
    HIGH = 2
    URGENT = 3


class ReasonCode(StrEnum):
    """Why the conversation was handed to a person (stored on the ticket)."""

    CUSTOMER_REQUEST = "customer_request"
    OFFER_ACCEPTED = "offer_accepted"
    REPEATED_NO_ANSWER = "repeated_no_answer"
    NEGATIVE_FEEDBACK = "negative_feedback"
    FRUSTRATION = "frustration"
    KB_NO_ANSWER = "kb_no_answer"
    KB_UNSURE = "kb_unsure"
    KB_UNAVAILABLE = "kb_unavailable"
    OUT_OF_SCOPE = "out_of_scope"
    UNHELPFUL_ANSWER = "unhelpful_answer"


_OPEN_WHERE = "status IN ('queued', 'assigned')"


class Ticket(Base):
    """A request for a person, routed to a team, with the context the bot collected."""

    __tablename__ = "tickets"
    __table_args__ = (
        Index(
            "uq_tickets_open_conversation",
            "conversation_id",
            unique=True,
            sqlite_where=text(_OPEN_WHERE),
            postgresql_where=text(_OPEN_WHERE),
        ),
        Index("ix_tickets_queue", "team_id", "status", "priority", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default=TicketStatus.QUEUED.value, index=True)
    reason_code: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(200))
    priority: Mapped[int] = mapped_column(Integer, default=int(Priority.NORMAL))
    team_id: Mapped[int | None] = mapped_column(
        ForeignKey("teams.id", ondelete="SET NULL"), index=True, default=None
    )
    assignee_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL"), index=True, default=None
    )
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="SET NULL"), index=True, default=None
    )
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), index=True, default=None
    )
    # False until the accounts issue's verification confirms the contact: an unverified
    # claim may route the ticket but is shown only to agents, marked unverified.
    identity_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    channel: Mapped[str] = mapped_column(String(32), default="webchat")
    language: Mapped[str] = mapped_column(String(8), default="en")
    summary: Mapped[str] = mapped_column(Text, default="")
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    resolution_note: Mapped[str | None] = mapped_column(Text, default=None)
    rating: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    assigned_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    first_agent_reply_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    rated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)

    team: Mapped[Team | None] = relationship(lazy="joined")
    assignee: Mapped[Agent | None] = relationship(lazy="joined")

    @property
    def is_open(self) -> bool:
        """Whether the ticket still waits for, or is owned by, a person."""
        return self.status in OPEN_TICKET_STATUSES

    def __repr__(self) -> str:
        return (
            f"Ticket(id={self.id!r}, conversation_id={self.conversation_id!r}, "
            f"status={self.status!r}, team_id={self.team_id!r})"
        )


class CannedReply(Base):
    """A saved answer an agent can insert into a reply (``/shortcut``)."""

    __tablename__ = "canned_replies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int | None] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), index=True, default=None
    )  # None: shared by every team
    shortcut: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
