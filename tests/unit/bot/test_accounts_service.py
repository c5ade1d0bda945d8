from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.accounts.demo import (
    DEMO_BUSINESS_ACCOUNT,
    DEMO_BUSINESS_EMAIL,
    DEMO_BUSINESS_ORDER,
    DEMO_BUSINESS_TEAM,
    DEMO_CONSUMER_ACCOUNT,
    DEMO_CONSUMER_EMAIL,
    DEMO_CONSUMER_ORDER,
)
from bot.accounts.service import (
    ContactNotFoundError,
    CustomerProfile,
    customer_for_conversation,
    find_customer,
    link_conversation,
)
from bot.audit.models import AuditEvent
from bot.conversations.models import Conversation
from bot.conversations.service import start_conversation


def test_find_by_email_is_case_insensitive_and_trims(demo_session: Session) -> None:
    profile = find_customer(demo_session, email=f"  {DEMO_CONSUMER_EMAIL.upper()} ")

    assert isinstance(profile, CustomerProfile)
    assert profile.email == DEMO_CONSUMER_EMAIL
    assert profile.account_number == DEMO_CONSUMER_ACCOUNT
    assert profile.segment == "b2c"
    assert profile.tier in {"standard", "plus"}
    assert profile.team_slug is None


def test_find_business_contact_has_dedicated_team(demo_session: Session) -> None:
    profile = find_customer(demo_session, email=DEMO_BUSINESS_EMAIL)

    assert profile is not None
    assert profile.account_number == DEMO_BUSINESS_ACCOUNT
    assert profile.account_name == "Fjord Architects GmbH"
    assert profile.segment == "b2b"
    assert profile.tier in {"gold", "enterprise"}
    assert profile.team_slug == DEMO_BUSINESS_TEAM
    assert profile.team_name


def test_find_by_account_number_returns_the_primary_contact(demo_session: Session) -> None:
    profile = find_customer(demo_session, account_number=DEMO_BUSINESS_ACCOUNT.lower())
    assert profile is not None
    assert profile.email == DEMO_BUSINESS_EMAIL  # the first contact of the account


def test_find_by_order_number_returns_the_accounts_primary_contact(demo_session: Session) -> None:
    consumer = find_customer(demo_session, order_number=DEMO_CONSUMER_ORDER.lower())
    business = find_customer(demo_session, order_number=DEMO_BUSINESS_ORDER)
    assert consumer is not None and consumer.email == DEMO_CONSUMER_EMAIL
    assert business is not None and business.email == DEMO_BUSINESS_EMAIL


@pytest.mark.parametrize(
    "criteria",
    [
        {"email": "nobody@example.com"},
        {"account_number": "ACC-99999"},
        {"order_number": "ORD-999999"},
        {},
        {"email": "   "},
        # Identifiers that belong to different accounts do not confirm each other.
        {"email": DEMO_CONSUMER_EMAIL, "order_number": DEMO_BUSINESS_ORDER},
        {"account_number": DEMO_CONSUMER_ACCOUNT, "order_number": DEMO_BUSINESS_ORDER},
        {"email": DEMO_CONSUMER_EMAIL, "account_number": "ACC-99999"},
    ],
)
def test_unknown_or_inconsistent_criteria_find_nobody(
    demo_session: Session, criteria: dict[str, str]
) -> None:
    assert find_customer(demo_session, **criteria) is None


def test_consistent_criteria_confirm_each_other(demo_session: Session) -> None:
    profile = find_customer(
        demo_session,
        email="Matthias.Berger@fjord-architects.example",
        account_number=DEMO_BUSINESS_ACCOUNT,
        order_number=DEMO_BUSINESS_ORDER,
    )
    assert profile is not None
    assert profile.contact_name == "Matthias Berger"  # the e-mail picks the contact


def test_link_conversation_creates_row_and_audits(demo_session: Session) -> None:
    profile = find_customer(demo_session, email=DEMO_BUSINESS_EMAIL)
    assert profile is not None

    link_conversation(demo_session, conversation_id="sender-1", contact_id=profile.contact_id)

    conversation = demo_session.get(Conversation, "sender-1")
    assert conversation is not None
    assert conversation.channel == "unknown"
    assert conversation.contact_id == profile.contact_id
    events = demo_session.scalars(
        select(AuditEvent).where(AuditEvent.action == "customer.identified")
    ).all()
    assert len(events) == 1
    assert events[0].conversation_id == "sender-1"
    assert events[0].account_id == profile.account_id
    assert events[0].details["contact_id"] == profile.contact_id
    assert customer_for_conversation(demo_session, conversation_id="sender-1") == profile


def test_link_existing_webchat_conversation_keeps_channel(demo_session: Session) -> None:
    conversation, _ = start_conversation(demo_session, channel="webchat")
    profile = find_customer(demo_session, email=DEMO_CONSUMER_EMAIL)
    assert profile is not None

    link_conversation(demo_session, conversation_id=conversation.id, contact_id=profile.contact_id)

    assert conversation.channel == "webchat"
    assert customer_for_conversation(demo_session, conversation_id=conversation.id) == profile


def test_link_unknown_contact_raises(demo_session: Session) -> None:
    with pytest.raises(ContactNotFoundError):
        link_conversation(demo_session, conversation_id="sender-2", contact_id=999_999)


def test_customer_for_unlinked_or_unknown_conversation_is_none(demo_session: Session) -> None:
    conversation, _ = start_conversation(demo_session, channel="webchat")
    assert customer_for_conversation(demo_session, conversation_id=conversation.id) is None
    assert customer_for_conversation(demo_session, conversation_id="nope") is None
