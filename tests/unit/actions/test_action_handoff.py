"""action_handoff_to_human: the record, its context, idempotency and failures."""

from __future__ import annotations

import logging

import pytest
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from actions import deps
from actions.handoff import ActionHandoffToHuman, build_handoff_context, handoff_reason
from actions.identity import ActionIdentifyCustomer
from actions.knowledge import FEEDBACK_BUTTONS, TALK_TO_PERSON_BUTTON, choose_article_payload
from bot.accounts.demo import DEMO_BUSINESS_ACCOUNT
from bot.handoff.models import Ticket
from tests.helpers.trackers import action, bot, build_tracker, conversation, entity, slot, user
from tests.unit.actions.support import message, unreachable_bot_service

SENDER = "conversation-handoff"


def kb_slots(
    query: str | None, article_id: str | None, outcome: str, attempts: float | None
) -> list[dict]:
    events = []
    if query is not None:
        events.append(slot("kb_last_query", query))
    events += [slot("kb_last_article_id", article_id), slot("kb_last_outcome", outcome)]
    if attempts is not None:
        events.append(slot("kb_attempts", attempts))
    return events


def unknown_answer_then_yes() -> list[dict]:
    return conversation(
        user("hi", "greet", 0.99),
        action("utter_greet"),
        bot("Hi! I'm Concierge…", response="utter_greet"),
        user("can I pay with bitcoin?", "ask_question", 0.912345),
        action("action_answer_from_knowledge"),
        bot(
            "I'm not sure about that one…",
            response="utter_kb_unknown",
            buttons=[TALK_TO_PERSON_BUTTON],
        ),
        *kb_slots("can I pay with bitcoin?", None, "unknown", 1.0),
        user("yes please", "affirm", 0.97),
    )


async def run_handoff(events: list[dict], **kwargs) -> tuple[CollectingDispatcher, list]:
    dispatcher = CollectingDispatcher()
    tracker = build_tracker(events, sender_id=kwargs.pop("sender_id", SENDER), **kwargs)
    result = await ActionHandoffToHuman().run(dispatcher, tracker, {})
    return dispatcher, result


async def test_handoff_creates_a_record_with_the_conversation_context(
    session_factory: sessionmaker[Session],
) -> None:
    dispatcher, events = await run_handoff(unknown_answer_then_yes())

    with session_factory() as session:
        [handoff] = session.scalars(select(Ticket)).all()
        assert handoff.conversation_id == SENDER
        assert handoff.status == "queued"
        assert handoff.reason_code == "kb_no_answer"
        assert "can I pay with bitcoin?" in handoff.summary
        assert handoff.reason == "knowledge base had no answer"
        assert handoff.team is not None and handoff.team.name == "Customer Care"
        context = handoff.context
    assert dispatcher.messages == [
        message(
            response="utter_handoff_queued",
            custom={"handoff": {"id": handoff.id, "team": "Customer Care"}},
            team_name="Customer Care",
            wait_message=(
                "Nobody from the team is signed in right now. Your request is saved, and "
                "their reply will appear in this chat as soon as someone is back."
            ),
        )
    ]
    assert events == [
        SlotSet("handoff_id", str(handoff.id)),
        SlotSet("handoff_requested", True),
        SlotSet("kb_unknown_streak", 0.0),
    ]
    assert context["reason_code"] == "kb_no_answer"
    assert context["channel"] == "rest"
    assert context["latest_message"] == "yes please"
    assert [(t["text"], t["intent"], t["confidence"]) for t in context["turns"]] == [
        ("hi", "greet", 0.99),
        ("can I pay with bitcoin?", "ask_question", 0.912),
        ("yes please", "affirm", 0.97),
    ]
    assert context["knowledge"] == {
        "attempts": [
            {"query": "can I pay with bitcoin?", "outcome": "unknown", "article_id": None}
        ],
        "articles_offered": [],
        "articles_answered": [],
    }
    assert context["customer"] == {
        "name": None,
        "email": None,
        "account_number": None,
        "account_name": None,
        "order_number": None,
        "segment": None,
    }


async def test_a_second_handoff_is_already_queued_and_keeps_its_reason(
    session_factory: sessionmaker[Session],
) -> None:
    _, first_events = await run_handoff(unknown_answer_then_yes())
    again = [*unknown_answer_then_yes(), user("I want a human!", "request_human", 0.99)]

    dispatcher, events = await run_handoff(again)

    with session_factory() as session:
        [handoff] = session.scalars(select(Ticket)).all()
        # The first reason stays; the turns are refreshed.
        assert handoff.reason == "knowledge base had no answer"
        assert handoff.context["reason_code"] == "kb_no_answer"
        assert handoff.context["turns"][-1]["text"] == "I want a human!"
    assert dispatcher.messages == [
        message(
            response="utter_handoff_already_queued",
            custom={"handoff": {"id": handoff.id, "team": "Customer Care"}},
            team_name="Customer Care",
            wait_message=dispatcher.messages[0]["wait_message"],
        )
    ]
    assert events == first_events


async def test_a_business_claim_routes_to_the_dedicated_team_marked_unverified(
    session_factory: sessionmaker[Session],
) -> None:
    identify = conversation(
        user(
            f"our account is {DEMO_BUSINESS_ACCOUNT}",
            "give_identity",
            0.95,
            [entity("account_number", DEMO_BUSINESS_ACCOUNT)],
        )
    )
    identity_dispatcher = CollectingDispatcher()
    identity_events = await ActionIdentifyCustomer().run(
        identity_dispatcher, build_tracker(identify, sender_id=SENDER), {}
    )
    events = [*identify, *[slot(e["name"], e["value"]) for e in identity_events]]
    events.append(user("put me through to our account team", "request_human", 0.93))

    dispatcher, _ = await run_handoff(events)

    assert dispatcher.messages[0]["custom"]["handoff"]["team"] == "Key Accounts DACH"
    assert dispatcher.messages[0]["team_name"] == "Key Accounts DACH"
    with session_factory() as session:
        [handoff] = session.scalars(select(Ticket)).all()
        assert handoff.reason == "customer asked for a human"
        assert handoff.identity_verified is False
        assert handoff.account_id is not None
        assert handoff.priority == 2  # business accounts are high priority


async def test_bot_service_down_gives_a_polite_reply_and_logs_the_conversation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    deps.set_bot_service(unreachable_bot_service())
    caplog.set_level(logging.ERROR, logger="actions.handoff")

    dispatcher, events = await run_handoff(unknown_answer_then_yes())

    assert dispatcher.messages == [message(response="utter_handoff_failed")]
    assert events == []
    [record] = caplog.records
    assert f"conversation={SENDER}" in record.getMessage()


def test_context_covers_only_this_session_and_every_knowledge_attempt() -> None:
    old_session = [user("an old question from yesterday", "ask_question", 0.9)]
    events = old_session + conversation(
        user("returns", "ask_question", 0.81),
        action("action_answer_from_knowledge"),
        bot(
            "I found a few articles that might help — which one fits?",
            response="utter_kb_suggestions",
            buttons=[
                {
                    "title": "How do I return an item?",
                    "payload": choose_article_payload("returns-start-a-return"),
                },
                {
                    "title": "Return shipping",
                    "payload": choose_article_payload("returns-shipping-cost"),
                },
                TALK_TO_PERSON_BUTTON,
            ],
        ),
        *kb_slots("returns", None, "suggested", 1.0),
        user(
            choose_article_payload("returns-start-a-return"),
            "choose_article",
            1.0,
            [entity("article_id", "returns-start-a-return")],
        ),
        action("action_answer_chosen_article"),
        bot(
            "Start a return from My orders…",
            buttons=FEEDBACK_BUTTONS,
            custom={
                "citation": {
                    "article_id": "returns-start-a-return",
                    "title": "How do I return an item?",
                    "score": None,
                }
            },
        ),
        *kb_slots(None, "returns-start-a-return", "answered", None),
        user("/feedback_unhelpful", "feedback_unhelpful", 1.0),
        action("action_record_feedback"),
        action("utter_sorry_offer_human"),
        bot("Sorry that didn't help…", response="utter_sorry_offer_human"),
        user("yes", "affirm", 0.96),
    )

    context = build_handoff_context(build_tracker(events))

    assert context["reason"] == "customer said an answer did not help"
    assert context["reason_code"] == "unhelpful_answer"
    assert [turn["intent"] for turn in context["turns"]] == [
        "ask_question",
        "choose_article",
        "feedback_unhelpful",
        "affirm",
    ]
    assert context["turns"][1]["entities"] == [
        {"entity": "article_id", "value": "returns-start-a-return"}
    ]
    assert context["knowledge"] == {
        "attempts": [
            {"query": "returns", "outcome": "suggested", "article_id": None},
            {"query": None, "outcome": "answered", "article_id": "returns-start-a-return"},
        ],
        "articles_offered": ["returns-start-a-return", "returns-shipping-cost"],
        "articles_answered": ["returns-start-a-return"],
    }


def test_context_keeps_the_last_ten_turns() -> None:
    turns = [user(f"question {n}", "ask_question", 0.8) for n in range(14)]

    context = build_handoff_context(build_tracker(conversation(*turns)))

    assert [turn["text"] for turn in context["turns"]] == [f"question {n}" for n in range(4, 14)]


@pytest.mark.parametrize(
    ("last_bot_response", "latest_intent", "expected"),
    [
        ("utter_kb_unknown", "affirm", "kb_no_answer"),
        ("utter_kb_unknown", "request_human", "kb_no_answer"),
        ("utter_kb_suggestions", "request_human", "kb_unsure"),
        ("utter_kb_unavailable", "request_human", "kb_unavailable"),
        ("utter_out_of_scope", "affirm", "out_of_scope"),
        ("utter_offer_human", "affirm", "offer_accepted"),
        ("utter_greet", "request_human", "customer_request"),
        (None, "request_human", "customer_request"),
    ],
)
def test_reason_comes_from_what_the_bot_said_last(
    last_bot_response: str | None, latest_intent: str, expected: str
) -> None:
    events = conversation(
        bot("earlier", response="utter_kb_unknown"),
        user("first", "ask_question"),
    )
    if last_bot_response is not None:
        events.append(bot("…", response=last_bot_response))
    events.append(user("the request", latest_intent))

    code, _ = handoff_reason(build_tracker(events))

    assert code == expected


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        (
            [
                user(
                    "/request_human",
                    "request_human",
                    1.0,
                    [entity("handoff_reason", "frustration")],
                )
            ],
            "frustration",
        ),
        ([user("/feedback_unhelpful", "feedback_unhelpful", 1.0)], "negative_feedback"),
        (
            [slot("kb_unknown_streak", 2.0), user("do you sell boats?", "ask_question", 0.7)],
            "repeated_no_answer",
        ),
        (
            [user("/request_human", "request_human", 1.0, [entity("handoff_reason", "bogus")])],
            "customer_request",
        ),
    ],
    ids=["frustration", "negative-feedback", "two-unanswered", "unknown-named-reason"],
)
def test_triggers_name_their_own_reason(events: list[dict], expected: str) -> None:
    code, _ = handoff_reason(build_tracker(conversation(*events)))

    assert code == expected
