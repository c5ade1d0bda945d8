"""Channel-independent handling of one customer turn.

Every channel (web chat, Telegram) hands every customer message to
:meth:`ChatService.handle_customer_message`. Who answers is decided here, in one
transaction, before anything is forwarded: the customer's message is stored with the
conversation row locked, and the conversation's ``mode`` read in the same transaction.

* ``bot`` / ``handoff_pending``: the message goes to Rasa (while a ticket waits in the
  queue the bot still helps, and the agent sees every message live);
* ``agent``: a person owns the conversation; nothing reaches Rasa, the agent's desk is
  told, and a bot reply that was already under way when the person took over is
  stored as ``withheld`` and never shown.

The service also intercepts what belongs to the bot service and not to Rasa: the
one-tap satisfaction rating, and frustration (which becomes a request for a person).

Database work runs in a worker thread so a busy SQLite file never blocks the event loop,
and no transaction is open while Rasa (and through it the action server, which calls
back into this service's internal API) is working on the turn.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import unicodedata
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session, sessionmaker

from bot.chat import messages
from bot.chat.rate_limit import RateDecision, RateLimit, apply_rate_limit
from bot.chat.timing import TurnTiming, timed_stage
from bot.conversations import service as conversations
from bot.conversations.attachments import AttachmentInfo, attachment_ids
from bot.conversations.models import (
    Conversation,
    ConversationMode,
    Message,
    MessageRole,
    MessageStatus,
)
from bot.db.base import utcnow
from bot.handoff import service as tickets
from bot.handoff.errors import TicketError
from bot.handoff.events import message_event
from bot.handoff.models import Ticket
from bot.rasa_client import (
    BotReply,
    Button,
    Citation,
    HandoffNotice,
    RasaClient,
    RasaError,
    RasaUnavailableError,
)
from bot.realtime.broker import DESK_TOPIC, Broker, InProcessBroker

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_KEPT_CONTROL_CHARACTERS = frozenset("\n\t")
FRUSTRATION_PAYLOAD = '/request_human{"handoff_reason": "frustration"}'
EARLIER_TEXTS_FOR_FRUSTRATION = 5


class OutboundMessage(BaseModel):
    """A message as a channel shows it (bot/system replies and history entries).

    ``attachments`` holds only ids when built from a stored message; the channel fills
    in names and short-lived signed URLs when it sends the message
    (:meth:`bot.conversations.attachments.AttachmentService.present_frame`).
    """

    id: int | None = None
    role: str
    text: str
    buttons: list[Button] = Field(default_factory=list)
    citation: Citation | None = None
    handoff: HandoffNotice | None = None
    agent_name: str | None = None
    attachments: list[AttachmentInfo] = Field(default_factory=list)
    status: str = MessageStatus.DELIVERED.value
    created_at: dt.datetime = Field(default_factory=utcnow)

    @classmethod
    def from_message(cls, message: Message) -> OutboundMessage:
        """Build the outbound form of a stored message.

        Args:
            message: A stored message; its payload may hold buttons, citation, handoff,
                agent name and attachment ids.

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
            agent_name=payload.get("agent_name"),
            attachments=[AttachmentInfo(id=i) for i in attachment_ids(payload)],
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


class Admission(BaseModel):
    """What the turn's one ownership transaction decided."""

    model_config = {"arbitrary_types_allowed": True}

    message_id: int
    mode: str
    rasa_paused: bool
    ticket_id: int | None = None
    desk_event: dict[str, Any] | None = None
    earlier_texts: list[str] = Field(default_factory=list)
    rate_limited: bool = False  # over the chat rate limit: stored, not forwarded
    rate_limit_notice: bool = False  # the first of a burst: tell the customer once


class ChatService:
    """Handles customer turns for any channel."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        rasa_client: RasaClient,
        max_message_chars: int,
        broker: Broker | None = None,
        detect_frustration: Callable[[str, list[str]], bool] | None = None,
        turn_timing_log: bool = False,
        rate_limit: RateLimit | None = None,
    ) -> None:
        """Create the service.

        Args:
            session_factory: Opens app-database sessions.
            rasa_client: Sends turns to Rasa.
            max_message_chars: Longest message forwarded; longer ones are stored as
                ``rejected`` and the customer is asked for a shorter one.
            broker: Tells the desk of customer messages in open tickets.
            detect_frustration: ``(text, earlier_texts) -> bool``; a frustrated
                customer in bot mode is handed to a person. ``None`` disables it.
            turn_timing_log: Log where each turn's time went (:mod:`bot.chat.timing`).
            rate_limit: Most customer messages per conversation sent to Rasa per window
                (:mod:`bot.chat.rate_limit`); ``None``: no limit.
        """
        self._session_factory = session_factory
        self._rasa = rasa_client
        self._max_chars = max_message_chars
        self._broker: Broker = broker or InProcessBroker()
        self._detect_frustration = detect_frustration
        self._turn_timing_log = turn_timing_log
        self._rate_limit = rate_limit

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
        """Return the conversation's latest messages as the customer sees them, oldest first.

        Args:
            conversation_id: The conversation.
            limit: How many recent messages.

        Returns:
            The messages in outbound form (no internal notes, no withheld replies).
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
            What to show the customer: bot replies, or one polite system sentence;
            nothing while a person owns the conversation (their replies are pushed).

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
        timing = TurnTiming(conversation_id) if self._turn_timing_log else None
        text = clean_text(shown).strip()
        to_rasa = clean_text(forwarded).strip() if forwarded is not None else text
        if not text or not to_rasa:
            return [OutboundMessage(role=MessageRole.SYSTEM.value, text=messages.EMPTY_MESSAGE)]

        extra = {"button_payload": to_rasa} if forwarded is not None else None
        if len(text) > self._max_chars or len(to_rasa) > self._max_chars:
            return await self._reject_too_long(
                conversation_id=conversation_id, text=text, payload=extra
            )

        with timed_stage(timing, "admission"):
            admission = await self._db(
                _admit_customer_message,
                conversation_id=conversation_id,
                text=text,
                payload=extra,
                rate_limit=(
                    None if to_rasa.startswith(tickets.RATING_PAYLOAD_PREFIX) else self._rate_limit
                ),
            )
        if admission.desk_event is not None:
            await self._broker.publish(DESK_TOPIC, admission.desk_event)
        if to_rasa.startswith(tickets.RATING_PAYLOAD_PREFIX):
            return [await self._rate(conversation_id, to_rasa)]
        if admission.mode == ConversationMode.AGENT.value:
            logger.info(
                "conversation=%s is with an agent; message=%s not forwarded",
                conversation_id,
                admission.message_id,
            )
            return []
        if admission.rate_limited:  # bot/chat/rate_limit.py: stored and marked, not forwarded
            logger.info(
                "rate limited conversation=%s message=%s notice=%s",
                conversation_id,
                admission.message_id,
                admission.rate_limit_notice,
            )
            if admission.rate_limit_notice:
                return [await self._store_system(conversation_id, messages.RATE_LIMITED)]
            return []
        if (
            admission.mode == ConversationMode.BOT.value
            and forwarded is None
            and self._detect_frustration is not None
            and self._detect_frustration(text, admission.earlier_texts)
        ):
            logger.info(
                "frustration detected conversation=%s message=%s; handing over",
                conversation_id,
                admission.message_id,
            )
            to_rasa = FRUSTRATION_PAYLOAD

        try:
            if admission.rasa_paused:
                await self._rasa.resume(sender_id=conversation_id)
                await self._db(mark_rasa_resumed, conversation_id=conversation_id)
            with timed_stage(timing, "rasa"):
                replies = await self._rasa.send_message(
                    sender_id=conversation_id,
                    text=to_rasa,
                    timings=timing.action_reports if timing else None,
                )
        except RasaUnavailableError as exc:
            logger.error("rasa unavailable conversation=%s: %s", conversation_id, exc.message)
            return [await self._undelivered(conversation_id, admission.message_id)]
        except RasaError as exc:
            logger.error("rasa bad response conversation=%s: %s", conversation_id, exc.message)
            return [await self._undelivered(conversation_id, admission.message_id)]

        if not replies:
            # Every turn of ours ends in a reply; an empty list means Rasa could not run an
            # action (typically the action server is down) and carried on without one.
            logger.error(
                "rasa returned no reply conversation=%s message=%s (is the action server up?)",
                conversation_id,
                admission.message_id,
            )
            return [await self._store_system(conversation_id, messages.NO_REPLY)]
        with timed_stage(timing, "store"):
            stored = await self._db(
                _store_replies, conversation_id=conversation_id, replies=replies
            )
        for event in stored.desk_events:
            await self._broker.publish(DESK_TOPIC, event)
        if timing is not None:
            timing.log(message_id=admission.message_id)
        return stored.outbound

    async def _rate(self, conversation_id: str, payload: str) -> OutboundMessage:
        """Store a one-tap rating (``/concierge_rate{"ticket_id": 1, "rating": 5}``)."""
        try:
            value = json.loads(payload[len(tickets.RATING_PAYLOAD_PREFIX) :])
            ticket_id, rating = int(value["ticket_id"]), int(value["rating"])
        except (ValueError, KeyError, TypeError):
            logger.info("malformed rating payload conversation=%s", conversation_id)
            return await self._store_system(conversation_id, messages.RATING_INVALID)
        try:
            await self._db(
                tickets.rate, conversation_id=conversation_id, ticket_id=ticket_id, rating=rating
            )
        except TicketError as exc:
            logger.info(
                "rating refused conversation=%s ticket=%s: %s", conversation_id, ticket_id, exc
            )
            return await self._store_system(conversation_id, exc.message)
        return await self._store_system(conversation_id, tickets.RATED)

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


def _locked_conversation(session: Session, conversation_id: str) -> Conversation:
    """The conversation row, locked for this transaction (``FOR UPDATE`` on PostgreSQL).

    On SQLite the transaction's first write takes the database's write lock instead.
    """
    conversation = session.get(Conversation, conversation_id, with_for_update=True)
    if conversation is None:
        raise conversations.ConversationNotFoundError(conversation_id)
    return conversation


def _admit_customer_message(
    session: Session,
    *,
    conversation_id: str,
    text: str,
    payload: dict[str, Any] | None,
    rate_limit: RateLimit | None = None,
) -> Admission:
    """Store the customer's message and decide who answers it, in one transaction."""
    conversation = _locked_conversation(session, conversation_id)
    message = conversations.add_message(
        session,
        conversation_id=conversation_id,
        role=MessageRole.CUSTOMER.value,
        text=text,
        payload=payload,
        commit=False,
    )
    # The chat rate limit (bot/chat/rate_limit.py), decided with the conversation locked;
    # messages to a person are never limited.
    rate = RateDecision()
    if rate_limit is not None and conversation.mode != ConversationMode.AGENT.value:
        rate = apply_rate_limit(session, message=message, limit=rate_limit)
    ticket = tickets.open_ticket_for(session, conversation_id=conversation_id)
    desk_event = None
    if ticket is not None:
        tickets.record_customer_message(session, ticket=ticket, message_id=message.id)
        desk_event = message_event(ticket, message)
    earlier: list[str] = []
    if conversation.mode == ConversationMode.BOT.value:
        earlier = _earlier_customer_texts(session, conversation_id, before=message.id)
    admission = Admission(
        message_id=message.id,
        mode=conversation.mode,
        rasa_paused=conversation.rasa_paused,
        ticket_id=ticket.id if ticket else None,
        desk_event=desk_event,
        earlier_texts=earlier,
        rate_limited=rate.limited,
        rate_limit_notice=rate.notify,
    )
    session.commit()
    return admission


def _earlier_customer_texts(session: Session, conversation_id: str, *, before: int) -> list[str]:
    from sqlalchemy import select

    rows = session.scalars(
        select(Message.text)
        .where(
            Message.conversation_id == conversation_id,
            Message.role == MessageRole.CUSTOMER.value,
            Message.id < before,
        )
        .order_by(Message.id.desc())
        .limit(EARLIER_TEXTS_FOR_FRUSTRATION)
    ).all()
    return list(reversed(rows))


def mark_rasa_resumed(session: Session, *, conversation_id: str) -> None:
    """Record that Rasa's tracker was resumed (unless a person took over again)."""
    conversation = _locked_conversation(session, conversation_id)
    if conversation.mode != ConversationMode.AGENT.value:
        conversation.rasa_paused = False
    session.commit()


class StoredReplies(BaseModel):
    """Rasa's replies as stored, and what the desk must be told."""

    outbound: list[OutboundMessage]
    desk_events: list[dict[str, Any]] = Field(default_factory=list)


def _store_replies(
    session: Session, *, conversation_id: str, replies: list[BotReply]
) -> StoredReplies:
    """Store Rasa's replies in one commit, unless a person took over meanwhile.

    A person who claimed the ticket while Rasa was still working on the turn owns the
    conversation: the late replies are kept for the record as ``withheld`` and never
    shown to the customer.
    """
    conversation = _locked_conversation(session, conversation_id)
    withheld = conversation.mode == ConversationMode.AGENT.value
    status = MessageStatus.WITHHELD.value if withheld else MessageStatus.DELIVERED.value
    stored: list[Message] = [
        conversations.add_message(
            session,
            conversation_id=conversation_id,
            role=MessageRole.BOT.value,
            text=reply.text or "",
            payload=reply_payload(reply),
            status=status,
            commit=False,
        )
        for reply in replies
    ]
    ticket: Ticket | None = tickets.open_ticket_for(session, conversation_id=conversation_id)
    session.commit()
    if withheld:
        logger.info(
            "conversation=%s was taken over during the turn; %s bot replies withheld",
            conversation_id,
            len(stored),
        )
    events = [message_event(ticket, message) for message in stored] if ticket else []
    outbound = [] if withheld else [OutboundMessage.from_message(m) for m in stored]
    return StoredReplies(outbound=outbound, desk_events=events)
