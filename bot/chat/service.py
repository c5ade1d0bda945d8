"""Channel-independent handling of one customer turn.

The web chat (and later Telegram) hands every customer message to
:meth:`ChatService.handle_customer_message`. It stores the message, decides whether it
goes to Rasa, stores Rasa's replies and returns what the channel should show.

Database work runs in a worker thread so a busy SQLite file never blocks the event loop,
and no transaction is open while Rasa (and through it the action server, which writes the
same database) is working on the turn.
"""

from __future__ import annotations

import datetime as dt
import logging
import unicodedata
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session, sessionmaker

from bot.chat import messages
from bot.conversations import service as conversations
from bot.conversations.models import (
    Conversation,
    ConversationMode,
    Message,
    MessageRole,
    MessageStatus,
)
from bot.db.base import utcnow
from bot.handoff.service import active_handoff
from bot.rasa_client import (
    BotReply,
    Button,
    Citation,
    HandoffNotice,
    RasaClient,
    RasaError,
    RasaUnavailableError,
)

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_KEPT_CONTROL_CHARACTERS = frozenset("\n\t")


class OutboundMessage(BaseModel):
    """A message as a channel shows it (bot/system replies and history entries)."""

    id: int | None = None
    role: str
    text: str
    buttons: list[Button] = Field(default_factory=list)
    citation: Citation | None = None
    handoff: HandoffNotice | None = None
    status: str = MessageStatus.DELIVERED.value
    created_at: dt.datetime = Field(default_factory=utcnow)

    @classmethod
    def from_message(cls, message: Message) -> OutboundMessage:
        """Build the outbound form of a stored message.

        Args:
            message: A stored message; its payload may hold buttons, citation, handoff.

        Returns:
            The outbound message.
        """
        payload = message.payload or {}
        citation, handoff = payload.get("citation"), payload.get("handoff")
        return cls(
            id=message.id,
            role=message.role,
            text=message.text,
            buttons=[Button.model_validate(b) for b in payload.get("buttons") or []],
            citation=Citation.model_validate(citation) if citation else None,
            handoff=HandoffNotice.model_validate(handoff) if handoff else None,
            status=message.status,
            created_at=message.created_at,
        )


def clean_text(text: str) -> str:
    r"""Remove control characters (except newline and tab) and lone surrogates.

    Args:
        text: Raw text from a channel.

    Returns:
        The text without ``Cc``/``Cs`` characters; ``\r\n`` becomes ``\n``.
    """
    text = text.replace("\r\n", "\n")
    return "".join(
        char
        for char in text
        if char in _KEPT_CONTROL_CHARACTERS or unicodedata.category(char) not in ("Cc", "Cs")
    )


def reply_payload(reply: BotReply) -> dict[str, Any] | None:
    """Return the JSON stored with a bot reply (only the parts it has).

    Args:
        reply: A parsed Rasa reply.

    Returns:
        A dict with ``buttons``/``citation``/``handoff``/``custom``, or ``None``.
    """
    payload: dict[str, Any] = {}
    if reply.buttons:
        payload["buttons"] = [button.model_dump() for button in reply.buttons]
    if reply.citation is not None:
        payload["citation"] = reply.citation.model_dump()
    if reply.handoff is not None:
        payload["handoff"] = reply.handoff.model_dump()
    if reply.custom:
        payload["custom"] = reply.custom
    return payload or None


class ChatService:
    """Handles customer turns for any channel."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        rasa_client: RasaClient,
        max_message_chars: int,
    ) -> None:
        """Create the service.

        Args:
            session_factory: Opens app-database sessions.
            rasa_client: Sends turns to Rasa.
            max_message_chars: Longest message forwarded; longer ones are stored as
                ``rejected`` and the customer is asked for a shorter one.
        """
        self._session_factory = session_factory
        self._rasa = rasa_client
        self._max_chars = max_message_chars

    async def _db(self, func: Callable[..., _T], /, **kwargs: Any) -> _T:
        """Run ``func(session, **kwargs)`` in a worker thread with its own session."""

        def run() -> _T:
            with self._session_factory() as session:
                return func(session, **kwargs)

        return await anyio.to_thread.run_sync(run)

    # -- sessions and history -------------------------------------------------------

    async def open_conversation(
        self, *, token: str | None, channel: str
    ) -> tuple[Conversation, str | None]:
        """Return the conversation a token opens, or start a new one.

        Args:
            token: The raw token the client presented (may be missing or unknown).
            channel: Channel for a new conversation.

        Returns:
            The conversation and, only when a new one was started, its raw token.
        """
        conversation = await self._db(conversations.conversation_for_token, token=token)
        if conversation is not None:
            return conversation, None
        return await self._db(conversations.start_conversation, channel=channel)

    async def history(
        self, *, conversation_id: str, limit: int = conversations.DEFAULT_HISTORY_LIMIT
    ) -> list[OutboundMessage]:
        """Return the conversation's latest messages, oldest first.

        Args:
            conversation_id: The conversation.
            limit: How many recent messages.

        Returns:
            The messages in outbound form.
        """
        stored = await self._db(conversations.history, conversation_id=conversation_id, limit=limit)
        return [OutboundMessage.from_message(message) for message in stored]

    # -- customer turns ---------------------------------------------------------------

    async def handle_customer_message(
        self, *, conversation_id: str, text: str
    ) -> list[OutboundMessage]:
        """Handle a typed customer message.

        Args:
            conversation_id: The conversation (server-side id, never from the client).
            text: What the customer typed.

        Returns:
            What to show the customer: bot replies, or one polite system sentence.

        Raises:
            ConversationNotFoundError: If the conversation does not exist.
        """
        return await self._handle_turn(conversation_id=conversation_id, shown=text, forwarded=None)

    async def handle_button(
        self, *, conversation_id: str, title: str, payload: str
    ) -> list[OutboundMessage]:
        """Handle a button click: store the title as the customer's text, send the payload.

        Args:
            conversation_id: The conversation.
            title: The button's title, shown as the customer's message.
            payload: The button's payload (e.g. ``/affirm``), sent to Rasa.

        Returns:
            What to show the customer.

        Raises:
            ConversationNotFoundError: If the conversation does not exist.
        """
        return await self._handle_turn(
            conversation_id=conversation_id, shown=title, forwarded=payload
        )

    async def _handle_turn(
        self, *, conversation_id: str, shown: str, forwarded: str | None
    ) -> list[OutboundMessage]:
        text = clean_text(shown).strip()
        to_rasa = clean_text(forwarded).strip() if forwarded is not None else text
        if not text or not to_rasa:
            return [OutboundMessage(role=MessageRole.SYSTEM.value, text=messages.EMPTY_MESSAGE)]

        extra = {"button_payload": to_rasa} if forwarded is not None else None
        if len(text) > self._max_chars or len(to_rasa) > self._max_chars:
            return await self._reject_too_long(
                conversation_id=conversation_id, text=text, payload=extra
            )

        customer_message, mode = await self._db(
            _store_customer_message, conversation_id=conversation_id, text=text, payload=extra
        )
        if mode == ConversationMode.AGENT.value:
            logger.info(
                "conversation=%s is with an agent; message=%s not forwarded",
                conversation_id,
                customer_message.id,
            )
            return []

        try:
            replies = await self._rasa.send_message(sender_id=conversation_id, text=to_rasa)
        except RasaUnavailableError as exc:
            logger.error("rasa unavailable conversation=%s: %s", conversation_id, exc.message)
            return [await self._undelivered(conversation_id, customer_message.id)]
        except RasaError as exc:
            logger.error("rasa bad response conversation=%s: %s", conversation_id, exc.message)
            return [await self._undelivered(conversation_id, customer_message.id)]

        if not replies:
            # Every turn of ours ends in a reply; an empty list means Rasa could not run an
            # action (typically the action server is down) and carried on without one.
            logger.error(
                "rasa returned no reply conversation=%s message=%s (is the action server up?)",
                conversation_id,
                customer_message.id,
            )
            return [await self._store_system(conversation_id, messages.NO_REPLY)]
        return await self._db(_store_replies, conversation_id=conversation_id, replies=replies)

    async def _reject_too_long(
        self, *, conversation_id: str, text: str, payload: dict[str, Any] | None
    ) -> list[OutboundMessage]:
        stored = await self._db(
            conversations.add_message,
            conversation_id=conversation_id,
            role=MessageRole.CUSTOMER.value,
            text=text,
            payload=payload,
            status=MessageStatus.REJECTED.value,
        )
        logger.info(
            "message too long conversation=%s message=%s chars=%s limit=%s",
            conversation_id,
            stored.id,
            len(text),
            self._max_chars,
        )
        reply = messages.MESSAGE_TOO_LONG.format(max_chars=self._max_chars)
        return [await self._store_system(conversation_id, reply)]

    async def _undelivered(self, conversation_id: str, message_id: int) -> OutboundMessage:
        """Mark the customer's message undelivered and apologise (stored as ``system``)."""
        await self._db(
            conversations.set_message_status,
            message_id=message_id,
            status=MessageStatus.UNDELIVERED.value,
        )
        return await self._store_system(conversation_id, messages.RASA_UNAVAILABLE)

    async def _store_system(self, conversation_id: str, text: str) -> OutboundMessage:
        stored = await self._db(
            conversations.add_message,
            conversation_id=conversation_id,
            role=MessageRole.SYSTEM.value,
            text=text,
        )
        return OutboundMessage.from_message(stored)


def _store_customer_message(
    session: Session, *, conversation_id: str, text: str, payload: dict[str, Any] | None
) -> tuple[Message, str]:
    """Store the customer's message; return it and the conversation's current mode."""
    message = conversations.add_message(
        session,
        conversation_id=conversation_id,
        role=MessageRole.CUSTOMER.value,
        text=text,
        payload=payload,
    )
    conversation = conversations.get_conversation(session, conversation_id=conversation_id)
    return message, conversation.mode


def _store_replies(
    session: Session, *, conversation_id: str, replies: list[BotReply]
) -> list[OutboundMessage]:
    """Store Rasa's replies; re-read the mode if a handoff was announced."""
    outbound = []
    for reply in replies:
        stored = conversations.add_message(
            session,
            conversation_id=conversation_id,
            role=MessageRole.BOT.value,
            text=reply.text or "",
            payload=reply_payload(reply),
        )
        outbound.append(OutboundMessage.from_message(stored))
    notices = [reply.handoff for reply in replies if reply.handoff is not None]
    if notices:
        _refresh_mode_after_handoff(session, conversation_id=conversation_id, notice=notices[-1])
    return outbound


def _refresh_mode_after_handoff(
    session: Session, *, conversation_id: str, notice: HandoffNotice
) -> str:
    """Re-read the mode the action server set when it opened the announced handoff.

    If the handoff row exists but the conversation is still in bot mode (e.g. an older
    action server), the mode is repaired to ``handoff_pending``.
    """
    conversation = conversations.get_conversation(session, conversation_id=conversation_id)
    session.refresh(conversation)
    handoff = active_handoff(session, conversation_id=conversation_id)
    if handoff is None:
        logger.warning(
            "handoff=%s announced but no active handoff stored conversation=%s",
            notice.id,
            conversation_id,
        )
    elif conversation.mode == ConversationMode.BOT.value:
        conversation.mode = ConversationMode.HANDOFF_PENDING.value
        session.commit()
        logger.warning(
            "conversation=%s had handoff=%s but was in bot mode; set to %s",
            conversation_id,
            handoff.id,
            conversation.mode,
        )
    logger.info(
        "handoff announced conversation=%s handoff=%s mode=%s",
        conversation_id,
        notice.id,
        conversation.mode,
    )
    return conversation.mode
