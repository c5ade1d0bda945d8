"""Start conversations, find them by browser token, store and list their messages.

Functions that change data commit the session, so the action server (another process)
sees the change at once.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import bot.db.models  # noqa: F401  (every table must be mapped before the first query)
from bot.conversations.models import (
    Channel,
    Conversation,
    ConversationMode,
    Message,
    MessageRole,
    MessageStatus,
)
from bot.db.base import utcnow

logger = logging.getLogger(__name__)

TOKEN_BYTES = 32
DEFAULT_HISTORY_LIMIT = 200
_ROLES = frozenset(role.value for role in MessageRole)
_STATUSES = frozenset(status.value for status in MessageStatus)


class ConversationNotFoundError(LookupError):
    """No conversation has this id.

    Attributes:
        conversation_id: The id that was looked up.
        message: A human explanation.
    """

    def __init__(self, conversation_id: str) -> None:
        self.conversation_id = conversation_id
        self.message = f"conversation {conversation_id} does not exist"
        super().__init__(self.message)


def hash_token(token: str) -> str:
    """Return the SHA-256 hex digest stored instead of a raw browser token.

    Args:
        token: The raw token.

    Returns:
        64 lower-case hex characters.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def start_conversation(session: Session, *, channel: str) -> tuple[Conversation, str]:
    """Create a conversation in bot mode together with its secret access token.

    Args:
        session: The open session (committed here).
        channel: ``"webchat"``, later ``"telegram"``.

    Returns:
        The new conversation and the RAW token; only its hash is stored, so this is the
        only time the token is available.
    """
    token = secrets.token_urlsafe(TOKEN_BYTES)
    conversation = Conversation(
        channel=channel, token_hash=hash_token(token), mode=ConversationMode.BOT.value
    )
    session.add(conversation)
    session.commit()
    logger.info("conversation started conversation=%s channel=%s", conversation.id, channel)
    return conversation, token


def conversation_for_token(session: Session, token: str | None) -> Conversation | None:
    """Return the conversation a raw token opens, if any.

    Args:
        session: The open session.
        token: The raw token sent by the browser (may be empty or ``None``).

    Returns:
        The conversation, or ``None`` for a missing or unknown token.
    """
    if not token:
        return None
    return session.scalars(
        select(Conversation).where(Conversation.token_hash == hash_token(token))
    ).one_or_none()


def get_conversation(session: Session, *, conversation_id: str) -> Conversation:
    """Return a conversation by id.

    Args:
        session: The open session.
        conversation_id: The conversation id (also the Rasa sender id).

    Returns:
        The conversation.

    Raises:
        ConversationNotFoundError: If there is none with this id.
    """
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        raise ConversationNotFoundError(conversation_id)
    return conversation


def ensure_conversation(
    session: Session, *, conversation_id: str, channel: str = Channel.UNKNOWN.value
) -> Conversation:
    """Return a conversation, creating it (without a token) if it does not exist yet.

    Used by the action server, which may learn about a sender before any channel stored
    it (e.g. ``rasa shell``). Does not commit.

    Args:
        session: The open session.
        conversation_id: The conversation id (the Rasa sender id).
        channel: Channel recorded when the row has to be created.

    Returns:
        The existing or new (flushed) conversation.
    """
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        try:
            with session.begin_nested():
                conversation = Conversation(
                    id=conversation_id, channel=channel, mode=ConversationMode.BOT.value
                )
                session.add(conversation)
        except IntegrityError:  # another process created it a moment ago: use theirs
            conversation = session.get(Conversation, conversation_id, populate_existing=True)
            if conversation is None:
                raise
        else:
            logger.info(
                "conversation created on first use conversation=%s channel=%s",
                conversation_id,
                channel,
            )
    return conversation


def add_message(
    session: Session,
    *,
    conversation_id: str,
    role: str,
    text: str,
    payload: dict[str, Any] | None = None,
    status: str = MessageStatus.DELIVERED.value,
    agent_id: int | None = None,
    private: bool = False,
    commit: bool = True,
) -> Message:
    """Store one message and touch the conversation's ``updated_at``.

    Args:
        session: The open session (committed here unless ``commit`` is false).
        conversation_id: The conversation the message belongs to.
        role: ``"customer"``, ``"bot"``, ``"agent"`` or ``"system"``.
        text: The message text, stored verbatim.
        payload: JSON-ready extras: buttons, citation, handoff notice, button payload.
        status: A :class:`MessageStatus` value.
        agent_id: The agent who wrote it (agent messages and notes).
        private: An internal note: kept in the transcript, never shown to the customer.
        commit: Commit now; false when the caller commits a larger change.

    Returns:
        The stored message, with its id and timestamp.

    Raises:
        ConversationNotFoundError: If the conversation does not exist.
        ValueError: If the role or status is unknown.
    """
    if role not in _ROLES:
        raise ValueError(f"unknown message role {role!r}")
    if status not in _STATUSES:
        raise ValueError(f"unknown message status {status!r}")
    conversation = get_conversation(session, conversation_id=conversation_id)
    message = Message(
        conversation_id=conversation_id,
        role=role,
        text=text,
        payload=payload,
        status=status,
        agent_id=agent_id,
        private=private,
        created_at=utcnow(),
    )
    session.add(message)
    conversation.updated_at = message.created_at
    if commit:
        session.commit()
    else:
        session.flush()
    return message


def set_message_status(session: Session, *, message_id: int, status: str) -> Message:
    """Change a stored message's status, e.g. to ``undelivered`` when Rasa is down.

    Args:
        session: The open session (committed here).
        message_id: The message.
        status: ``"delivered"``, ``"rejected"`` or ``"undelivered"``.

    Returns:
        The updated message.

    Raises:
        LookupError: If there is no such message.
        ValueError: If the status is unknown.
    """
    if status not in _STATUSES:
        raise ValueError(f"unknown message status {status!r}")
    message = session.get(Message, message_id)
    if message is None:
        raise LookupError(f"message {message_id} does not exist")
    message.status = status
    session.commit()
    return message


def history(
    session: Session,
    *,
    conversation_id: str,
    limit: int = DEFAULT_HISTORY_LIMIT,
    for_agent: bool = False,
) -> list[Message]:
    """Return the latest messages of a conversation, oldest first.

    Args:
        session: The open session.
        conversation_id: The conversation.
        limit: How many of the most recent messages to return.
        for_agent: The agent's transcript: with internal notes and withheld bot replies.
            The customer's view (the default) has neither.

    Returns:
        Up to ``limit`` messages in the order they were stored.
    """
    query = select(Message).where(Message.conversation_id == conversation_id)
    if not for_agent:
        query = query.where(
            Message.private.is_(False), Message.status != MessageStatus.WITHHELD.value
        )
    newest_first = session.scalars(query.order_by(Message.id.desc()).limit(limit)).all()
    return list(reversed(newest_first))


def set_mode(session: Session, *, conversation_id: str, mode: str) -> Conversation:
    """Change who answers a conversation (does not commit).

    Args:
        session: The open session.
        conversation_id: The conversation.
        mode: ``"bot"``, ``"handoff_pending"`` or ``"agent"``.

    Returns:
        The updated conversation.

    Raises:
        ConversationNotFoundError: If the conversation does not exist.
        ValueError: If the mode is unknown.
    """
    if mode not in {m.value for m in ConversationMode}:
        raise ValueError(f"unknown conversation mode {mode!r}")
    conversation = get_conversation(session, conversation_id=conversation_id)
    conversation.mode = mode
    return conversation
