"""Import every model so ``Base.metadata`` knows all tables (Alembic, tests)."""

from bot.accounts.models import Account, Contact, Order, Team
from bot.audit.models import AuditEvent
from bot.conversations.models import Conversation, Message
from bot.db.base import Base
from bot.handoff.models import Handoff

__all__ = [
    "Account",
    "AuditEvent",
    "Base",
    "Contact",
    "Conversation",
    "Handoff",
    "Message",
    "Order",
    "Team",
]
