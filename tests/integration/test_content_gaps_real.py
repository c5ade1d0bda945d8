"""Content gaps with the real MiniLM: paraphrases of a missing topic group, topics do not mix.

The demo articles are built into a published index with the packaged model, carrying its
ONNX int8 query encoder, exactly as ``python -m bot kb build`` does; the questions are then
embedded with that build's query encoder (:func:`bot.content_gaps.service.live_query_encoder`)
and the nearest article is searched through the live index like the bot does.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bot.content_gaps.collect import GapQuestion
from bot.content_gaps.service import group_questions, live_query_encoder
from knowledge.answering import AnswerPolicy
from knowledge.articles import load_articles
from knowledge.index import KnowledgeIndex
from knowledge.onnx_encoder import OnnxEncoder
from knowledge.store import LiveKnowledgeBase, publish
from tests.helpers.onnx_export import real_onnx_export

pytestmark = pytest.mark.integration

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
POLICY = AnswerPolicy()  # the library's defaults (chosen on CLINC150 val)

# Topics the demo knowledge base has no article for, each asked three ways, plus one it
# does cover (refund timing) asked by customers who then said the answer did not help.
TOPICS: dict[str, list[str]] = {
    "jobs": [
        "Are you hiring at the moment?",
        "do you have any job openings",
        "I'd like to work for you, any vacancies?",
    ],
    "price match": [
        "do you price match competitors",
        "will you match a lower price from another shop",
        "if I find it cheaper somewhere else can you match the price?",
    ],
    "shops": [
        "where is your nearest shop",
        "do you have a physical store I can visit",
        "is there a store in my city",
    ],
    "gift wrap": [
        "can you gift wrap my order",
        "do you offer gift wrapping",
        "is gift wrap available at checkout",
    ],
    "refund timing": [
        "when do I get my money back",
        "how long until my refund arrives?",
        "my refund still hasn't come through, how many days does it take",
    ],
}


@pytest.fixture(scope="module")
def live_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from knowledge.encoder import SentenceTransformerEncoder

    export = real_onnx_export(tmp_path_factory)
    encoder = SentenceTransformerEncoder()
    index = KnowledgeIndex.build(
        load_articles(PROJECT_ROOT / "knowledge" / "articles"), encoder, query_encoder_dir=export
    )
    root = tmp_path_factory.mktemp("content-gaps-index")
    publish(index, root)
    return root


def questions() -> list[GapQuestion]:
    result: list[GapQuestion] = []
    for topic, texts in TOPICS.items():
        for text in texts:
            number = len(result)
            result.append(
                GapQuestion(
                    message_id=number,
                    conversation_id=f"c{number}",
                    contact_id=None,
                    segment=None,
                    text=text,
                    asked_at=NOW - dt.timedelta(minutes=number),
                    kind="unhelpful" if topic == "refund timing" else "unanswered",
                    article_id="refunds-timing" if topic == "refund timing" else None,
                )
            )
    return result


def test_paraphrases_group_together_and_topics_stay_apart(live_root: Path) -> None:
    build_id, encoder = live_query_encoder(live_root)
    assert isinstance(encoder, OnnxEncoder)  # the build's own ONNX int8 encoder, no torch
    live = LiveKnowledgeBase(live_root)

    groups, total, nearest_ok = group_questions(
        questions(), encoder=encoder, search=live, policy=POLICY
    )

    assert nearest_ok and build_id == live.build_id
    by_topic = {
        topic: [group for group in groups if set(group.examples) & set(texts)]
        for topic, texts in TOPICS.items()
    }
    for topic, found in by_topic.items():
        assert len(found) == 1, (topic, [g.examples for g in found])  # one group per topic
        assert sorted(found[0].examples) == sorted(TOPICS[topic]), topic  # and only its own
    assert len(groups) == total == len(TOPICS)
    refunds = by_topic["refund timing"][0]
    assert refunds.nearest is not None and refunds.nearest.article_id == "refunds-timing"
    assert refunds.unhelpful == 3 and refunds.answered_with == ["refunds-timing"]
    for topic in ("jobs", "price match", "shops", "gift wrap"):
        nearest = by_topic[topic][0].nearest
        assert nearest is not None and nearest.band != "answer", (topic, nearest)
