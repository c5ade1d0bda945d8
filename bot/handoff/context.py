"""What an agent sees of one ticket, read in one go: the desk's context view model.

:func:`ticket_context` gathers, for a ticket the agent may work, who the customer is
(marked unverified until ``Ticket.identity_verified``), what the bot understood (the
turns' intents with confidences and entities) and tried (knowledge attempts, articles
offered and answered, and the customer's feedback on them), the agent's transcript
(with internal notes and withheld bot replies), the same customer's earlier
conversations and tickets, and the ticket's audit log. :func:`queue_items` is the
queue page's smaller view of many tickets.

Everything here only reads; the models are plain pydantic objects, so the routes can
render them in templates or return them as JSON.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import bot.db.models  # noqa: F401  (every table must be mapped before the first query)
from bot.accounts.models import Contact, Team
from bot.agents.models import Agent, Role
from bot.audit.models import AuditEvent
from bot.conversations.models import (
    Attachment,
    Conversation,
    Message,
    MessageRole,
    MessageStatus,
)
from bot.conversations.service import history
from bot.db.base import utcnow
from bot.handoff.models import CannedReply, Priority, Ticket, TicketStatus
from bot.handoff.service import get_ticket_for, may_work, queue

logger = logging.getLogger(__name__)

FEEDBACK_ACTION = "kb.feedback"
MAX_EARLIER_CONVERSATIONS = 10
MAX_EARLIER_TICKETS = 20
MAX_AUDIT_EVENTS = 500
SUMMARY_PREVIEW_CHARS = 160

STATUS_LABELS: Mapping[str, str] = {
    TicketStatus.QUEUED.value: "Waiting in queue",
    TicketStatus.ASSIGNED.value: "Assigned",
    TicketStatus.RESOLVED.value: "Resolved",
    TicketStatus.HANDED_BACK.value: "Handed back to the bot",
    TicketStatus.WITHDRAWN.value: "Withdrawn by the customer",
}
ROLE_LABELS: Mapping[str, str] = {
    MessageRole.CUSTOMER.value: "Customer",
    MessageRole.BOT.value: "Bot",
    MessageRole.AGENT.value: "Agent",
    MessageRole.SYSTEM.value: "System",
}


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


def priority_label(priority: int) -> str:
    """The human name of a priority value (``High``), or the number if it is unknown."""
    try:
        return Priority(priority).name.title()
    except ValueError:
        return str(priority)


def duration_label(seconds: float | None) -> str:
    """A short human duration: ``45 s``, ``12 min``, ``3 h 5 min``, ``2 d 4 h``."""
    if seconds is None:
        return "—"
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def _seconds(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


# -- the ticket --------------------------------------------------------------------------------


class TicketSummary(_View):
    """The ticket's own facts, as the status panel and the queue show them.

    Attributes:
        waiting_seconds: How long the customer has waited for (or waited before) a
            person: until now while queued, until the claim once assigned.
    """

    id: int
    conversation_id: str
    status: str
    status_label: str
    is_open: bool
    priority: int
    priority_label: str
    reason_code: str
    reason: str
    summary: str
    channel: str
    language: str
    team_id: int | None
    team_name: str | None
    assignee_id: int | None
    assignee_name: str | None
    created_at: dt.datetime
    assigned_at: dt.datetime | None
    first_agent_reply_at: dt.datetime | None
    closed_at: dt.datetime | None
    waiting_seconds: float | None
    waiting_label: str
    resolution_note: str | None
    rating: int | None

    @classmethod
    def of(cls, ticket: Ticket, *, now: dt.datetime | None = None) -> TicketSummary:
        """Describe a ticket (its team and assignee must be loaded or loadable)."""
        now = now or utcnow()
        if ticket.status == TicketStatus.QUEUED.value:
            waited = _seconds(ticket.created_at, now)
        else:
            waited = _seconds(ticket.created_at, ticket.assigned_at or ticket.closed_at)
        return cls(
            id=ticket.id,
            conversation_id=ticket.conversation_id,
            status=ticket.status,
            status_label=STATUS_LABELS.get(ticket.status, ticket.status),
            is_open=ticket.is_open,
            priority=ticket.priority,
            priority_label=priority_label(ticket.priority),
            reason_code=ticket.reason_code,
            reason=ticket.reason,
            summary=ticket.summary,
            channel=ticket.channel,
            language=ticket.language,
            team_id=ticket.team_id,
            team_name=ticket.team.name if ticket.team else None,
            assignee_id=ticket.assignee_id,
            assignee_name=ticket.assignee.name if ticket.assignee else None,
            created_at=ticket.created_at,
            assigned_at=ticket.assigned_at,
            first_agent_reply_at=ticket.first_agent_reply_at,
            closed_at=ticket.closed_at,
            waiting_seconds=waited,
            waiting_label=duration_label(waited),
            resolution_note=ticket.resolution_note,
            rating=ticket.rating,
        )


# -- the customer ------------------------------------------------------------------------------


class CustomerView(_View):
    """Who the customer is, as far as the conversation tells.

    ``verified`` is False while the identity is only a claim typed in the chat: the
    desk then marks every field "unverified". ``stated`` holds what the bot's slots
    recorded (names and numbers as the customer gave them), also unverified.
    """

    known: bool
    verified: bool
    contact_id: int | None = None
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    account_id: int | None = None
    account_name: str | None = None
    account_number: str | None = None
    segment: str | None = None
    tier: str | None = None
    team_name: str | None = None
    stated: dict[str, str] = Field(default_factory=dict)

    @property
    def display_name(self) -> str:
        """A name for lists: the contact's, else what they said, else ``Unknown customer``."""
        return self.name or self.stated.get("name") or "Unknown customer"


def _stated(context: Mapping[str, Any]) -> dict[str, str]:
    raw = context.get("customer")
    if not isinstance(raw, Mapping):
        return {}
    return {str(key): str(value) for key, value in raw.items() if value not in (None, "")}


def customer_view(
    contact: Contact | None, *, verified: bool, context: Mapping[str, Any]
) -> CustomerView:
    """Describe the ticket's customer.

    Args:
        contact: The contact the conversation is linked to (possibly only claimed).
        verified: ``Ticket.identity_verified``.
        context: The ticket's context (its ``customer`` part holds the stated slots).

    Returns:
        The customer view; ``known`` is False when no contact is linked.
    """
    stated = _stated(context)
    if contact is None:
        return CustomerView(known=False, verified=False, stated=stated)
    account = contact.account
    return CustomerView(
        known=True,
        verified=verified,
        contact_id=contact.id,
        name=contact.name,
        email=contact.email,
        phone=contact.phone,
        account_id=account.id if account else None,
        account_name=account.name if account else None,
        account_number=account.number if account else None,
        segment=account.segment if account else None,
        tier=account.tier if account else None,
        team_name=account.team.name if account and account.team else None,
        stated=stated,
    )


# -- what the bot understood and tried ---------------------------------------------------------


class EntityView(_View):
    """One entity the bot extracted from a turn."""

    entity: str
    value: str


class TurnView(_View):
    """One customer turn as the bot understood it."""

    text: str
    intent: str | None
    confidence: float | None
    entities: list[EntityView]

    @property
    def confidence_label(self) -> str:
        """The confidence as a percentage (``87 %``), or ``—``."""
        return "—" if self.confidence is None else f"{round(self.confidence * 100)} %"


class KnowledgeAttemptView(_View):
    """One knowledge-base try: the query (None for a picked suggestion) and the outcome."""

    query: str | None
    outcome: str | None
    article_id: str | None


class FeedbackView(_View):
    """The customer's verdict on an answer (``kb.feedback`` audit event)."""

    at: dt.datetime
    article_id: str | None
    outcome: str | None
    helpful: bool | None


class KnowledgeView(_View):
    """What the knowledge base tried in the conversation and how it was received."""

    attempts: list[KnowledgeAttemptView]
    articles_offered: list[str]
    articles_answered: list[str]
    feedback: list[FeedbackView]


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def understood_turns(context: Mapping[str, Any]) -> list[TurnView]:
    """The customer's turns with intents, confidences and entities (``context["turns"]``).

    Malformed entries (the context is JSON from another process) are skipped.
    """
    turns: list[TurnView] = []
    for raw in context.get("turns") or []:
        if not isinstance(raw, Mapping):
            continue
        confidence = raw.get("confidence")
        try:
            confidence_value = None if confidence is None else float(confidence)
        except (TypeError, ValueError):
            confidence_value = None
        entities = [
            EntityView(entity=str(item.get("entity") or ""), value=str(item.get("value") or ""))
            for item in raw.get("entities") or []
            if isinstance(item, Mapping)
        ]
        turns.append(
            TurnView(
                text=str(raw.get("text") or ""),
                intent=_text(raw.get("intent")),
                confidence=confidence_value,
                entities=entities,
            )
        )
    return turns


def knowledge_view(context: Mapping[str, Any], feedback: Iterable[AuditEvent]) -> KnowledgeView:
    """What the knowledge base tried (``context["knowledge"]``) plus the feedback events."""
    raw = context.get("knowledge")
    knowledge: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    attempts = [
        KnowledgeAttemptView(
            query=_text(item.get("query")),
            outcome=_text(item.get("outcome")),
            article_id=_text(item.get("article_id")),
        )
        for item in knowledge.get("attempts") or []
        if isinstance(item, Mapping)
    ]
    verdicts = []
    for event in feedback:
        details = event.details or {}
        helpful = details.get("helpful")
        verdicts.append(
            FeedbackView(
                at=event.at,
                article_id=_text(details.get("article_id")),
                outcome=_text(details.get("outcome")),
                helpful=helpful if isinstance(helpful, bool) else None,
            )
        )
    return KnowledgeView(
        attempts=attempts,
        articles_offered=[str(a) for a in knowledge.get("articles_offered") or []],
        articles_answered=[str(a) for a in knowledge.get("articles_answered") or []],
        feedback=verdicts,
    )


# -- the transcript ----------------------------------------------------------------------------


class AttachmentLink(_View):
    """A file in the transcript, with the desk's download address."""

    id: int
    filename: str
    content_type: str
    size_bytes: int
    url: str

    @property
    def is_image(self) -> bool:
        """Whether the desk can show it inline."""
        return self.content_type.startswith("image/")


class MessageView(_View):
    """One message of the agent's transcript.

    Attributes:
        author: Who wrote it, for the agent: ``Customer``, ``Bot``, the agent's name.
        note: An internal note (``private``): the customer never saw it.
        withheld: A bot reply stored after a person took over; never shown to the
            customer.
        buttons: Titles of the buttons the customer was offered with it.
    """

    id: int
    role: str
    author: str
    text: str
    note: bool
    status: str
    withheld: bool
    agent_id: int | None
    created_at: dt.datetime
    buttons: list[str] = Field(default_factory=list)
    cited_article_id: str | None = None
    attachment_count: int = 0
    attachments: list[AttachmentLink] = Field(default_factory=list)

    @classmethod
    def of(
        cls,
        message: Message,
        agent_names: Mapping[int, str] | None = None,
        files: Mapping[int, AttachmentLink] | None = None,
    ) -> MessageView:
        """Describe a stored message for the desk."""
        payload = message.payload or {}
        author = ROLE_LABELS.get(message.role, message.role)
        if message.role == MessageRole.AGENT.value:
            named = (agent_names or {}).get(message.agent_id or -1) or payload.get("agent_name")
            author = str(named or "Agent")
        buttons = [
            str(button.get("title") or "")
            for button in payload.get("buttons") or []
            if isinstance(button, Mapping)
        ]
        citation = payload.get("citation")
        cited = citation.get("article_id") if isinstance(citation, Mapping) else None
        attachments = payload.get("attachments")
        return cls(
            id=message.id,
            role=message.role,
            author=author,
            text=message.text,
            note=message.private,
            status=message.status,
            withheld=message.status == MessageStatus.WITHHELD.value,
            agent_id=message.agent_id,
            created_at=message.created_at,
            buttons=[title for title in buttons if title],
            cited_article_id=_text(cited),
            attachment_count=len(attachments) if isinstance(attachments, list) else 0,
            attachments=[
                (files or {})[int(ref)]
                for ref in (attachments if isinstance(attachments, list) else [])
                if isinstance(ref, int) and int(ref) in (files or {})
            ],
        )


def _agent_names(session: Session, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {agent_id for agent_id in ids if agent_id is not None}
    if not wanted:
        return {}
    rows = session.execute(select(Agent.id, Agent.name).where(Agent.id.in_(wanted)))
    return {agent_id: name for agent_id, name in rows}


def transcript(session: Session, *, conversation_id: str) -> list[MessageView]:
    """The agent's transcript of a conversation, oldest first (notes and withheld included)."""
    messages = history(session, conversation_id=conversation_id, for_agent=True)
    names = _agent_names(session, (message.agent_id for message in messages))
    files = _attachment_links(session, conversation_id)
    return [MessageView.of(message, names, files) for message in messages]


def _attachment_links(session: Session, conversation_id: str) -> dict[int, AttachmentLink]:
    """The conversation's files by id, linked to the desk's download route."""
    rows = session.scalars(select(Attachment).where(Attachment.conversation_id == conversation_id))
    return {
        row.id: AttachmentLink(
            id=row.id,
            filename=row.filename,
            content_type=row.content_type,
            size_bytes=row.size_bytes,
            url=f"/desk/attachments/{row.id}",
        )
        for row in rows
    }


# -- earlier conversations and tickets ---------------------------------------------------------


class EarlierTicket(_View):
    """One of the customer's other tickets, with how it ended."""

    id: int
    conversation_id: str
    status: str
    status_label: str
    reason: str
    summary: str
    resolution_note: str | None
    team_name: str | None
    assignee_name: str | None
    rating: int | None
    created_at: dt.datetime
    closed_at: dt.datetime | None
    visible: bool  # the agent may open it (it is in their teams)


class EarlierConversation(_View):
    """One of the customer's other conversations, with its tickets."""

    id: str
    channel: str
    started_at: dt.datetime
    last_activity_at: dt.datetime
    message_count: int
    first_customer_text: str | None
    tickets: list[EarlierTicket]


def _preview(text: str | None) -> str | None:
    if not text:
        return None
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY_PREVIEW_CHARS else text[: SUMMARY_PREVIEW_CHARS - 1] + "…"


def earlier_history(session: Session, *, ticket: Ticket, agent: Agent) -> list[EarlierConversation]:
    """The same customer's other conversations and tickets, newest first.

    The customer is the ticket's contact (possibly only claimed: the desk says so).
    Tickets of other teams are listed with their summaries and resolution notes, so an
    agent who has never met the customer picks up where the last one stopped, but only
    tickets of the agent's own teams are linked.

    Args:
        session: The open session.
        ticket: The ticket being worked.
        agent: The agent (decides which earlier tickets are linked).

    Returns:
        Up to :data:`MAX_EARLIER_CONVERSATIONS` conversations, each with its tickets.
    """
    if ticket.contact_id is None:
        return []
    tickets = list(
        session.scalars(
            select(Ticket)
            .where(Ticket.contact_id == ticket.contact_id, Ticket.id != ticket.id)
            .order_by(Ticket.created_at.desc(), Ticket.id.desc())
            .limit(MAX_EARLIER_TICKETS)
        )
    )
    conversation_ids = {t.conversation_id for t in tickets}
    conversations = list(
        session.scalars(
            select(Conversation)
            .where(
                Conversation.contact_id == ticket.contact_id,
                Conversation.id != ticket.conversation_id,
            )
            .order_by(Conversation.updated_at.desc())
            .limit(MAX_EARLIER_CONVERSATIONS)
        )
    )
    known = {conversation.id for conversation in conversations}
    missing = conversation_ids - known - {ticket.conversation_id}
    if missing:
        conversations += list(
            session.scalars(select(Conversation).where(Conversation.id.in_(missing)))
        )
    ids = [conversation.id for conversation in conversations]
    counts: dict[str, int] = {}
    first_texts: dict[str, str] = {}
    if ids:
        counts = {
            conversation_id: count
            for conversation_id, count in session.execute(
                select(Message.conversation_id, func.count())
                .where(Message.conversation_id.in_(ids), Message.private.is_(False))
                .group_by(Message.conversation_id)
            )
        }
        firsts = (
            select(func.min(Message.id))
            .where(
                Message.conversation_id.in_(ids),
                Message.role == MessageRole.CUSTOMER.value,
            )
            .group_by(Message.conversation_id)
        )
        first_texts = {
            conversation_id: text
            for conversation_id, text in session.execute(
                select(Message.conversation_id, Message.text).where(Message.id.in_(firsts))
            )
        }
    by_conversation: dict[str, list[EarlierTicket]] = {}
    for other in tickets:
        by_conversation.setdefault(other.conversation_id, []).append(
            EarlierTicket(
                id=other.id,
                conversation_id=other.conversation_id,
                status=other.status,
                status_label=STATUS_LABELS.get(other.status, other.status),
                reason=other.reason,
                summary=other.summary,
                resolution_note=other.resolution_note,
                team_name=other.team.name if other.team else None,
                assignee_name=other.assignee.name if other.assignee else None,
                rating=other.rating,
                created_at=other.created_at,
                closed_at=other.closed_at,
                visible=may_work(agent, other),
            )
        )
    views = [
        EarlierConversation(
            id=conversation.id,
            channel=conversation.channel,
            started_at=conversation.created_at,
            last_activity_at=conversation.updated_at,
            message_count=counts.get(conversation.id, 0),
            first_customer_text=_preview(first_texts.get(conversation.id)),
            tickets=by_conversation.get(conversation.id, []),
        )
        for conversation in conversations
    ]
    views.sort(key=lambda view: view.last_activity_at, reverse=True)
    return views[:MAX_EARLIER_CONVERSATIONS]


# -- the audit log -----------------------------------------------------------------------------


class AuditEntry(_View):
    """One audit event of the ticket."""

    id: int
    at: dt.datetime
    actor: str
    actor_name: str
    action: str
    ticket_id: int | None
    conversation_id: str | None
    details: dict[str, Any]


def _actor_name(actor: str, names: Mapping[int, str]) -> str:
    kind, _, rest = actor.partition(":")
    if kind == "agent" and rest.isdigit():
        return names.get(int(rest), actor)
    return {"action_server": "Bot", "customer": "Customer"}.get(actor, actor)


def audit_entries(session: Session, *, ticket_id: int) -> list[AuditEntry]:
    """The ticket's audit events, oldest first (at most :data:`MAX_AUDIT_EVENTS`).

    The caller must already have checked that the agent may see the ticket.
    """
    events = list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.ticket_id == ticket_id)
            .order_by(AuditEvent.id)
            .limit(MAX_AUDIT_EVENTS)
        )
    )
    agent_ids = [
        int(event.actor.partition(":")[2])
        for event in events
        if event.actor.startswith("agent:") and event.actor.partition(":")[2].isdigit()
    ]
    names = _agent_names(session, agent_ids)
    return [
        AuditEntry(
            id=event.id,
            at=event.at,
            actor=event.actor,
            actor_name=_actor_name(event.actor, names),
            action=event.action,
            ticket_id=event.ticket_id,
            conversation_id=event.conversation_id,
            details=dict(event.details or {}),
        )
        for event in events
    ]


# -- canned replies ----------------------------------------------------------------------------


class CannedReplyView(_View):
    """A saved answer the agent can insert into the composer."""

    id: int
    shortcut: str
    title: str
    body: str
    shared: bool


def canned_replies(session: Session, *, team_id: int | None) -> list[CannedReplyView]:
    """Canned replies for a ticket of ``team_id``: the team's own first, then shared ones."""
    query = select(CannedReply).where(
        CannedReply.team_id.is_(None)
        if team_id is None
        else (CannedReply.team_id.is_(None) | (CannedReply.team_id == team_id))
    )
    rows = session.scalars(query.order_by(CannedReply.team_id.is_(None), CannedReply.shortcut))
    return [
        CannedReplyView(
            id=row.id,
            shortcut=row.shortcut,
            title=row.title,
            body=row.body,
            shared=row.team_id is None,
        )
        for row in rows
    ]


# -- the whole context -------------------------------------------------------------------------


class TeamOption(_View):
    """A team a ticket can be transferred to."""

    id: int
    name: str


class AgentOption(_View):
    """An agent a lead can assign the ticket to."""

    id: int
    name: str


class TicketContext(_View):
    """Everything the ticket page shows."""

    ticket: TicketSummary
    customer: CustomerView
    understood: list[TurnView]
    knowledge: KnowledgeView
    transcript: list[MessageView]
    earlier: list[EarlierConversation]
    audit: list[AuditEntry]
    canned_replies: list[CannedReplyView]
    transfer_teams: list[TeamOption]
    assignable_agents: list[AgentOption]


def _feedback_events(session: Session, conversation_id: str) -> list[AuditEvent]:
    return list(
        session.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.conversation_id == conversation_id,
                AuditEvent.action == FEEDBACK_ACTION,
            )
            .order_by(AuditEvent.id)
        )
    )


def _assignable(session: Session, team_id: int | None) -> list[AgentOption]:
    if team_id is None:
        return []
    agents = session.scalars(
        select(Agent).where(Agent.is_active.is_(True)).order_by(Agent.name, Agent.id)
    )
    return [
        AgentOption(id=agent.id, name=agent.name)
        for agent in agents
        if team_id in agent.team_ids and agent.role != Role.EDITOR.value
    ]


def ticket_context(
    session: Session, *, ticket_id: int, agent: Agent, now: dt.datetime | None = None
) -> TicketContext:
    """Read everything the agent needs to take over ticket ``ticket_id``.

    Args:
        session: The open session.
        ticket_id: The ticket (may be forged or guessed).
        agent: The signed-in agent.
        now: The current time (for the waiting time); defaults to now.

    Returns:
        The context view.

    Raises:
        TicketNotFoundError: No such ticket, or not one of the agent's teams.
    """
    ticket = get_ticket_for(session, ticket_id=ticket_id, agent=agent)
    context: Mapping[str, Any] = ticket.context or {}
    contact = session.get(Contact, ticket.contact_id) if ticket.contact_id else None
    teams = session.scalars(select(Team).order_by(Team.name))
    logger.debug("context read ticket=%s agent=%s", ticket.id, agent.id)
    return TicketContext(
        ticket=TicketSummary.of(ticket, now=now),
        customer=customer_view(contact, verified=ticket.identity_verified, context=context),
        understood=understood_turns(context),
        knowledge=knowledge_view(context, _feedback_events(session, ticket.conversation_id)),
        transcript=transcript(session, conversation_id=ticket.conversation_id),
        earlier=earlier_history(session, ticket=ticket, agent=agent),
        audit=audit_entries(session, ticket_id=ticket.id),
        canned_replies=canned_replies(session, team_id=ticket.team_id),
        transfer_teams=[
            TeamOption(id=team.id, name=team.name) for team in teams if team.id != ticket.team_id
        ],
        assignable_agents=_assignable(session, ticket.team_id),
    )


# -- the queue ---------------------------------------------------------------------------------


class QueueItem(_View):
    """One row of the queue page."""

    ticket: TicketSummary
    customer_name: str
    customer_verified: bool
    customer_known: bool
    account_name: str | None  # None when it is just the customer's own name
    summary_preview: str


def queue_items(
    session: Session, *, agent: Agent, now: dt.datetime | None = None
) -> list[QueueItem]:
    """The agent's open tickets (their teams'; admins: all), most urgent and oldest first.

    Args:
        session: The open session.
        agent: The signed-in agent.
        now: The current time (for waiting times).

    Returns:
        One item per open ticket, in :func:`bot.handoff.service.queue` order.
    """
    now = now or utcnow()
    tickets = queue(session, agent=agent)
    contact_ids = {t.contact_id for t in tickets if t.contact_id is not None}
    contacts: dict[int, Contact] = {}
    if contact_ids:
        contacts = {
            contact.id: contact
            for contact in session.scalars(select(Contact).where(Contact.id.in_(contact_ids)))
        }
    items = []
    for ticket in tickets:
        contact = contacts.get(ticket.contact_id or -1)
        customer = customer_view(
            contact, verified=ticket.identity_verified, context=ticket.context or {}
        )
        items.append(
            QueueItem(
                ticket=TicketSummary.of(ticket, now=now),
                customer_name=customer.display_name,
                customer_verified=customer.verified,
                customer_known=customer.known,
                account_name=(
                    customer.account_name if customer.account_name != customer.name else None
                ),
                summary_preview=_preview(ticket.summary.splitlines()[0] if ticket.summary else "")
                or "",
            )
        )
    return items


def queued_count(items: Sequence[QueueItem]) -> int:
    """How many of the items still wait for an agent (the number in the page title)."""
    return sum(1 for item in items if item.ticket.status == TicketStatus.QUEUED.value)
