"""An out-of-scope article in the demo knowledge base, with the real encoder and head.

The demo articles plus one tagged ``out-of-scope`` (written here; the demo does not ship
one, see docs/benchmarks.md) are indexed with the real all-MiniLM-L6-v2 and the
classifier head, as ``kb build`` publishes them. Off-topic questions that the knowledge
base alone would still have ranked articles for find nothing, the bot's action says it
does not know, and in-domain questions are answered as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rasa_sdk.executor import CollectingDispatcher

from actions import deps
from actions.knowledge import ActionAnswerFromKnowledge
from bot.config import get_settings
from knowledge.answering import BAND_ANSWER, answer_question
from knowledge.articles import OUT_OF_SCOPE_TAG, Article, load_articles
from knowledge.head import DEFAULT_HEAD
from knowledge.index import KnowledgeIndex
from tests.helpers.trackers import build_tracker, conversation, user

pytestmark = pytest.mark.integration

ARTICLES_DIR = Path(__file__).resolve().parents[2] / "knowledge" / "articles"
LISTED = [
    "What will the weather be like this weekend?",
    "tell me a joke",
    "Who won the football last night",
    "Should I buy shares in tech companies?",
    "Book me a taxi to the airport",
]
OFF_TOPIC = [
    "what's the weather like in Paris tomorrow?",
    "can you tell me a funny joke",
    "who will win the football on saturday",
    "which stocks should I invest in",
]
NEAR_MISS = "should I buy shares in Kestrel"
IN_DOMAIN = {
    "my parcel has not arrived": "delivery-missed-delivery",
    "how do I reset my password": "account-reset-password",
    "can I pay in instalments": "payments-pay-in-instalments",
}


def _out_of_scope_article() -> Article:
    template = load_articles(ARTICLES_DIR)[0]
    return template.model_copy(
        update={
            "id": "out-of-scope-questions",
            "title": "Questions Kestrel customer support does not answer",
            "audience": "all",
            "tags": [OUT_OF_SCOPE_TAG],
            "questions": LISTED,
            "body": "General knowledge, news, advice on money and chit-chat.",
            "path": None,
        }
    )


@pytest.fixture(scope="module")
def indexes() -> tuple[KnowledgeIndex, KnowledgeIndex]:
    from knowledge.encoder import default_encoder

    encoder = default_encoder()
    articles = load_articles(ARTICLES_DIR)
    plain = KnowledgeIndex.build(articles, encoder, head=DEFAULT_HEAD)
    listed = KnowledgeIndex.build([*articles, _out_of_scope_article()], encoder, head=DEFAULT_HEAD)
    return plain, listed


@pytest.fixture
def use_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Point the action server's knowledge base at an index (the bot's own thresholds)."""
    monkeypatch.setenv("CONCIERGE_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("CONCIERGE_DATABASE_URL", raising=False)
    monkeypatch.delenv("CONCIERGE_INDEX_DIR", raising=False)
    get_settings.cache_clear()
    deps.reset()
    yield deps.set_knowledge_base
    deps.reset()
    get_settings.cache_clear()


@pytest.mark.parametrize("question", OFF_TOPIC)
def test_off_topic_questions_find_nothing_only_with_the_article(
    indexes: tuple[KnowledgeIndex, KnowledgeIndex], question: str
) -> None:
    plain, listed = indexes

    assert plain.search(question, 3)  # without it, some article is always nearest
    assert listed.search(question, 3) == []
    assert listed.search(question, 1, raw=True)[0].article_id == "out-of-scope-questions"


def test_in_domain_questions_are_answered_as_before(
    indexes: tuple[KnowledgeIndex, KnowledgeIndex],
) -> None:
    policy = get_settings().kb_answer_policy()
    for question, expected in IN_DOMAIN.items():
        for index in indexes:
            answer = answer_question(index, question, policy=policy)
            assert answer.band == BAND_ANSWER, (question, answer.to_dict())
            assert answer.article is not None and answer.article.article_id == expected


async def test_the_action_declines_what_it_would_have_suggested(
    indexes: tuple[KnowledgeIndex, KnowledgeIndex], use_index: Callable[[object], None]
) -> None:
    """Without the article the bot offers Kestrel Plus for a question about shares."""
    replies = {}
    for name, index in zip(("plain", "listed"), indexes, strict=True):
        use_index(index)
        collecting = CollectingDispatcher()
        tracker = build_tracker(conversation(user(NEAR_MISS, "ask_question", 0.95)))
        events = await ActionAnswerFromKnowledge().run(collecting, tracker, {})
        slots = {e["name"]: e["value"] for e in events if e["event"] == "slot"}
        replies[name] = (collecting.messages, slots["kb_last_outcome"])

    suggested, outcome = replies["plain"]
    assert outcome == "suggested" and suggested[-1]["buttons"]
    declined, outcome = replies["listed"]
    assert outcome == "unknown"
    assert [m["response"] for m in declined] == ["utter_kb_unknown"]
    assert declined[0]["buttons"] == [] and declined[0]["custom"] == {}
