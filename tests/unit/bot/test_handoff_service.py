from __future__ import annotations

import logging

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.accounts.demo import DEMO_BUSINESS_EMAIL, DEMO_BUSINESS_TEAM, DEMO_CONSUMER_EMAIL
from bot.accounts.service import find_customer, link_conversation
from bot.audit.models import AuditEvent
from bot.conversations.models import Conversation
from bot.conversations.service import start_conversation
from bot.handoff.models import Handoff
from bot.handoff.service import active_handoff, open_handoff


def _link(session: Session, conversation_id: str, email: str) -> None:
    profile = find_customer(session, email=email)
    assert profile is not None
    link_conversation(session, conversation_id=conversation_id, contact_id=profile.contact_id)


def _audit(session: Session, action: str) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_open_handoff_sets_mode_routes_and_audits(
    demo_session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    conversation, _ = start_conversation(demo_session, channel="webchat")

    with caplog.at_level(logging.INFO, logger="bot.handoff.service"):
        handoff = open_handoff(
            demo_session,
            conversation_id=conversation.id,
            reason="customer_request",
            context={"summary": "wants a human"},
        )

    assert handoff.id is not None
    assert handoff.status == "pending"
    assert handoff.reason == "customer_request"
    assert handoff.context == {"summary": "wants a human"}
    assert handoff.team is not None and handoff.team.slug == "customer-care"
    demo_session.refresh(conversation)
    assert conversation.mode == "handoff_pending"
    events = _audit(demo_session, "handoff.opened")
    assert len(events) == 1
    assert events[0].conversation_id == conversation.id
    assert events[0].details["handoff_id"] == handoff.id
    assert events[0].details["team"] == "customer-care"
    assert any(
        conversation.id in record.getMessage() and str(handoff.id) in record.getMessage()
        for record in caplog.records
    )


def test_open_handoff_is_idempotent_and_merges_context(demo_session: Session) -> None:
    conversation, _ = start_conversation(demo_session, channel="webchat")
    first = open_handoff(
        demo_session, conversation_id=conversation.id, reason="customer_request", context={"a": 1}
    )
    second = open_handoff(
        demo_session, conversation_id=conversation.id, reason="low_confidence", context={"b": 2}
    )

    assert second.id == first.id
    assert second.context == {"a": 1, "b": 2}
    assert len(demo_session.scalars(select(Handoff)).all()) == 1
    assert len(_audit(demo_session, "handoff.opened")) == 1
    assert len(_audit(demo_session, "handoff.updated")) == 1
    assert active_handoff(demo_session, conversation_id=conversation.id) is first


def test_business_customer_is_routed_to_the_dedicated_team(demo_session: Session) -> None:
    conversation, _ = start_conversation(demo_session, channel="webchat")
    _link(demo_session, conversation.id, DEMO_BUSINESS_EMAIL)

    handoff = open_handoff(
        demo_session, conversation_id=conversation.id, reason="customer_request", context={}
    )

    assert handoff.team is not None and handoff.team.slug == DEMO_BUSINESS_TEAM
    event = _audit(demo_session, "handoff.opened")[0]
    assert event.account_id is not None
    assert event.details["team"] == DEMO_BUSINESS_TEAM


def test_consumer_is_routed_to_customer_care(demo_session: Session) -> None:
    conversation, _ = start_conversation(demo_session, channel="webchat")
    _link(demo_session, conversation.id, DEMO_CONSUMER_EMAIL)

    handoff = open_handoff(
        demo_session, conversation_id=conversation.id, reason="customer_request", context={}
    )
    assert handoff.team is not None and handoff.team.slug == "customer-care"


def test_pending_handoff_is_rerouted_once_the_customer_is_identified(demo_session: Session) -> None:
    conversation, _ = start_conversation(demo_session, channel="webchat")
    handoff = open_handoff(
        demo_session, conversation_id=conversation.id, reason="customer_request", context={}
    )
    assert handoff.team is not None and handoff.team.slug == "customer-care"

    _link(demo_session, conversation.id, DEMO_BUSINESS_EMAIL)
    again = open_handoff(
        demo_session, conversation_id=conversation.id, reason="customer_request", context={}
    )
    assert again.id == handoff.id
    assert again.team is not None and again.team.slug == DEMO_BUSINESS_TEAM


def test_open_handoff_creates_missing_conversation(demo_session: Session) -> None:
    handoff = open_handoff(
        demo_session, conversation_id="shell-sender", reason="customer_request", context={}
    )
    conversation = demo_session.get(Conversation, "shell-sender")
    assert conversation is not None
    assert conversation.channel == "unknown"
    assert conversation.mode == "handoff_pending"
    assert handoff.conversation_id == "shell-sender"


def test_agent_conversation_keeps_agent_mode(demo_session: Session) -> None:
    conversation, _ = start_conversation(demo_session, channel="webchat")
    handoff = open_handoff(
        demo_session, conversation_id=conversation.id, reason="customer_request", context={}
    )
    handoff.status = "assigned"
    conversation.mode = "agent"
    demo_session.commit()

    again = open_handoff(
        demo_session, conversation_id=conversation.id, reason="customer_request", context={"x": 1}
    )
    assert again.id == handoff.id
    assert conversation.mode == "agent"


def test_closed_handoff_is_not_active_and_a_new_one_opens(demo_session: Session) -> None:
    conversation, _ = start_conversation(demo_session, channel="webchat")
    first = open_handoff(
        demo_session, conversation_id=conversation.id, reason="customer_request", context={}
    )
    first.status = "closed"
    demo_session.commit()
    assert active_handoff(demo_session, conversation_id=conversation.id) is None

    second = open_handoff(
        demo_session, conversation_id=conversation.id, reason="customer_request", context={}
    )
    assert second.id != first.id
    assert active_handoff(demo_session, conversation_id=conversation.id) is second


def test_handoff_without_teams_is_unrouted_but_opened(session: Session) -> None:
    conversation, _ = start_conversation(session, channel="webchat")
    handoff = open_handoff(
        session, conversation_id=conversation.id, reason="customer_request", context={}
    )
    assert handoff.team_id is None
    assert handoff.status == "pending"
