"""Conversations and their messages."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, UTCDateTime, utcnow


class Channel(StrEnum):
    """Where a conversation takes place."""

    WEBCHAT = "webchat"
    TELEGRAM = "telegram"
    UNKNOWN = "unknown"  # created by the action server before any channel spoke


class ConversationMode(StrEnum):
    """Who answers the customer."""

    BOT = "bot"
    HANDOFF_PENDING = "handoff_pending"
    AGENT = "agent"


class MessageRole(StrEnum):
    """Author of a message."""

    CUSTOMER = "customer"
    BOT = "bot"
    AGENT = "agent"
    SYSTEM = "system"


class MessageStatus(StrEnum):
    """What happened to a message."""

    DELIVERED = "delivered"
    REJECTED = "rejected"  # stored but not forwarded (e.g. too long)
    UNDELIVERED = "undelivered"  # could not be forwarded (e.g. Rasa down)
    WITHHELD = "withheld"  # a bot reply that arrived after a person took over; never shown
    RATE_LIMITED = "rate_limited"  # stored, not forwarded: over the chat rate limit


# Conversation ids are Rasa sender ids; longer ones are refused at the internal API
# (PostgreSQL enforces the column's length, SQLite does not).
CONVERSATION_ID_MAX_CHARS = 32


def new_conversation_id() -> str:
    """Return a fresh conversation id (uuid4 hex); it is also the Rasa sender id."""
    return uuid.uuid4().hex


class Conversation(Base):
    """One customer conversation on one channel."""

    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(
        String(CONVERSATION_ID_MAX_CHARS), primary_key=True, default=new_conversation_id
    )
    channel: Mapped[str] = mapped_column(String(32), default=Channel.WEBCHAT.value)
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    mode: Mapped[str] = mapped_column(String(32), default=ConversationMode.BOT.value, index=True)
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="SET NULL"), index=True, default=None
    )
    # True once a person took over and until Rasa has confirmed the hand-back: a paused
    # Rasa tracker ignores every message, so the turn handler resumes it first.
    rasa_paused: Mapped[bool] = mapped_column(Boolean, default=False)
    language: Mapped[str] = mapped_column(String(8), default="en")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"Conversation(id={self.id!r}, channel={self.channel!r}, mode={self.mode!r})"


class Message(Base):
    """One message in a conversation, from the customer, the bot, an agent or the system."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    status: Mapped[str] = mapped_column(String(16), default=MessageStatus.DELIVERED.value)
    # Internal notes between agents: stored with the transcript, never sent to the customer.
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    # The author of an agent message or note. No foreign key (adding one to an existing
    # SQLite table means rebuilding it); agents are deactivated, never deleted.
    agent_id: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def __repr__(self) -> str:
        return (
            f"Message(id={self.id!r}, conversation_id={self.conversation_id!r}, "
            f"role={self.role!r}, status={self.status!r})"
        )


class Attachment(Base):
    """A file sent in a conversation (a photo of a damaged parcel, an agent's PDF).

    The bytes live outside the database under ``settings.attachments_dir``, named by
    their SHA-256; the row keeps what the desk and the chat need to show them.
    """

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), index=True, default=None
    )
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by: Mapped[str] = mapped_column(String(64))  # "customer" or "agent:<id>"
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
