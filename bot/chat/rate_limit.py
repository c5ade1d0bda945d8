"""Per-conversation rate limit for customer messages bound for Rasa, kept in the database.

A customer (or a script) sending a burst of messages would queue one Rasa turn per
message on that conversation's Rasa lock. The limit is decided in the transaction that
stores the message and decides who answers it (:mod:`bot.chat.service`), with the
conversation row locked, so it holds across bot-service replicas that share the
database: at most ``messages`` customer messages per conversation in any
``window_seconds``. A message over the limit is still stored, with status
``rate_limited`` (the desk and the transcript show it), but is not sent to Rasa; the
first one of a burst gets one polite sentence, the rest none.

Messages to a person (the conversation's owner is an agent) are not limited: they never
reach Rasa, and the agent sees each one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.config import Settings
from bot.conversations.models import Message, MessageRole, MessageStatus

# Statuses that do not count towards the limit: never sent to Rasa.
_NOT_COUNTED = (MessageStatus.RATE_LIMITED.value, MessageStatus.REJECTED.value)


@dataclass(frozen=True)
class RateLimit:
    """At most ``messages`` customer messages per conversation in ``window_seconds``."""

    messages: int
    window_seconds: float


def rate_limit_for(settings: Settings) -> RateLimit | None:
    """The configured limit, or ``None`` when ``chat_rate_limit_messages`` is 0."""
    if settings.chat_rate_limit_messages == 0:
        return None
    return RateLimit(
        messages=settings.chat_rate_limit_messages,
        window_seconds=settings.chat_rate_limit_window_seconds,
    )


@dataclass(frozen=True)
class RateDecision:
    """Whether a message is over the limit, and whether to tell the customer."""

    limited: bool = False
    notify: bool = False


def apply_rate_limit(session: Session, *, message: Message, limit: RateLimit) -> RateDecision:
    """Decide on a just-stored customer message, marking it ``rate_limited`` if over.

    Call inside the transaction that stored ``message``, after the conversation row was
    locked (a write on SQLite), so two replicas cannot both let the same slot through.

    Args:
        session: The admission transaction's session.
        message: The customer's message, stored (flushed) in this transaction.
        limit: The limit.

    Returns:
        The decision; ``notify`` only for the first message over the limit in the window.
    """
    since = message.created_at - dt.timedelta(seconds=limit.window_seconds)
    recent = (
        Message.conversation_id == message.conversation_id,
        Message.role == MessageRole.CUSTOMER.value,
        Message.created_at >= since,
        Message.id <= message.id,
    )
    counted = session.scalar(
        select(func.count(Message.id)).where(*recent, Message.status.not_in(_NOT_COUNTED))
    )
    if (counted or 0) <= limit.messages:
        return RateDecision()
    earlier = session.scalar(
        select(func.count(Message.id)).where(
            *recent,
            Message.id < message.id,
            Message.status == MessageStatus.RATE_LIMITED.value,
        )
    )
    message.status = MessageStatus.RATE_LIMITED.value
    return RateDecision(limited=True, notify=not earlier)
