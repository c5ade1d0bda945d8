"""A long article through the bot's real decision and action, with the real encoder.

The demo knowledge base (every article in ``knowledge/articles``) is indexed with the real
all-MiniLM-L6-v2 and the classifier head, as ``kb build`` publishes it. A question about a
late section of the long recycling article is answered with that section's passage, and
the citation names the section and its anchor on the article page.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from rasa_sdk.executor import CollectingDispatcher

from actions import deps
from actions.knowledge import (
    ActionAnswerChosenArticle,
    ActionAnswerFromKnowledge,
    choose_article_payload,
)
from bot.config import get_settings
from bot.web.routes.articles import render_markdown
from knowledge.articles import load_articles
from knowledge.chunking import strip_markdown
from knowledge.head import DEFAULT_HEAD
from knowledge.index import KnowledgeIndex
from tests.helpers.trackers import build_tracker, conversation, entity, user

pytestmark = pytest.mark.integration

ARTICLES_DIR = Path(__file__).resolve().parents[2] / "knowledge" / "articles"
LONG_ARTICLE = "recycling-old-products"


@pytest.fixture(scope="module")
def demo_index() -> KnowledgeIndex:
    from knowledge.encoder import default_encoder

    return KnowledgeIndex.build(load_articles(ARTICLES_DIR), default_encoder(), head=DEFAULT_HEAD)


@pytest.fixture
def knowledge_base(
    demo_index: KnowledgeIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[KnowledgeIndex]:
    monkeypatch.setenv("CONCIERGE_VAR_DIR", str(tmp_path / "var"))
    # Passages score lower than titles and alternate questions: these are answered from
    # 0.55 (knowledge.answering's own default band is 0.52; the bot's configured one may be
    # higher, and then the article is offered as a suggestion instead).
    monkeypatch.setenv("CONCIERGE_KB_ANSWER_THRESHOLD", "0.55")
    monkeypatch.setenv("CONCIERGE_KB_SUGGEST_THRESHOLD", "0.40")
    monkeypatch.setenv("CONCIERGE_KB_ANSWER_MARGIN", "0.03")
    monkeypatch.delenv("CONCIERGE_DATABASE_URL", raising=False)
    monkeypatch.delenv("CONCIERGE_INDEX_DIR", raising=False)
    get_settings.cache_clear()
    deps.reset()
    deps.set_knowledge_base(demo_index)
    yield demo_index
    deps.reset()
    get_settings.cache_clear()


@pytest.mark.parametrize(
    ("question", "section", "anchor", "words"),
    [
        (
            "Do we get a waste transfer note after a bulk collection?",
            "Business customers",
            "business-customers",
            "waste transfer note",
        ),
        (
            "do I need to wipe my old laptop before you recycle it",
            "Wiping your data from phones, laptops and smart devices",
            "wiping-your-data-from-phones-laptops-and-smart-devices",
            "wipe",
        ),
    ],
)
async def test_a_late_section_is_answered_and_cited(
    knowledge_base: KnowledgeIndex, question: str, section: str, anchor: str, words: str
) -> None:
    collecting = CollectingDispatcher()
    tracker = build_tracker(conversation(user(question, "ask_question", 0.95)), sender_id="c-1")

    await ActionAnswerFromKnowledge().run(collecting, tracker, {})

    reply = collecting.messages[0]
    citation = reply["custom"]["citation"]
    assert citation["article_id"] == LONG_ARTICLE
    assert citation["section"] == section
    assert citation["anchor"] == anchor
    assert words in reply["text"]
    article = knowledge_base.article(LONG_ARTICLE)
    assert article is not None
    assert reply["text"] != strip_markdown(article.summary)  # the passage, not the summary
    assert f'id="{anchor}"' in render_markdown(article.body)  # the link lands on the section


async def test_a_long_article_picked_from_suggestions_answers_with_the_matching_section(
    knowledge_base: KnowledgeIndex,
) -> None:
    question = "do I need to wipe my old laptop before you recycle it"
    pick = user(
        choose_article_payload(LONG_ARTICLE),
        "choose_article",
        1.0,
        [entity("article_id", LONG_ARTICLE)],
    )
    collecting = CollectingDispatcher()
    tracker = build_tracker(conversation(pick), slots={"kb_last_query": question})

    await ActionAnswerChosenArticle().run(collecting, tracker, {})

    reply = collecting.messages[0]
    assert reply["custom"]["citation"]["anchor"] == (
        "wiping-your-data-from-phones-laptops-and-smart-devices"
    )
    assert "wipe" in reply["text"]
