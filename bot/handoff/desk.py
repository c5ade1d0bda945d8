"""What the desk does, end to end: change the ticket, tell the pages, keep Rasa true.

Each method runs one :mod:`bot.handoff.service` step in a worker thread (one
transaction), then, after the commit, publishes the change to the desk and the
customer's open pages through the broker, and tells Rasa's tracker of a takeover
(``pause``) or hand-back (``resume``). If Rasa cannot be told of a hand-back now, the
conversation keeps ``rasa_paused`` and the turn handler resumes Rasa before the next
customer message is forwarded, so nothing is lost either way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
from sqlalchemy.orm import Session, sessionmaker

from bot.agents.models import Agent
from bot.chat.service import OutboundMessage, mark_rasa_resumed
from bot.handoff import service
from bot.handoff.events import message_event, ticket_event
from bot.handoff.models import CLOSED_TICKET_STATUSES
from bot.rasa_client import RasaClient, RasaError
from bot.realtime.broker import DESK_TOPIC, Broker, conversation_topic

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


class Desk:
    """The agent desk's actions on tickets (shared by the web desk, tests and benches)."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        broker: Broker,
        rasa_client: RasaClient,
        max_reply_chars: int,
    ) -> None:
        """Create the desk.

        Args:
            session_factory: Opens app-database sessions.
            broker: Delivers events to desk and customer pages.
            rasa_client: Tells Rasa's tracker of takeovers and hand-backs.
            max_reply_chars: Longest agent reply or note.
        """
        self._session_factory = session_factory
        self._broker = broker
        self._rasa = rasa_client
        self._max_chars = max_reply_chars

    async def _db(self, func: Callable[..., _T], /, **kwargs: Any) -> _T:
        def run() -> _T:
            with self._session_factory() as session:
                agent = kwargs.pop("agent_id", None)
                if agent is not None:
                    kwargs["agent"] = _load_agent(session, agent)
                return func(session, **kwargs)

        return await anyio.to_thread.run_sync(run)

    async def claim(self, *, ticket_id: int, agent_id: int) -> service.TicketChange:
        """Claim a queued ticket (exactly one of two racing agents wins)."""
        change = await self._db(service.claim_ticket, ticket_id=ticket_id, agent_id=agent_id)
        await self._announce(change, "ticket.assigned")
        return change

    async def assign(
        self, *, ticket_id: int, agent_id: int, assignee_id: int
    ) -> service.TicketChange:
        """A lead assigns a ticket to an agent of its team."""
        change = await self._db(
            _assign, ticket_id=ticket_id, agent_id=agent_id, assignee_id=assignee_id
        )
        await self._announce(change, "ticket.assigned")
        return change

    async def reply(
        self, *, ticket_id: int, agent_id: int, text: str, attachment_ids: tuple[int, ...] = ()
    ) -> service.TicketChange:
        """Send the customer a reply; it reaches their open page at once."""
        change = await self._db(
            service.reply,
            ticket_id=ticket_id,
            agent_id=agent_id,
            text=text,
            max_chars=self._max_chars,
            attachment_ids=attachment_ids,
        )
        await self._announce(change, "ticket.updated")
        return change

    async def note(self, *, ticket_id: int, agent_id: int, text: str) -> service.TicketChange:
        """Add an internal note (never sent to the customer)."""
        change = await self._db(
            service.add_note,
            ticket_id=ticket_id,
            agent_id=agent_id,
            text=text,
            max_chars=self._max_chars,
        )
        await self._announce(change, "ticket.updated")
        return change

    async def transfer(
        self, *, ticket_id: int, agent_id: int, team_id: int, note: str = ""
    ) -> service.TicketChange:
        """Move the ticket to another team's queue."""
        change = await self._db(
            service.transfer, ticket_id=ticket_id, agent_id=agent_id, team_id=team_id, note=note
        )
        await self._announce(change, "ticket.transferred")
        return change

    async def resolve(self, *, ticket_id: int, agent_id: int, note: str) -> service.TicketChange:
        """Resolve the ticket; the customer is offered a rating and the bot answers again."""
        change = await self._db(service.resolve, ticket_id=ticket_id, agent_id=agent_id, note=note)
        await self._announce(change, "ticket.closed")
        return change

    async def hand_back(self, *, ticket_id: int, agent_id: int) -> service.TicketChange:
        """Give the conversation back to the bot."""
        change = await self._db(service.hand_back, ticket_id=ticket_id, agent_id=agent_id)
        await self._announce(change, "ticket.closed")
        return change

    async def _announce(self, change: service.TicketChange, kind: str) -> None:
        ticket = change.ticket
        if ticket.status in CLOSED_TICKET_STATUSES:
            kind = "ticket.closed"
        await self._broker.publish(DESK_TOPIC, ticket_event(kind, ticket))
        for message in change.customer_messages:
            await self._broker.publish(DESK_TOPIC, message_event(ticket, message))
            outbound = OutboundMessage.from_message(message)
            await self._broker.publish(
                conversation_topic(ticket.conversation_id),
                {"type": "message", **outbound.model_dump(mode="json")},
            )
        if change.note is not None:
            await self._broker.publish(DESK_TOPIC, message_event(ticket, change.note))
        if change.rasa is not None:
            await self._tell_rasa(ticket.conversation_id, change.rasa)

    async def _tell_rasa(self, conversation_id: str, what: str) -> None:
        try:
            if what == "pause":
                await self._rasa.pause(sender_id=conversation_id)
            else:
                await self._rasa.resume(sender_id=conversation_id)
                await anyio.to_thread.run_sync(self._mark_resumed, conversation_id)
        except RasaError as exc:
            # Not lost: rasa_paused stays set, and the next customer turn resumes first.
            logger.warning(
                "could not tell rasa %s conversation=%s: %s", what, conversation_id, exc.message
            )

    def _mark_resumed(self, conversation_id: str) -> None:
        with self._session_factory() as session:
            mark_rasa_resumed(session, conversation_id=conversation_id)


def _load_agent(session: Session, agent_id: int) -> Agent:
    agent = session.get(Agent, agent_id)
    if agent is None or not agent.is_active:
        raise service.TicketPermissionError(None, "Your account is not active.")
    return agent


def _assign(session: Session, *, ticket_id: int, agent: Agent, assignee_id: int) -> Any:
    return service.assign_ticket(session, ticket_id=ticket_id, lead=agent, assignee_id=assignee_id)
