"""Open handoffs (idempotently), route them to a team and find the active one.

The action server calls :func:`open_handoff` in its own process; the bot service only
reads the result (the conversation's ``mode``) after Rasa announces the handoff.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import bot.db.models  # noqa: F401  (every table must be mapped before the first query)
from bot.accounts.models import DEFAULT_TEAM_SLUG, Contact, Segment, Team
from bot.audit.service import record_event
from bot.conversations.models import Conversation, ConversationMode
from bot.conversations.service import ensure_conversation
from bot.handoff.models import ACTIVE_HANDOFF_STATUSES, Handoff, HandoffStatus

logger = logging.getLogger(__name__)

ACTOR_ACTION_SERVER = "action_server"


def active_handoff(session: Session, *, conversation_id: str) -> Handoff | None:
    """Return the conversation's pending or assigned handoff, if any.

    Args:
        session: The open session.
        conversation_id: The conversation (Rasa sender id).

    Returns:
        The newest active handoff, or ``None``.
    """
    return session.scalars(
        select(Handoff)
        .where(
            Handoff.conversation_id == conversation_id,
            Handoff.status.in_(ACTIVE_HANDOFF_STATUSES),
        )
        .order_by(Handoff.id.desc())
        .limit(1)
    ).first()


def route_team(session: Session, *, conversation: Conversation) -> Team | None:
    """Pick the team for a conversation's handoff.

    A business (B2B) account's dedicated team when it has one, otherwise the default
    ``customer-care`` team.

    Args:
        session: The open session.
        conversation: The conversation being handed over.

    Returns:
        The team, or ``None`` if not even the default team exists (no demo data/teams).
    """
    if conversation.contact_id is not None:
        contact = session.get(Contact, conversation.contact_id)
        account = contact.account if contact is not None else None
        if (
            account is not None
            and account.segment == Segment.B2B.value
            and account.team is not None
        ):
            return account.team
    team = session.scalars(select(Team).where(Team.slug == DEFAULT_TEAM_SLUG)).first()
    if team is None:
        logger.warning(
            "no %r team exists; handoff for conversation=%s is unrouted",
            DEFAULT_TEAM_SLUG,
            conversation.id,
        )
    return team


def _account_id(session: Session, conversation: Conversation) -> int | None:
    if conversation.contact_id is None:
        return None
    contact = session.get(Contact, conversation.contact_id)
    return contact.account_id if contact is not None else None


def open_handoff(
    session: Session, *, conversation_id: str, reason: str, context: dict[str, Any]
) -> Handoff:
    """Ask for a human to take over a conversation; safe to call more than once.

    If the conversation already has a pending or assigned handoff, the new ``context``
    is merged into it (new keys win) and that handoff is returned; a pending one is
    re-routed in case the customer was identified meanwhile. Otherwise a new pending
    handoff is created and routed (see :func:`route_team`). The conversation row is
    created if needed (channel ``"unknown"``) and its mode becomes
    ``"handoff_pending"`` (an ``"agent"`` conversation stays with its agent).

    Args:
        session: The open session (committed here).
        conversation_id: The conversation (Rasa sender id).
        reason: Why, e.g. ``"customer_request"`` or ``"low_confidence"``.
        context: JSON-ready facts for the agent (summary, slots, last question).

    Returns:
        The open handoff.
    """
    conversation = ensure_conversation(session, conversation_id=conversation_id)
    handoff = active_handoff(session, conversation_id=conversation_id)
    created = handoff is None
    if handoff is None:
        team = route_team(session, conversation=conversation)
        handoff = Handoff(
            conversation_id=conversation_id,
            status=HandoffStatus.PENDING.value,
            reason=reason,
            team=team,
            context=dict(context),
        )
        session.add(handoff)
    else:
        handoff.context = {**(handoff.context or {}), **context}  # new dict: JSON is not mutable
        if handoff.status == HandoffStatus.PENDING.value:
            team = route_team(session, conversation=conversation)
            handoff.team = team
    if conversation.mode != ConversationMode.AGENT.value:
        conversation.mode = ConversationMode.HANDOFF_PENDING.value
    session.flush()
    team_slug = handoff.team.slug if handoff.team is not None else None
    record_event(
        session,
        actor=ACTOR_ACTION_SERVER,
        action="handoff.opened" if created else "handoff.updated",
        conversation_id=conversation_id,
        account_id=_account_id(session, conversation),
        details={"handoff_id": handoff.id, "reason": reason, "team": team_slug},
    )
    session.commit()
    logger.info(
        "handoff %s conversation=%s handoff=%s team=%s reason=%s",
        "opened" if created else "updated",
        conversation_id,
        handoff.id,
        team_slug,
        reason,
    )
    return handoff
