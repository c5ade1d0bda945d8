"""The internal API the action server calls: the bot service owns all app state.

Custom actions never open the app database. They call these endpoints through the typed
client in ``actions/clients/bot_api.py``, with ``Authorization: Bearer <service token>``
(``CONCIERGE_SERVICE_TOKEN``; ``python -m bot run`` makes a fresh one per run). The
service binds to 127.0.0.1 and refuses every request without the token.
"""

from __future__ import annotations

import logging
import secrets
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Header, HTTPException, Request, status
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session, sessionmaker

from bot.accounts.service import find_customer, link_conversation
from bot.audit.service import record_event
from bot.conversations.models import CONVERSATION_ID_MAX_CHARS
from bot.conversations.service import ensure_conversation
from bot.handoff import service as tickets
from bot.handoff.availability import describe_wait
from bot.handoff.events import ticket_event
from bot.realtime.broker import DESK_TOPIC, Broker
from bot.web.deps import SettingsDep

logger = logging.getLogger(__name__)

ACTOR_ACTION_SERVER = "action_server"
MAX_CONTEXT_TURNS = 50


def require_service_token(
    settings: SettingsDep, authorization: Annotated[str | None, Header()] = None
) -> None:
    """Refuse a request that does not carry the service token."""
    expected = settings.service_token.get_secret_value() if settings.service_token else None
    scheme, _, given = (authorization or "").partition(" ")
    given = given.strip()
    if (
        not expected
        or scheme != "Bearer"
        or not given
        or not secrets.compare_digest(given.encode(), expected.encode())
    ):
        logger.warning("internal API request refused: missing or wrong service token")
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="service token required")


router = APIRouter(
    prefix="/internal/v1", tags=["internal"], dependencies=[Depends(require_service_token)]
)


class HandoffRequest(BaseModel):
    """Ask for a person to take over a conversation."""

    conversation_id: str = Field(min_length=1, max_length=CONVERSATION_ID_MAX_CHARS)
    reason_code: str = Field(min_length=1, max_length=32)
    reason: str = Field(min_length=1, max_length=200)
    channel: str | None = Field(default=None, max_length=32)
    context: dict[str, Any] = Field(default_factory=dict)


class HandoffOpened(BaseModel):
    """The ticket the request opened (or the one already open)."""

    ticket_id: int
    team_name: str | None
    already_open: bool
    available: bool
    wait_message: str


class ConversationRef(BaseModel):
    """A conversation, by its Rasa sender id."""

    conversation_id: str = Field(min_length=1, max_length=CONVERSATION_ID_MAX_CHARS)


class Withdrawn(BaseModel):
    """Whether a queued ticket was withdrawn."""

    withdrawn: bool
    ticket_id: int | None = None


class IdentityClaim(BaseModel):
    """Identifiers a customer typed (unverified)."""

    conversation_id: str = Field(min_length=1, max_length=CONVERSATION_ID_MAX_CHARS)
    email: str | None = Field(default=None, max_length=320)
    account_number: str | None = Field(default=None, max_length=32)
    order_number: str | None = Field(default=None, max_length=32)


class IdentityNoted(BaseModel):
    """Whether the claim matched a customer; nothing about the account is returned.

    Until the contact is verified, the bot may not reveal anything account-specific:
    the claim routes a later ticket and is shown to agents, marked unverified.
    """

    matched: bool


class Feedback(BaseModel):
    """Whether a knowledge-base answer helped."""

    conversation_id: str = Field(min_length=1, max_length=CONVERSATION_ID_MAX_CHARS)
    article_id: str | None = Field(default=None, max_length=200)
    outcome: str | None = Field(default=None, max_length=32)
    helpful: bool


def _sessions(request: Request) -> sessionmaker[Session]:
    return request.app.state.session_factory


def _broker(request: Request) -> Broker:
    return request.app.state.broker


@router.post("/handoffs", response_model=HandoffOpened)
async def open_handoff(body: HandoffRequest, request: Request) -> HandoffOpened:
    """Open (or refresh) the conversation's ticket and say when a person can answer."""

    def run() -> HandoffOpened:
        with _sessions(request)() as session:
            opened = tickets.open_ticket(
                session,
                conversation_id=body.conversation_id,
                reason_code=body.reason_code,
                reason=body.reason,
                context=body.context,
                channel=body.channel,
            )
            ticket = opened.ticket
            event = ticket_event("ticket.created" if opened.created else "ticket.updated", ticket)
            request.state.desk_event = event
            return HandoffOpened(
                ticket_id=ticket.id,
                team_name=ticket.team.name if ticket.team else None,
                already_open=not opened.created,
                available=opened.availability.available,
                wait_message=describe_wait(opened.availability),
            )

    result = await anyio.to_thread.run_sync(run)
    await _broker(request).publish(DESK_TOPIC, request.state.desk_event)
    return result


@router.post("/handoffs/withdraw", response_model=Withdrawn)
async def withdraw_handoff(body: ConversationRef, request: Request) -> Withdrawn:
    """Close the conversation's queued ticket: the customer no longer needs a person."""

    def run() -> tuple[Withdrawn, dict[str, Any] | None]:
        with _sessions(request)() as session:
            ticket = tickets.withdraw(session, conversation_id=body.conversation_id)
            if ticket is None:
                return Withdrawn(withdrawn=False), None
            return Withdrawn(withdrawn=True, ticket_id=ticket.id), ticket_event(
                "ticket.closed", ticket
            )

    result, event = await anyio.to_thread.run_sync(run)
    if event is not None:
        await _broker(request).publish(DESK_TOPIC, event)
    return result


@router.post("/identity-claims", response_model=IdentityNoted)
async def note_identity_claim(body: IdentityClaim, request: Request) -> IdentityNoted:
    """Link the conversation to the contact the identifiers point to (unverified)."""

    def run() -> IdentityNoted:
        with _sessions(request)() as session:
            profile = find_customer(
                session,
                email=body.email,
                account_number=body.account_number,
                order_number=body.order_number,
            )
            if profile is None:
                ensure_conversation(session, conversation_id=body.conversation_id)
                record_event(
                    session,
                    actor=ACTOR_ACTION_SERVER,
                    action="customer.claim_unmatched",
                    conversation_id=body.conversation_id,
                )
                session.commit()
                return IdentityNoted(matched=False)
            link_conversation(
                session, conversation_id=body.conversation_id, contact_id=profile.contact_id
            )
            return IdentityNoted(matched=True)

    return await anyio.to_thread.run_sync(run)


@router.post("/feedback", status_code=status.HTTP_204_NO_CONTENT)
async def record_feedback(body: Feedback, request: Request) -> None:
    """Store whether a knowledge-base answer helped (``kb.feedback`` audit event)."""

    def run() -> None:
        with _sessions(request)() as session:
            ensure_conversation(session, conversation_id=body.conversation_id)
            record_event(
                session,
                actor=ACTOR_ACTION_SERVER,
                action="kb.feedback",
                conversation_id=body.conversation_id,
                details={
                    "article_id": body.article_id,
                    "outcome": body.outcome,
                    "helpful": body.helpful,
                },
            )
            session.commit()

    await anyio.to_thread.run_sync(run)
