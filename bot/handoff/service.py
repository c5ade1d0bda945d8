"""The ticket state machine: open, claim, reply, note, transfer, resolve, hand back, rate.

Every function takes an open session, does its whole change in one transaction and
commits it, with one audit event per step (``bot.audit``). Who owns the conversation
(``Conversation.mode``) changes only here, in the same transaction as the ticket.
Races between processes are settled by the database, never by check-then-write:

* one open ticket per conversation: the partial unique index
  ``uq_tickets_open_conversation`` (a losing insert reads the winner's ticket);
* one agent per ticket: ``claim_ticket`` is a single conditional ``UPDATE``.

Functions return what the caller must announce (desk and customer events); the async
layer in :mod:`bot.handoff.desk` publishes them after the commit and tells Rasa.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import bot.db.models  # noqa: F401  (every table must be mapped before the first query)
from bot.accounts.models import DEFAULT_TEAM_SLUG, Account, Contact, Segment, Team, Tier
from bot.agents.models import Agent, Role
from bot.audit.service import record_event
from bot.conversations.models import (
    Conversation,
    ConversationMode,
    Message,
    MessageRole,
)
from bot.conversations.service import add_message, ensure_conversation
from bot.db.base import utcnow
from bot.handoff.availability import Availability, team_availability
from bot.handoff.errors import (
    InvalidTicketInputError,
    TicketClosedError,
    TicketConflictError,
    TicketNotFoundError,
    TicketPermissionError,
)
from bot.handoff.models import (
    OPEN_TICKET_STATUSES,
    Priority,
    ReasonCode,
    Ticket,
    TicketStatus,
)
from bot.handoff.summary import summarize

logger = logging.getLogger(__name__)

ACTOR_ACTION_SERVER = "action_server"
ACTOR_CUSTOMER = "customer"
RATING_PAYLOAD_PREFIX = "/concierge_rate"
MIN_RATING, MAX_RATING = 1, 5

# What the customer reads when the desk changes the conversation (system messages).
JOINED = "{agent} from our {team} team has joined the chat."
TRANSFERRED = "I've passed your conversation to our {team} team; they'll continue here."
HANDED_BACK = (
    "You're back with Concierge, our assistant. Ask me anything — or type "
    '"talk to a person" to reach the team again.'
)
RESOLVED = "{agent} has marked your request as resolved. How did we do?"
WITHDRAWN = "No problem — I've cancelled the request for a person."
RATED = "Thank you for your rating!"


def rating_payload(ticket_id: int, rating: int) -> str:
    """The button payload of a one-tap rating; the bot service handles it, not Rasa."""
    return RATING_PAYLOAD_PREFIX + json.dumps({"ticket_id": ticket_id, "rating": rating})


def actor_for(agent: Agent) -> str:
    """The audit actor string of an agent."""
    return f"agent:{agent.id}"


@dataclass(frozen=True)
class TicketOpened:
    """The outcome of a handoff request."""

    ticket: Ticket
    created: bool
    availability: Availability


@dataclass
class TicketChange:
    """A committed desk change: the ticket and the messages the customer must be sent."""

    ticket: Ticket
    customer_messages: list[Message] = field(default_factory=list)
    note: Message | None = None
    rasa: str | None = None  # "pause" or "resume": what Rasa's tracker must be told


# -- opening -------------------------------------------------------------------------------


def route_team(session: Session, *, account: Account | None) -> Team | None:
    """Pick the team for a handoff: a business account's dedicated team, else Customer Care.

    Args:
        session: The open session.
        account: The account claimed in the conversation, if any (may be unverified).

    Returns:
        The team, or ``None`` if not even the default team exists.
    """
    if account is not None and account.segment == Segment.B2B.value and account.team is not None:
        return account.team
    team = session.scalars(select(Team).where(Team.slug == DEFAULT_TEAM_SLUG)).first()
    if team is None:
        logger.warning("no %r team exists; the ticket is unrouted", DEFAULT_TEAM_SLUG)
    return team


def ticket_priority(*, reason_code: str, account: Account | None) -> int:
    """Automatic priority from why the customer came and who they are.

    Business accounts and gold/enterprise tiers are high; frustration raises a ticket
    one step; everything else is normal.

    Args:
        reason_code: The ticket's reason code.
        account: The claimed account, if any.

    Returns:
        A :class:`Priority` value.
    """
    priority = Priority.NORMAL
    if account is not None and (
        account.segment == Segment.B2B.value
        or account.tier in (Tier.GOLD.value, Tier.ENTERPRISE.value)
    ):
        priority = Priority.HIGH
    if reason_code in (ReasonCode.FRUSTRATION.value, ReasonCode.REPEATED_NO_ANSWER.value):
        priority = Priority(min(priority + 1, Priority.URGENT))
    return int(priority)


def open_ticket_for(session: Session, *, conversation_id: str) -> Ticket | None:
    """Return the conversation's open (queued or assigned) ticket, if any."""
    return session.scalars(
        select(Ticket).where(
            Ticket.conversation_id == conversation_id,
            Ticket.status.in_(OPEN_TICKET_STATUSES),
        )
    ).first()


def _locked_open_ticket(session: Session, conversation_id: str) -> Ticket | None:
    """The conversation's open ticket, its row locked (``FOR UPDATE`` on PostgreSQL).

    A ticket an agent closed while we waited for the lock is not returned: the caller
    opens a new one instead of refreshing a closed one.
    """
    found = open_ticket_for(session, conversation_id=conversation_id)
    if found is None:
        return None
    ticket = session.get(Ticket, found.id, with_for_update={"of": Ticket}, populate_existing=True)
    if ticket is None or not ticket.is_open:
        session.refresh(_conversation_of(session, conversation_id))  # closing changed its mode
        return None
    return ticket


def _conversation_of(session: Session, conversation_id: str) -> Conversation:
    conversation = session.get(Conversation, conversation_id)
    assert conversation is not None
    return conversation


def _customer_texts(session: Session, conversation_id: str) -> list[str]:
    return list(
        session.scalars(
            select(Message.text)
            .where(
                Message.conversation_id == conversation_id,
                Message.role == MessageRole.CUSTOMER.value,
            )
            .order_by(Message.id)
        )
    )


def _claimed_account(
    session: Session, conversation: Conversation
) -> tuple[int | None, Account | None]:
    if conversation.contact_id is None:
        return None, None
    contact = session.get(Contact, conversation.contact_id)
    if contact is None:
        return None, None
    return contact.id, contact.account


def open_ticket(
    session: Session,
    *,
    conversation_id: str,
    reason_code: str,
    reason: str,
    context: dict[str, Any],
    channel: str | None = None,
) -> TicketOpened:
    """Hand a conversation to a person; safe to call twice, and from two processes at once.

    A new ticket is routed (:func:`route_team`), prioritised and summarised; the
    conversation's mode becomes ``handoff_pending`` (the bot still answers while the
    customer waits). If the conversation already has an open ticket, its context is
    refreshed (the first reason is kept) and it is returned with ``created=False``.

    Args:
        session: The open session (committed here).
        conversation_id: The conversation (Rasa sender id).
        reason_code: A :class:`ReasonCode` value.
        reason: The reason in a few human words.
        context: JSON-ready facts the bot collected (turns, knowledge attempts, claims).
        channel: The customer's channel, if known.

    Returns:
        The ticket, whether it was created now, and the team's availability.
    """
    conversation = ensure_conversation(session, conversation_id=conversation_id)
    contact_id, account = _claimed_account(session, conversation)
    existing = _locked_open_ticket(session, conversation_id)
    created = False
    if existing is None:
        team = route_team(session, account=account)
        # The stored transcript; the bot's own record of the turns when no channel
        # stored one (e.g. ``rasa shell``).
        said = _customer_texts(session, conversation_id) or [
            str(turn.get("text") or "") for turn in context.get("turns") or []
        ]
        summary = summarize(customer_texts=said, reason=reason, context=context)
        ticket = Ticket(
            conversation_id=conversation_id,
            status=TicketStatus.QUEUED.value,
            reason_code=reason_code,
            reason=reason,
            priority=ticket_priority(reason_code=reason_code, account=account),
            team_id=team.id if team else None,
            contact_id=contact_id,
            account_id=account.id if account else None,
            channel=channel or conversation.channel,
            language=conversation.language,
            summary=summary,
            context=dict(context),
        )
        try:
            with session.begin_nested():
                session.add(ticket)
            created = True
        except IntegrityError:
            # Another process opened one between our read and our insert: use theirs.
            existing = open_ticket_for(session, conversation_id=conversation_id)
            if existing is None:
                raise
    if existing is not None:
        ticket = existing
        fresh = {k: v for k, v in context.items() if k not in ("reason", "reason_code")}
        ticket.context = {**(ticket.context or {}), **fresh}
        if ticket.contact_id is None and contact_id is not None:
            ticket.contact_id, ticket.account_id = contact_id, account.id if account else None
    if conversation.mode == ConversationMode.BOT.value:
        conversation.mode = ConversationMode.HANDOFF_PENDING.value
    session.flush()
    record_event(
        session,
        actor=ACTOR_ACTION_SERVER,
        action="ticket.created" if created else "ticket.updated",
        conversation_id=conversation_id,
        account_id=ticket.account_id,
        ticket_id=ticket.id,
        details={
            "reason_code": ticket.reason_code,
            "team": ticket.team.slug if ticket.team else None,
            "priority": ticket.priority,
        },
    )
    session.commit()
    availability = team_availability(session, team=ticket.team, now=utcnow())
    logger.info(
        "ticket %s conversation=%s ticket=%s team=%s reason=%s",
        "created" if created else "refreshed",
        conversation_id,
        ticket.id,
        ticket.team.slug if ticket.team else None,
        ticket.reason_code,
    )
    return TicketOpened(ticket=ticket, created=created, availability=availability)


# -- reading -------------------------------------------------------------------------------


def may_work(agent: Agent, ticket: Ticket) -> bool:
    """Whether an agent may see and act on a ticket: it is in one of their teams.

    Admins see every team's tickets; editors see none.
    """
    if not agent.is_active or agent.role == Role.EDITOR.value:
        return False
    if agent.role == Role.ADMIN.value:
        return True
    return ticket.team_id is not None and ticket.team_id in agent.team_ids


def get_ticket_for(session: Session, *, ticket_id: int, agent: Agent) -> Ticket:
    """Return a ticket the agent may work.

    Raises:
        TicketNotFoundError: No such ticket, or not in the agent's teams (indistinguishable).
    """
    ticket = session.get(Ticket, ticket_id)
    if ticket is None or not may_work(agent, ticket):
        raise TicketNotFoundError(ticket_id)
    return ticket


def queue(session: Session, *, agent: Agent, include_assigned: bool = True) -> list[Ticket]:
    """The agent's open tickets: their teams', by priority (highest first), then age.

    Args:
        session: The open session.
        agent: The signed-in agent.
        include_assigned: Also list tickets already claimed.

    Returns:
        Open tickets, most urgent first.
    """
    statuses = OPEN_TICKET_STATUSES if include_assigned else (TicketStatus.QUEUED.value,)
    query = select(Ticket).where(Ticket.status.in_(statuses))
    if agent.role != Role.ADMIN.value:
        query = query.where(Ticket.team_id.in_(agent.team_ids or {-1}))
    return list(
        session.scalars(query.order_by(Ticket.priority.desc(), Ticket.created_at, Ticket.id))
    )


# -- desk actions --------------------------------------------------------------------------


def _open_for(session: Session, ticket_id: int, agent: Agent) -> Ticket:
    """The open ticket, its row locked for this transaction (``FOR UPDATE`` on PostgreSQL).

    A desk step checks the ticket's state and then writes it; with the row locked, a
    step racing it (a resolve, an assignment, a withdrawal) waits and is checked against
    the result, instead of being overwritten. On SQLite the first write takes the
    database's write lock instead.
    """
    session.get(
        Ticket, ticket_id, with_for_update={"of": Ticket}, populate_existing=True
    )  # locks and refreshes the row; the check below reads it from the session
    ticket = get_ticket_for(session, ticket_id=ticket_id, agent=agent)
    if not ticket.is_open:
        raise TicketClosedError(ticket_id)
    return ticket


def _require_owner(ticket: Ticket, agent: Agent) -> None:
    if ticket.status != TicketStatus.ASSIGNED.value:
        raise TicketConflictError(ticket.id, "Claim this ticket before you reply.")
    if ticket.assignee_id != agent.id and agent.role not in (Role.LEAD.value, Role.ADMIN.value):
        raise TicketConflictError(ticket.id, "Another agent is working on this ticket.")


def _system(session: Session, conversation_id: str, text: str, **payload: Any) -> Message:
    return add_message(
        session,
        conversation_id=conversation_id,
        role=MessageRole.SYSTEM.value,
        text=text,
        payload=payload or None,
        commit=False,
    )


def _first_name(agent: Agent) -> str:
    return agent.name.split()[0] if agent.name.strip() else "An agent"


def claim_ticket(session: Session, *, ticket_id: int, agent: Agent) -> TicketChange:
    """Take a queued ticket: the agent owns the conversation from now on.

    One conditional ``UPDATE … WHERE status = 'queued'``: of two agents claiming at the
    same moment (in any two processes), exactly one wins.

    Raises:
        TicketNotFoundError: Not a ticket of the agent's teams.
        TicketConflictError: Someone else claimed it first, or it is closed.
    """
    ticket = get_ticket_for(session, ticket_id=ticket_id, agent=agent)
    conditions = [Ticket.id == ticket_id, Ticket.status == TicketStatus.QUEUED.value]
    if agent.role != Role.ADMIN.value:
        conditions.append(Ticket.team_id.in_(agent.team_ids or {-1}))
    now = utcnow()
    won = _rowcount(
        session.execute(
            update(Ticket)
            .where(*conditions)
            .values(
                status=TicketStatus.ASSIGNED.value,
                assignee_id=agent.id,
                assigned_at=now,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
    )
    if won != 1:
        session.rollback()
        session.refresh(ticket)
        if not ticket.is_open:
            raise TicketClosedError(ticket_id)
        holder = ticket.assignee.name if ticket.assignee else "another agent"
        raise TicketConflictError(ticket_id, f"{holder} has already claimed this ticket.")
    session.refresh(ticket)
    conversation = session.get(Conversation, ticket.conversation_id, with_for_update=True)
    assert conversation is not None
    conversation.mode = ConversationMode.AGENT.value
    conversation.rasa_paused = True
    team = ticket.team.name if ticket.team else "support"
    joined = _system(
        session, ticket.conversation_id, JOINED.format(agent=_first_name(agent), team=team)
    )
    _audit(session, ticket, agent, "ticket.assigned", {"assignee_id": agent.id})
    session.commit()
    logger.info("ticket claimed ticket=%s agent=%s", ticket.id, agent.id)
    return TicketChange(ticket=ticket, customer_messages=[joined], rasa="pause")


def assign_ticket(
    session: Session, *, ticket_id: int, lead: Agent, assignee_id: int
) -> TicketChange:
    """A lead gives an open ticket to an agent of its team.

    Raises:
        TicketPermissionError: The actor is not a lead or admin.
        InvalidTicketInputError: The assignee is not an active agent of the ticket's team.
    """
    if lead.role not in (Role.LEAD.value, Role.ADMIN.value):
        raise TicketPermissionError(ticket_id, "Only a team lead can assign tickets.")
    ticket = _open_for(session, ticket_id, lead)
    assignee = session.get(Agent, assignee_id)
    if assignee is None or not assignee.is_active or ticket.team_id not in assignee.team_ids:
        raise InvalidTicketInputError(ticket_id, "Choose an active agent of this ticket's team.")
    was_queued = ticket.status == TicketStatus.QUEUED.value
    ticket.status, ticket.assignee_id = TicketStatus.ASSIGNED.value, assignee.id
    ticket.assigned_at = ticket.assigned_at or utcnow()
    conversation = session.get(Conversation, ticket.conversation_id, with_for_update=True)
    assert conversation is not None
    conversation.mode, conversation.rasa_paused = ConversationMode.AGENT.value, True
    messages = []
    if was_queued:
        team = ticket.team.name if ticket.team else "support"
        messages.append(
            _system(
                session,
                ticket.conversation_id,
                JOINED.format(agent=_first_name(assignee), team=team),
            )
        )
    _audit(session, ticket, lead, "ticket.assigned", {"assignee_id": assignee.id})
    session.commit()
    session.refresh(ticket)
    return TicketChange(ticket=ticket, customer_messages=messages, rasa="pause")


def _checked_text(ticket_id: int, text: str, limit: int) -> str:
    text = text.strip()
    if not text:
        raise InvalidTicketInputError(ticket_id, "Type a message first.")
    if len(text) > limit:
        raise InvalidTicketInputError(
            ticket_id, f"That message is too long ({len(text)} characters; the limit is {limit})."
        )
    return text


def reply(
    session: Session,
    *,
    ticket_id: int,
    agent: Agent,
    text: str,
    max_chars: int,
    attachment_ids: tuple[int, ...] = (),
) -> TicketChange:
    """Send the customer a message from the agent who owns the ticket.

    Raises:
        TicketClosedError: The ticket is closed (a reply to a resolved ticket).
        TicketConflictError: The ticket is not claimed by this agent.
        InvalidTicketInputError: Empty or too long.
    """
    ticket = _open_for(session, ticket_id, agent)
    _require_owner(ticket, agent)
    text = _checked_text(ticket_id, text, max_chars)
    payload: dict[str, Any] = {"agent_name": agent.name}
    if attachment_ids:
        payload["attachments"] = list(attachment_ids)
    message = add_message(
        session,
        conversation_id=ticket.conversation_id,
        role=MessageRole.AGENT.value,
        text=text,
        payload=payload,
        agent_id=agent.id,
        commit=False,
    )
    session.flush()
    _link_attachments(session, ticket.conversation_id, message.id, attachment_ids)
    if ticket.first_agent_reply_at is None:
        ticket.first_agent_reply_at = message.created_at
    _audit(session, ticket, agent, "ticket.message", {"message_id": message.id})
    session.commit()
    return TicketChange(ticket=ticket, customer_messages=[message])


def _link_attachments(
    session: Session, conversation_id: str, message_id: int, attachment_ids: tuple[int, ...]
) -> None:
    from bot.conversations.models import Attachment

    for attachment_id in attachment_ids:
        attachment = session.get(Attachment, attachment_id)
        if attachment is None or attachment.conversation_id != conversation_id:
            raise InvalidTicketInputError(None, "That attachment doesn't belong to this chat.")
        attachment.message_id = message_id


def add_note(
    session: Session, *, ticket_id: int, agent: Agent, text: str, max_chars: int
) -> TicketChange:
    """Add an internal note to the ticket's transcript; the customer never sees it.

    Raises:
        TicketNotFoundError: Not a ticket of the agent's teams.
        InvalidTicketInputError: Empty or too long.
    """
    ticket = get_ticket_for(session, ticket_id=ticket_id, agent=agent)
    text = _checked_text(ticket_id, text, max_chars)
    note = add_message(
        session,
        conversation_id=ticket.conversation_id,
        role=MessageRole.AGENT.value,
        text=text,
        payload={"agent_name": agent.name},
        agent_id=agent.id,
        private=True,
        commit=False,
    )
    session.flush()
    _audit(session, ticket, agent, "ticket.note", {"message_id": note.id})
    session.commit()
    return TicketChange(ticket=ticket, note=note)


def transfer(
    session: Session, *, ticket_id: int, agent: Agent, team_id: int, note: str = ""
) -> TicketChange:
    """Move an open ticket to another team's queue (unassigned there).

    A conversation a person already owns stays with people (mode ``agent``).

    Raises:
        InvalidTicketInputError: Unknown team, or the ticket's own team.
    """
    ticket = _open_for(session, ticket_id, agent)
    team = session.get(Team, team_id)
    if team is None or team.id == ticket.team_id:
        raise InvalidTicketInputError(ticket_id, "Choose another team to transfer to.")
    previous = ticket.team.slug if ticket.team else None
    ticket.team_id, ticket.status, ticket.assignee_id = team.id, TicketStatus.QUEUED.value, None
    moved = _system(session, ticket.conversation_id, TRANSFERRED.format(team=team.name))
    details: dict[str, Any] = {"from": previous, "to": team.slug}
    if note.strip():
        details["note"] = note.strip()[:1000]
    _audit(session, ticket, agent, "ticket.transferred", details)
    session.commit()
    session.refresh(ticket)
    return TicketChange(ticket=ticket, customer_messages=[moved])


def _close(
    session: Session, ticket: Ticket, status: TicketStatus, customer_text: str, **payload: Any
) -> list[Message]:
    now = utcnow()
    ticket.status, ticket.closed_at = status.value, now
    conversation = session.get(Conversation, ticket.conversation_id, with_for_update=True)
    assert conversation is not None
    conversation.mode = ConversationMode.BOT.value
    return [_system(session, ticket.conversation_id, customer_text, **payload)]


def resolve(session: Session, *, ticket_id: int, agent: Agent, note: str) -> TicketChange:
    """Close the ticket as solved, with a note; the customer is offered a one-tap rating.

    Raises:
        TicketClosedError: Already closed.
    """
    ticket = _open_for(session, ticket_id, agent)
    ticket.resolution_note = note.strip()[:5000] or None
    buttons = [
        {"title": f"{n} ★", "payload": rating_payload(ticket.id, n)}
        for n in range(MAX_RATING, MIN_RATING - 1, -1)
    ]
    messages = _close(
        session,
        ticket,
        TicketStatus.RESOLVED,
        RESOLVED.format(agent=_first_name(agent)),
        buttons=buttons,
    )
    _audit(session, ticket, agent, "ticket.resolved", {"note": ticket.resolution_note})
    session.commit()
    return TicketChange(ticket=ticket, customer_messages=messages, rasa="resume")


def hand_back(session: Session, *, ticket_id: int, agent: Agent) -> TicketChange:
    """Give the conversation back to the bot, which answers the next question itself.

    Raises:
        TicketClosedError: Already closed.
    """
    ticket = _open_for(session, ticket_id, agent)
    messages = _close(session, ticket, TicketStatus.HANDED_BACK, HANDED_BACK)
    _audit(session, ticket, agent, "ticket.handed_back", {})
    session.commit()
    return TicketChange(ticket=ticket, customer_messages=messages, rasa="resume")


def withdraw(session: Session, *, conversation_id: str) -> Ticket | None:
    """The customer no longer needs a person: close a queued ticket with that reason.

    Only a ticket still waiting in the queue can be withdrawn; once a person owns the
    conversation the customer's words go to that person, not to the bot.

    Args:
        session: The open session (committed here).
        conversation_id: The conversation.

    Returns:
        The withdrawn ticket, or ``None`` when there was no queued ticket.
    """
    ticket = open_ticket_for(session, conversation_id=conversation_id)
    if ticket is None or ticket.status != TicketStatus.QUEUED.value:
        return None
    # One conditional UPDATE, as in claim_ticket: a claim committed since the read above
    # wins (the customer's words then go to that person), never a lost update.
    now = utcnow()
    withdrawn = _rowcount(
        session.execute(
            update(Ticket)
            .where(Ticket.id == ticket.id, Ticket.status == TicketStatus.QUEUED.value)
            .values(status=TicketStatus.WITHDRAWN.value, closed_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    )
    if withdrawn != 1:
        session.rollback()
        logger.info(
            "withdrawal too late conversation=%s ticket=%s (claimed or closed meanwhile)",
            conversation_id,
            ticket.id,
        )
        return None
    session.refresh(ticket)
    conversation = session.get(Conversation, conversation_id, with_for_update=True)
    if conversation is not None and conversation.mode == ConversationMode.HANDOFF_PENDING.value:
        conversation.mode = ConversationMode.BOT.value
    record_event(
        session,
        actor=ACTOR_CUSTOMER,
        action="ticket.withdrawn",
        conversation_id=conversation_id,
        account_id=ticket.account_id,
        ticket_id=ticket.id,
        details={"reason": "customer no longer needs a person"},
    )
    session.commit()
    logger.info("ticket withdrawn conversation=%s ticket=%s", conversation_id, ticket.id)
    return ticket


def rate(session: Session, *, conversation_id: str, ticket_id: int, rating: int) -> Ticket:
    """Store the customer's satisfaction rating of a resolved ticket (once).

    Raises:
        TicketNotFoundError: Not a resolved ticket of this conversation.
        TicketConflictError: Already rated.
        InvalidTicketInputError: Rating outside 1–5.
    """
    if not MIN_RATING <= rating <= MAX_RATING:
        raise InvalidTicketInputError(ticket_id, "Ratings go from 1 to 5.")
    ticket = session.get(Ticket, ticket_id)
    if (
        ticket is None
        or ticket.conversation_id != conversation_id
        or ticket.status != TicketStatus.RESOLVED.value
    ):
        raise TicketNotFoundError(ticket_id)
    won = _rowcount(
        session.execute(
            update(Ticket)
            .where(Ticket.id == ticket_id, Ticket.rating.is_(None))
            .values(rating=rating, rated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
    )
    if won != 1:
        session.rollback()
        raise TicketConflictError(ticket_id, "You've already rated this conversation. Thank you!")
    record_event(
        session,
        actor=ACTOR_CUSTOMER,
        action="ticket.rated",
        conversation_id=conversation_id,
        account_id=ticket.account_id,
        ticket_id=ticket_id,
        details={"rating": rating},
    )
    session.commit()
    session.refresh(ticket)
    return ticket


def record_customer_message(session: Session, *, ticket: Ticket, message_id: int) -> None:
    """Audit a customer message that arrived while a ticket is open (caller commits)."""
    record_event(
        session,
        actor=ACTOR_CUSTOMER,
        action="ticket.message",
        conversation_id=ticket.conversation_id,
        account_id=ticket.account_id,
        ticket_id=ticket.id,
        details={"message_id": message_id},
    )


def _rowcount(result: Any) -> int:
    """Rows matched by an ``UPDATE`` (a ``CursorResult``; typed loosely by SQLAlchemy)."""
    return int(result.rowcount)


def _audit(
    session: Session, ticket: Ticket, agent: Agent, action: str, details: dict[str, Any]
) -> None:
    record_event(
        session,
        actor=actor_for(agent),
        action=action,
        conversation_id=ticket.conversation_id,
        account_id=ticket.account_id,
        ticket_id=ticket.id,
        details=details,
    )


def since(moment: dt.datetime | None) -> float | None:
    """Seconds from ``moment`` until now (for waiting times), or ``None``."""
    return (utcnow() - moment).total_seconds() if moment is not None else None
