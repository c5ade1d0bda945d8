"""action_answer_from_knowledge for messages Rasa used to route elsewhere.

Out-of-scope-looking messages and questions quoting an order number now reach the
knowledge action (data/rules); these tests cover what the action does with them.
"""

from __future__ import annotations

import pytest
from rasa_sdk.events import FollowupAction
from rasa_sdk.executor import CollectingDispatcher

from actions.knowledge import ActionAnswerFromKnowledge
from knowledge.articles import Article
from tests.helpers.trackers import build_tracker, conversation, entity, user
from tests.unit.actions.support import FakeKnowledgeBase, make_hit


async def run(*events: dict, slots: dict | None = None) -> tuple[CollectingDispatcher, list]:
    dispatcher = CollectingDispatcher()
    tracker = build_tracker(conversation(*events), slots=slots, sender_id="c-routing")
    return dispatcher, await ActionAnswerFromKnowledge().run(dispatcher, tracker, {})


async def test_no_answer_to_an_out_of_scope_message_uses_the_out_of_scope_wording(
    fake_kb: FakeKnowledgeBase,
) -> None:
    fake_kb.hits = []

    dispatcher, _ = await run(user("tell me a joke", "out_of_scope", 0.99))

    assert [m.get("response") for m in dispatcher.messages] == ["utter_out_of_scope"]


async def test_no_answer_to_a_question_keeps_the_knowledge_wording(
    fake_kb: FakeKnowledgeBase,
) -> None:
    fake_kb.hits = []

    dispatcher, _ = await run(user("what is a flux capacitor", "ask_question", 0.99))

    assert [m.get("response") for m in dispatcher.messages] == ["utter_kb_unknown"]


async def test_an_out_of_scope_looking_question_is_answered_when_the_knowledge_base_can(
    fake_kb: FakeKnowledgeBase, articles: dict[str, Article]
) -> None:
    fake_kb.hits = [make_hit(articles["returns-start-a-return"], 0.9)]

    dispatcher, _ = await run(user("can i send it back tomorrow", "out_of_scope", 0.7))

    assert dispatcher.messages[0]["custom"]["citation"]["article_id"] == "returns-start-a-return"


@pytest.mark.parametrize(
    ("text", "searched"),
    [
        ("how do I return ORD-482913 please", "how do I return please"),
        # Rasa's entity is the first number; the second is only in the text: both go.
        ("how do I return ORD-482913 and ord-100200", "how do I return and"),
    ],
)
async def test_a_question_quoting_an_order_number_is_searched_without_it_and_noted(
    fake_kb: FakeKnowledgeBase, articles: dict[str, Article], text: str, searched: str
) -> None:
    fake_kb.hits = [make_hit(articles["returns-start-a-return"], 0.9)]

    dispatcher, events = await run(
        user(text, "ask_question", 0.9, [entity("order_number", "ORD-482913", start=16)])
    )

    assert fake_kb.calls[0][0] == searched
    assert dispatcher.messages[0]["custom"]["citation"]["article_id"] == "returns-start-a-return"
    assert events[-1] == FollowupAction("action_identify_customer")
    assert events[0]["value"] == text  # kb_last_query keeps what the customer typed


async def test_an_email_found_by_parsing_alone_is_also_noted(
    fake_kb: FakeKnowledgeBase, articles: dict[str, Article]
) -> None:
    fake_kb.hits = [make_hit(articles["returns-start-a-return"], 0.9)]

    _, events = await run(user("I'm jo@example.com, how do returns work", "ask_question"))

    assert fake_kb.calls[0][0] == "I'm , how do returns work"
    assert events[-1] == FollowupAction("action_identify_customer")


async def test_a_plain_question_gets_no_follow_up(
    fake_kb: FakeKnowledgeBase, articles: dict[str, Article]
) -> None:
    fake_kb.hits = [make_hit(articles["returns-start-a-return"], 0.9)]

    _, events = await run(user("how do returns work", "ask_question"))

    assert not any(event.get("event") == "followup" for event in events)


async def test_the_second_unanswered_question_hands_over_even_with_an_order_number(
    fake_kb: FakeKnowledgeBase,
) -> None:
    fake_kb.hits = []

    _, events = await run(
        user("ORD-482913 flux capacitor", "ask_question"), slots={"kb_unknown_streak": 1.0}
    )

    followups = [event for event in events if event.get("event") == "followup"]
    assert followups == [FollowupAction("action_handoff_to_human")]


def test_the_action_uses_the_bands_from_the_one_place_in_the_settings() -> None:
    from actions.knowledge import answer_policy
    from bot import constants
    from bot.config import Settings

    settings = Settings(kb_answer_threshold=0.8, kb_suggest_threshold=0.3, kb_answer_margin=0.1)

    assert answer_policy(settings) == settings.kb_answer_policy()
    assert (
        settings.kb_answer_policy().answer_threshold,
        settings.kb_answer_policy().suggest_threshold,
        settings.kb_answer_policy().answer_margin,
    ) == (0.8, 0.3, 0.1)
    assert Settings().kb_answer_policy().answer_margin == constants.DEFAULT_KB_ANSWER_MARGIN
