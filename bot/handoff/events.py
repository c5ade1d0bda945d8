"""The events the desk's live channel carries (JSON-ready dicts for the broker)."""

from __future__ import annotations

from typing import Any

from bot.conversations.models import Message
from bot.handoff.models import Ticket


def ticket_event(kind: str, ticket: Ticket) -> dict[str, Any]:
    """A change of a ticket: ``ticket.created``, and so on.

    Args:
        kind: The event type.
        ticket: The ticket after the change.

    Returns:
        The event; subscribers filter on ``team_id``.
    """
    return {
        "type": kind,
        "ticket_id": ticket.id,
        "team_id": ticket.team_id,
        "conversation_id": ticket.conversation_id,
        "status": ticket.status,
        "priority": ticket.priority,
        "assignee_id": ticket.assignee_id,
    }


def message_event(ticket: Ticket, message: Message) -> dict[str, Any]:
    """A new message in a ticket's conversation (customer, bot, agent, note or system)."""
    return {
        "type": "ticket.message",
        "ticket_id": ticket.id,
        "team_id": ticket.team_id,
        "conversation_id": ticket.conversation_id,
        "message": {
            "id": message.id,
            "role": message.role,
            "text": message.text,
            "private": message.private,
            "status": message.status,
            "agent_id": message.agent_id,
            "created_at": message.created_at.isoformat(),
        },
    }
