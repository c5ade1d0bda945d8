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
    DEMO_CONSUMER_ACCOUNT,
    DEMO_CONSUMER_EMAIL,
    DEMO_CONSUMER_ORDER,
)
from bot.accounts.service import customer_for_conversation
from tests.helpers.trackers import build_tracker, conversation, entity, user
from tests.unit.actions.support import broken_session_factory, message

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


def consumer_slots(order_number: str | None = None) -> list[dict]:
    return [
        SlotSet("customer_email", DEMO_CONSUMER_EMAIL),
        SlotSet("account_number", DEMO_CONSUMER_ACCOUNT),
        SlotSet("order_number", order_number),
        SlotSet("customer_segment", "b2c"),
        SlotSet("account_name", "Emma Clarke"),
        SlotSet("customer_name", "Emma Clarke"),
    ]


async def test_identify_by_email_entity_links_the_conversation(
    session_factory: sessionmaker[Session],
) -> None:
    dispatcher, events = await identify(
        f"my email is {DEMO_CONSUMER_EMAIL.upper()}",
        [entity("email", DEMO_CONSUMER_EMAIL.upper(), start=12)],
    )

    assert dispatcher.messages == [
        message(response="utter_identity_confirmed", customer_name="Emma")
    ]
    assert events == consumer_slots()
    with session_factory() as session:
        profile = customer_for_conversation(session, conversation_id=SENDER)
    assert profile is not None and profile.email == DEMO_CONSUMER_EMAIL


async def test_identify_business_account_parsed_from_text_mentions_the_dedicated_team(
    session_factory: sessionmaker[Session],
) -> None:
    dispatcher, events = await identify(f"we're {DEMO_BUSINESS_ACCOUNT.lower()}, thanks")

    assert dispatcher.messages == [
        message(
            response="utter_identity_confirmed_business",
            customer_name="Ingrid",
            account_name="Fjord Architects GmbH",
            team_name="Key Accounts DACH",
        )
    ]
    assert events == [
        SlotSet("customer_email", DEMO_BUSINESS_EMAIL),
        SlotSet("account_number", DEMO_BUSINESS_ACCOUNT),
        SlotSet("order_number", None),
        SlotSet("customer_segment", "b2b"),
        SlotSet("account_name", "Fjord Architects GmbH"),
        SlotSet("customer_name", "Ingrid Halvorsen"),
    ]


async def test_identify_by_order_number(session_factory: sessionmaker[Session]) -> None:
    dispatcher, events = await identify(
        f"order {DEMO_CONSUMER_ORDER}", [entity("order_number", DEMO_CONSUMER_ORDER, start=6)]
    )

    assert dispatcher.messages == [
        message(response="utter_identity_confirmed", customer_name="Emma")
    ]
    assert events == consumer_slots(order_number=DEMO_CONSUMER_ORDER)


@pytest.mark.parametrize(
    "text",
    [
        "my email is nobody@example.com",
        "account ACC-99999",
        f"{DEMO_CONSUMER_EMAIL} and {DEMO_BUSINESS_ACCOUNT}",  # two different customers
    ],
)
async def test_unknown_identity_is_not_found(
    session_factory: sessionmaker[Session], text: str
) -> None:
    dispatcher, events = await identify(text)

    assert dispatcher.messages == [message(response="utter_identity_not_found")]
    assert events == []
    with session_factory() as session:
        assert customer_for_conversation(session, conversation_id=SENDER) is None


async def test_no_identifiers_does_not_touch_the_database() -> None:
    deps.set_session_factory(broken_session_factory)

    dispatcher, events = await identify("it's me, Emma")

    assert dispatcher.messages == [message(response="utter_identity_not_found")]
    assert events == []


async def test_database_failure_gives_a_polite_reply(caplog: pytest.LogCaptureFixture) -> None:
    deps.set_session_factory(broken_session_factory)
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
