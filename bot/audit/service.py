"""Write audit events."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from bot.audit.models import AuditEvent


def record_event(
    session: Session,
    *,
    actor: str,
    action: str,
    conversation_id: str | None = None,
    account_id: int | None = None,
    ticket_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an audit event to the session (the caller commits with its own change).

    Args:
        session: The open session.
        actor: Who acted, e.g. ``"bot"``, ``"action_server"``, ``"customer"``, ``"agent:7"``.
        action: What happened, e.g. ``"handoff.opened"``.
        conversation_id: The conversation concerned, if any.
        account_id: The account concerned, if any.
        ticket_id: The ticket concerned, if any.
        details: JSON-ready extra facts (ids, reasons); never secrets.

    Returns:
        The pending event.
    """
    event = AuditEvent(
        actor=actor,
        action=action,
        conversation_id=conversation_id,
        account_id=account_id,
        ticket_id=ticket_id,
        details=dict(details or {}),
    )
    session.add(event)
    return event
