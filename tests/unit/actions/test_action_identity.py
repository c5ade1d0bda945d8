"""action_identify_customer against the demo customers."""

from __future__ import annotations

import logging

import pytest
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session, sessionmaker

from actions import deps
from actions.identity import ActionIdentifyCustomer, identifiers_from_tracker
from actions.parsing import Identifiers
from bot.accounts.demo import (
    DEMO_BUSINESS_ACCOUNT,
    DEMO_BUSINESS_EMAIL,
    DEMO_BUSINESS_ORDER,
    DEMO_CONSUMER_ACCOUNT,
    DEMO_CONSUMER_EMAIL,
    DEMO_CONSUMER_ORDER,
)
from bot.accounts.service import customer_for_conversation
from tests.helpers.trackers import build_tracker, conversation, entity, user
from tests.unit.actions.support import message, unreachable_bot_service

SENDER = "conversation-identity"


async def identify(
    text: str, entities: list[dict] | None = None
) -> tuple[CollectingDispatcher, list]:
    dispatcher = CollectingDispatcher()
    tracker = build_tracker(
        conversation(user(text, "give_identity", 0.95, entities or [])), sender_id=SENDER
    )
    events = await ActionIdentifyCustomer().run(dispatcher, tracker, {})
    return dispatcher, events


NOTED = [SlotSet("identity_claimed", True)]


async def test_identify_by_email_entity_links_the_conversation_and_reveals_nothing(
    session_factory: sessionmaker[Session],
) -> None:
    dispatcher, events = await identify(
        f"my email is {DEMO_CONSUMER_EMAIL.upper()}",
        [entity("email", DEMO_CONSUMER_EMAIL.upper(), start=12)],
    )

    assert dispatcher.messages == [message(response="utter_identity_noted")]
    assert events == NOTED
    with session_factory() as session:
        profile = customer_for_conversation(session, conversation_id=SENDER)
    assert profile is not None and profile.email == DEMO_CONSUMER_EMAIL


async def test_a_business_order_number_routes_but_greets_nobody_by_name(
    session_factory: sessionmaker[Session],
) -> None:
    # The example: "my order is ORD-100120" used to greet a stranger by the
    # contact's first name, company and team.
    dispatcher, events = await identify(f"my order is {DEMO_BUSINESS_ORDER}")

    assert dispatcher.messages == [message(response="utter_identity_noted")]
    assert events == NOTED
    shown = repr(dispatcher.messages)
    for secret in ("Ingrid", "Fjord", "Key Accounts"):
        assert secret not in shown
    with session_factory() as session:
        profile = customer_for_conversation(session, conversation_id=SENDER)
    assert profile is not None and profile.account_number == DEMO_BUSINESS_ACCOUNT


async def test_identify_business_account_parsed_from_text(
    session_factory: sessionmaker[Session],
) -> None:
    dispatcher, events = await identify(f"we're {DEMO_BUSINESS_ACCOUNT.lower()}, thanks")

    assert dispatcher.messages == [message(response="utter_identity_noted")]
    assert events == NOTED
    with session_factory() as session:
        profile = customer_for_conversation(session, conversation_id=SENDER)
    assert profile is not None and profile.email == DEMO_BUSINESS_EMAIL


async def test_identify_by_order_number(session_factory: sessionmaker[Session]) -> None:
    dispatcher, events = await identify(
        f"order {DEMO_CONSUMER_ORDER}", [entity("order_number", DEMO_CONSUMER_ORDER, start=6)]
    )

    assert dispatcher.messages == [message(response="utter_identity_noted")]
    assert events == NOTED
    with session_factory() as session:
        profile = customer_for_conversation(session, conversation_id=SENDER)
    assert profile is not None and profile.account_number == DEMO_CONSUMER_ACCOUNT


@pytest.mark.parametrize(
    "text",
    [
        "my email is nobody@example.com",
        "account ACC-99999",
        f"{DEMO_CONSUMER_EMAIL} and {DEMO_BUSINESS_ACCOUNT}",  # two different customers
    ],
)
async def test_unknown_identity_gets_the_same_reply_and_links_nothing(
    session_factory: sessionmaker[Session], text: str
) -> None:
    dispatcher, events = await identify(text)

    # The same words as a match: nobody can probe which e-mails are customers.
    assert dispatcher.messages == [message(response="utter_identity_noted")]
    assert events == NOTED
    with session_factory() as session:
        assert customer_for_conversation(session, conversation_id=SENDER) is None


async def test_no_identifiers_does_not_call_the_bot_service() -> None:
    deps.set_bot_service(unreachable_bot_service())

    dispatcher, events = await identify("it's me, Emma")

    assert dispatcher.messages == [message(response="utter_identity_not_found")]
    assert events == []


async def test_bot_service_down_gives_a_polite_reply(caplog: pytest.LogCaptureFixture) -> None:
    deps.set_bot_service(unreachable_bot_service())
    caplog.set_level(logging.ERROR, logger="actions.identity")

    dispatcher, events = await identify(DEMO_CONSUMER_EMAIL)

    assert dispatcher.messages == [message(response="utter_identity_unavailable")]
    assert events == []
    [record] = caplog.records
    assert f"conversation={SENDER}" in record.getMessage()


def test_rasa_entities_win_and_spacy_fills_the_gaps() -> None:
    tracker = build_tracker(
        conversation(
            user(
                "email a@example.com, order ord-123456, account ACC-11111",
                "give_identity",
                0.9,
                [entity("email", "A@Example.com"), entity("account_number", "not-a-number")],
            )
        )
    )

    assert identifiers_from_tracker(tracker) == Identifiers(
        email="a@example.com", account_number="ACC-11111", order_number="ORD-123456"
    )
