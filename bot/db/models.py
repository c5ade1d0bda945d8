"""Import every model so ``Base.metadata`` knows all tables (Alembic, tests)."""

from bot.accounts.models import Account, Contact, Order, Team
from bot.agents.models import Agent, AgentSession, LoginAttempt
from bot.audit.models import AuditEvent
from bot.conversations.models import Attachment, Conversation, Message
from bot.db.base import Base
from bot.editor.models import (
    KbArticle,
    KbPublication,
    KbPublishLock,
    KbRevision,
    KbTuneJob,
    KbWorkingCopy,
)
from bot.handoff.models import CannedReply, Ticket

__all__ = [
    "Account",
    "Agent",
    "AgentSession",
    "Attachment",
    "AuditEvent",
    "Base",
    "CannedReply",
    "Contact",
    "Conversation",
    "KbArticle",
    "KbPublication",
    "KbPublishLock",
    "KbRevision",
    "KbTuneJob",
    "KbWorkingCopy",
    "LoginAttempt",
    "Message",
    "Order",
    "Team",
    "Ticket",
]
