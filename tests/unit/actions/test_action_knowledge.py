"""action_answer_from_knowledge and action_answer_chosen_article."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import deps
from actions.knowledge import (
    FEEDBACK_BUTTONS,
    TALK_TO_PERSON_BUTTON,
    ActionAnswerChosenArticle,
    ActionAnswerFromKnowledge,
    choose_article_payload,
)
from knowledge.articles import Article
from knowledge.chunking import strip_markdown
from knowledge.index import Hit, KnowledgeIndex
from knowledge.store import LiveKnowledgeBase
from tests.helpers.fake_encoder import FakeEncoder
from tests.helpers.trackers import build_tracker, conversation, entity, slot, user
from tests.unit.actions.support import FakeKnowledgeBase, make_hit, message

SENDER = "conversation-kb"


async def run_answer(*events: dict, slots: dict | None = None) -> tuple[CollectingDispatcher, list]:
    dispatcher = CollectingDispatcher()
    tracker = build_tracker(conversation(*events), slots=slots, sender_id=SENDER)
    result = await ActionAnswerFromKnowledge().run(dispatcher, tracker, {})
    return dispatcher, result


def kb_events(
    query: str,
    article_id: str | None,
    outcome: str,
    attempts: float,
    streak: float | None = 0.0,
) -> list[dict]:
    events = [
        SlotSet("kb_last_query", query),
        SlotSet("kb_last_article_id", article_id),
        SlotSet("kb_last_outcome", outcome),
        SlotSet("kb_attempts", attempts),
    ]
    return events if streak is None else [*events, SlotSet("kb_unknown_streak", streak)]


async def test_answer_band_sends_summary_with_citation_and_feedback_buttons(
    fake_kb: FakeKnowledgeBase, articles: dict[str, Article]
) -> None:
    article = articles["returns-start-a-return"]
    fake_kb.hits = [make_hit(article, 0.81234), make_hit(articles["returns-shipping-cost"], 0.6)]

    dispatcher, events = await run_answer(
        user("how do I send something back?", "ask_question", 0.97)
    )

    assert dispatcher.messages == [
        message(
            text=strip_markdown(article.summary),
            buttons=FEEDBACK_BUTTONS,
            custom={
                "citation": {
                    "article_id": "returns-start-a-return",
                    "title": "How do I return an item?",
                    "score": 0.812,
                }
            },
        )
    ]
    assert events == kb_events(
        "how do I send something back?", "returns-start-a-return", "answered", 1.0
    )
    assert fake_kb.calls == [("how do I send something back?", 3, "b2c")]
    # The article's Markdown (**My orders**) reaches the customer as plain text.
    assert "**" in article.summary
    assert "My orders" in dispatcher.messages[0]["text"]
    assert "*" not in dispatcher.messages[0]["text"]


async def test_attempts_count_up_from_the_slot(
    fake_kb: FakeKnowledgeBase, articles: dict[str, Article]
) -> None:
    fake_kb.hits = [make_hit(articles["delivery-costs"], 0.9)]

    _, events = await run_answer(
        slot("kb_attempts", 2.0), user("how much is shipping?", "ask_question", 0.99)
    )

    assert events == kb_events("how much is shipping?", "delivery-costs", "answered", 3.0)


async def test_suggest_band_offers_articles_above_the_suggest_threshold_and_a_person(
    fake_kb: FakeKnowledgeBase, articles: dict[str, Article]
) -> None:
    fake_kb.hits = [
        make_hit(articles["refunds-timing"], 0.52),
        make_hit(articles["refunds-method"], 0.47),
        make_hit(articles["refunds-partial-refund"], 0.31),
    ]

    dispatcher, events = await run_answer(user("money back?", "nlu_fallback", 0.41))

    assert dispatcher.messages == [
        message(
            response="utter_kb_suggestions",
            buttons=[
                {
                    "title": articles["refunds-timing"].title,
                    "payload": '/choose_article{"article_id":"refunds-timing"}',
                },
                {
                    "title": articles["refunds-method"].title,
                    "payload": '/choose_article{"article_id":"refunds-method"}',
                },
                TALK_TO_PERSON_BUTTON,
            ],
        )
    ]
    assert events == kb_events("money back?", None, "suggested", 1.0)


@pytest.mark.parametrize("scores", [[0.39, 0.2], []], ids=["low-scores", "no-hits"])
async def test_unknown_band_says_so_instead_of_guessing(
    fake_kb: FakeKnowledgeBase, articles: dict[str, Article], scores: list[float]
) -> None:
    ids = ["warranty-coverage", "orders-wrong-item"]
    fake_kb.hits = [make_hit(articles[i], s) for i, s in zip(ids, scores, strict=False)]

    dispatcher, events = await run_answer(user("can I pay with bitcoin?", "ask_question", 0.88))

    assert dispatcher.messages == [message(response="utter_kb_unknown")]
    assert events == kb_events("can I pay with bitcoin?", None, "unknown", 1.0, streak=1.0)


async def test_a_second_unanswered_question_in_a_row_hands_over_to_a_person(
    fake_kb: FakeKnowledgeBase,
) -> None:
    fake_kb.hits = []

    dispatcher, events = await run_answer(
        slot("kb_unknown_streak", 1.0), user("do you sell boats?", "ask_question", 0.7)
    )

    assert dispatcher.messages == [message(response="utter_kb_unknown_again")]
    assert events == [
        *kb_events("do you sell boats?", None, "unknown", 1.0, streak=2.0),
        FollowupAction("action_handoff_to_human"),
    ]


async def test_an_answer_resets_the_unanswered_streak(
    fake_kb: FakeKnowledgeBase, articles: dict[str, Article]
) -> None:
    fake_kb.hits = [make_hit(articles["delivery-costs"], 0.9)]

    _, events = await run_answer(
        slot("kb_unknown_streak", 1.0), user("how much is shipping?", "ask_question", 0.99)
    )

    assert SlotSet("kb_unknown_streak", 0.0) in events
    assert not any(event.get("event") == "followup" for event in events)


@pytest.mark.parametrize("text", ["/ask_question", '/choose_article{"article_id":"x"}', "   "])
async def test_button_payloads_and_empty_text_are_not_searched(
    fake_kb: FakeKnowledgeBase, text: str
) -> None:
    dispatcher, events = await run_answer(user(text, "ask_question"))

    assert fake_kb.calls == []
    assert dispatcher.messages == [message(response="utter_default")]
    assert events == []


async def test_consumers_get_a_business_article_only_when_it_answers_confidently(
    fake_kb: FakeKnowledgeBase, articles: dict[str, Article]
) -> None:
    fake_kb.hits = [
        make_hit(articles["business-volume-pricing"], 0.84),
        make_hit(articles["plus-membership-benefits"], 0.42),
    ]

    dispatcher, events = await run_answer(user("bulk discount for 40 chairs?", "ask_question"))

    assert fake_kb.calls == [
        ("bulk discount for 40 chairs?", 3, "b2c"),
        ("bulk discount for 40 chairs?", 3, None),
    ]
    assert dispatcher.messages[0]["custom"]["citation"]["article_id"] == "business-volume-pricing"
    assert events[1] == SlotSet("kb_last_article_id", "business-volume-pricing")


async def test_consumers_are_not_offered_business_only_suggestions(
    fake_kb: FakeKnowledgeBase, articles: dict[str, Article]
) -> None:
    fake_kb.hits = [
        make_hit(articles["business-returns"], 0.5),
        make_hit(articles["returns-start-a-return"], 0.45),
    ]

    dispatcher, events = await run_answer(user("returning stuff", "ask_question"))

    payloads = [button["payload"] for button in dispatcher.messages[0]["buttons"]]
    assert payloads == [choose_article_payload("returns-start-a-return"), "/request_human"]
    assert events[2] == SlotSet("kb_last_outcome", "suggested")


async def test_business_customers_search_business_articles_first(
    fake_kb: FakeKnowledgeBase, articles: dict[str, Article]
) -> None:
    fake_kb.hits = [
        make_hit(articles["returns-start-a-return"], 0.7),
        make_hit(articles["business-returns"], 0.66),
    ]

    dispatcher, _ = await run_answer(
        user("how do we return an item?", "ask_question"), slots={"customer_segment": "b2b"}
    )

    assert fake_kb.calls == [("how do we return an item?", 3, "b2b")]
    assert dispatcher.messages[0]["custom"]["citation"]["article_id"] == "business-returns"


async def test_index_not_built_gives_a_polite_reply_and_logs_the_conversation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    deps.set_knowledge_base(
        LiveKnowledgeBase(tmp_path / "no-index", FakeEncoder(), check_interval=0)
    )
    caplog.set_level(logging.ERROR, logger="actions.knowledge")

    dispatcher, events = await run_answer(user("where is my order?", "ask_question"))

    assert dispatcher.messages == [message(response="utter_kb_unavailable")]
    assert events == kb_events("where is my order?", None, "unavailable", 1.0, streak=None)
    [record] = caplog.records
    assert f"conversation={SENDER}" in record.getMessage()
    assert record.exc_info is not None
    assert type(record.exc_info[1]).__name__ == "IndexNotBuiltError"


async def test_real_index_with_fake_encoder_answers_an_article_title(
    articles: dict[str, Article],
) -> None:
    index = KnowledgeIndex.build(list(articles.values()), FakeEncoder())
    deps.set_knowledge_base(index)

    dispatcher, events = await run_answer(user("How do I return an item?", "ask_question"))

    assert dispatcher.messages[0]["text"] == strip_markdown(
        articles["returns-start-a-return"].summary
    )
    assert dispatcher.messages[0]["custom"]["citation"]["score"] == pytest.approx(1.0, abs=1e-3)
    assert events[1] == SlotSet("kb_last_article_id", "returns-start-a-return")


async def test_chosen_article_is_answered_with_a_citation(
    fake_kb: FakeKnowledgeBase, articles: dict[str, Article]
) -> None:
    article = articles["refunds-timing"]
    payload = choose_article_payload("refunds-timing")
    tracker = build_tracker(
        conversation(
            user(payload, "choose_article", 1.0, [entity("article_id", "refunds-timing")])
        ),
        sender_id=SENDER,
    )
    dispatcher = CollectingDispatcher()

    events = await ActionAnswerChosenArticle().run(dispatcher, tracker, {})

    assert dispatcher.messages == [
        message(
            text=strip_markdown(article.summary),
            buttons=FEEDBACK_BUTTONS,
            custom={
                "citation": {"article_id": "refunds-timing", "title": article.title, "score": None}
            },
        )
    ]
    assert events == [
        SlotSet("kb_last_article_id", "refunds-timing"),
        SlotSet("kb_last_outcome", "answered"),
    ]


def refunds_hit(articles: dict[str, Article], **fields: Any) -> Hit:
    """The refunds-timing article's hit (fields override the title match)."""
    article = articles["refunds-timing"]
    return Hit(
        **{
            "article_id": article.id,
            "title": article.title,
            "score": 0.5,
            "summary": article.summary,
            "audience": article.audience,
            "matched_text": article.title,
            **fields,
        }
    )


def picked(article_id: str, question: str) -> Tracker:
    """A tracker whose latest message picks an article offered for ``question``."""
    payload = choose_article_payload(article_id)
    return build_tracker(
        conversation(user(payload, "choose_article", 1.0, [entity("article_id", article_id)])),
        slots={"kb_last_query": question},
    )


async def test_chosen_long_article_answers_with_the_passage_that_matched_the_question(
    fake_kb: FakeKnowledgeBase, articles: dict[str, Article]
) -> None:
    fake_kb.hits = [
        refunds_hit(
            articles,
            matched_text="Card refunds\nCard refunds take up to 5 working days.",
            passage="Card refunds take up to 5 working days.",
            section="Card refunds",
            section_anchor="card-refunds",
        )
    ]
    tracker = picked("refunds-timing", "how long for money back on my card")
    dispatcher = CollectingDispatcher()

    await ActionAnswerChosenArticle().run(dispatcher, tracker, {})

    assert dispatcher.messages[0]["text"] == "Card refunds take up to 5 working days."
    cited = dispatcher.messages[0]["custom"]["citation"]
    assert (cited["section"], cited["anchor"]) == ("Card refunds", "card-refunds")
    assert ("how long for money back on my card", 1, "refunds-timing") in fake_kb.calls


async def test_a_chosen_article_is_matched_against_the_question_as_searched(
    fake_kb: FakeKnowledgeBase, articles: dict[str, Article]
) -> None:
    # The search left the order number and e-mail out; so does the match of the pick.
    fake_kb.hits = [refunds_hit(articles)]
    tracker = picked(
        "refunds-timing", "refund for ord-123456 and ORD-654321 to jo@example.com still missing"
    )

    await ActionAnswerChosenArticle().run(CollectingDispatcher(), tracker, {})

    assert fake_kb.calls == [("refund for and to still missing", 1, "refunds-timing")]


@pytest.mark.parametrize(("segment", "answered"), [(None, False), ("b2c", False), ("b2b", True)])
async def test_a_business_only_article_is_picked_only_by_a_verified_business_contact(
    fake_kb: FakeKnowledgeBase, articles: dict[str, Article], segment: str | None, answered: bool
) -> None:
    # Consumers are never offered business-only articles as suggestions: such a pick is a
    # forged or stale button and gets "I don't know", not the article.
    assert articles["business-net30-invoicing"].audience == "b2b"
    payload = choose_article_payload("business-net30-invoicing")
    tracker = build_tracker(
        conversation(
            user(payload, "choose_article", 1.0, [entity("article_id", "business-net30-invoicing")])
        ),
        slots={"customer_segment": segment},
    )
    dispatcher = CollectingDispatcher()

    events = await ActionAnswerChosenArticle().run(dispatcher, tracker, {})

    if answered:
        assert dispatcher.messages[0]["custom"]["citation"]["article_id"] == (
            "business-net30-invoicing"
        )
    else:
        assert dispatcher.messages == [message(response="utter_kb_unknown")]
        assert events[0] == SlotSet("kb_last_article_id", None)


@pytest.mark.parametrize(
    "entities", [[entity("article_id", "no-such-article")], []], ids=["unknown", "missing"]
)
async def test_unknown_or_missing_chosen_article(
    fake_kb: FakeKnowledgeBase, entities: list[dict]
) -> None:
    tracker = build_tracker(conversation(user("/choose_article", "choose_article", 1.0, entities)))
    dispatcher = CollectingDispatcher()

    events = await ActionAnswerChosenArticle().run(dispatcher, tracker, {})

    assert dispatcher.messages == [message(response="utter_kb_unknown")]
    assert events == [SlotSet("kb_last_article_id", None), SlotSet("kb_last_outcome", "unknown")]


async def test_chosen_article_when_the_index_is_missing(tmp_path: Path) -> None:
    deps.set_knowledge_base(LiveKnowledgeBase(tmp_path / "no-index", FakeEncoder()))
    tracker = build_tracker(
        conversation(
            user("/choose_article", "choose_article", 1.0, [entity("article_id", "refunds-timing")])
        )
    )
    dispatcher = CollectingDispatcher()

    events = await ActionAnswerChosenArticle().run(dispatcher, tracker, {})

    assert dispatcher.messages == [message(response="utter_kb_unavailable")]
    assert events == [
        SlotSet("kb_last_article_id", None),
        SlotSet("kb_last_outcome", "unavailable"),
    ]


async def test_business_customers_prefer_a_close_business_article(
    fake_kb: FakeKnowledgeBase, articles: dict[str, Article]
) -> None:
    fake_kb.hits = [
        make_hit(articles["invoices-get-an-invoice"], 0.797),
        make_hit(articles["business-net30-invoicing"], 0.783),
    ]

    dispatcher, events = await run_answer(
        user("can we pay by invoice?", "ask_question"), slots={"customer_segment": "b2b"}
    )

    citation = dispatcher.messages[0]["custom"]["citation"]
    assert (citation["article_id"], citation["score"]) == ("business-net30-invoicing", 0.783)
    assert events[1] == SlotSet("kb_last_article_id", "business-net30-invoicing")


@pytest.mark.parametrize(
    ("general", "business"),
    [(0.70, 0.64), (0.57, 0.53)],
    ids=["too-far-behind", "other-band"],
)
async def test_business_preference_needs_a_close_score_in_the_same_band(
    fake_kb: FakeKnowledgeBase, articles: dict[str, Article], general: float, business: float
) -> None:
    fake_kb.hits = [
        make_hit(articles["invoices-get-an-invoice"], general),
        make_hit(articles["business-net30-invoicing"], business),
    ]

    dispatcher, _ = await run_answer(
        user("invoices", "ask_question"), slots={"customer_segment": "b2b"}
    )

    assert dispatcher.messages[0]["custom"]["citation"]["article_id"] == "invoices-get-an-invoice"


async def test_bands_and_top_k_come_from_the_settings(
    fake_kb: FakeKnowledgeBase, articles: dict[str, Article], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.config import get_settings

    monkeypatch.setenv("CONCIERGE_KB_ANSWER_THRESHOLD", "0.9")
    monkeypatch.setenv("CONCIERGE_KB_SUGGEST_THRESHOLD", "0.6")
    monkeypatch.setenv("CONCIERGE_KB_TOP_K", "1")
    get_settings.cache_clear()
    fake_kb.hits = [
        make_hit(articles["delivery-costs"], 0.8),
        make_hit(articles["delivery-international"], 0.7),
    ]

    dispatcher, events = await run_answer(user("shipping costs abroad", "ask_question"))

    assert dispatcher.messages[0]["response"] == "utter_kb_suggestions"
    assert [b["payload"] for b in dispatcher.messages[0]["buttons"]] == [
        choose_article_payload("delivery-costs"),
        "/request_human",
    ]
    assert fake_kb.calls[0] == ("shipping costs abroad", 1, "b2c")
    assert events[2] == SlotSet("kb_last_outcome", "suggested")
