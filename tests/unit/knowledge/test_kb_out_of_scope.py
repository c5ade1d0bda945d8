"""Out-of-scope articles: questions the bot must decline, listed as an article.

An article tagged ``out-of-scope`` is searched like any other; when it ranks first the
search finds nothing (so the bot says it does not know), and it is never a hit, a
suggestion, a pick or a page.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge.answering import (
    BAND_ANSWER,
    BAND_UNKNOWN,
    AnswerPolicy,
    answer_question,
    chosen_article,
    declined_by,
)
from knowledge.articles import OUT_OF_SCOPE_TAG, load_articles
from knowledge.head import HeadConfig
from knowledge.index import KnowledgeIndex, answerable_hits
from tests.unit.knowledge.conftest import write_article

DECLINED = ["What will the weather be tomorrow?", "Tell me a joke about cats"]
POLICY = AnswerPolicy(answer_threshold=0.5, suggest_threshold=0.2, limit=3)


@pytest.fixture(params=["nearest-neighbour", "head"])
def index(request: pytest.FixtureRequest, articles_dir: Path, encoder) -> KnowledgeIndex:
    write_article(
        articles_dir,
        "not-our-business",
        title="Questions we do not answer",
        audience="all",
        tags=[OUT_OF_SCOPE_TAG],
        questions=DECLINED,
        body="Weather, jokes and other things that are not about your orders.",
    )
    head = HeadConfig() if request.param == "head" else None
    return KnowledgeIndex.build(load_articles(articles_dir), encoder, head=head)


def test_the_tag_marks_the_article(index: KnowledgeIndex) -> None:
    assert index.article("not-our-business").out_of_scope
    assert not index.article("returns-start-a-return").out_of_scope


@pytest.mark.parametrize("question", DECLINED)
def test_a_question_nearest_to_the_out_of_scope_article_finds_nothing(
    index: KnowledgeIndex, question: str
) -> None:
    assert index.search(question, 3) == []
    assert index.search(question, 3, audience="b2c") == []
    answer = answer_question(index, question, policy=POLICY)
    assert answer.band == BAND_UNKNOWN
    assert answer.hits == () and answer.suggestions == []


def test_other_questions_are_answered_and_never_list_the_out_of_scope_article(
    index: KnowledgeIndex,
) -> None:
    answer = answer_question(index, "How do I reset my password?", policy=POLICY)
    every_hit = index.search("How do I reset my password?", 10)

    assert answer.band == BAND_ANSWER
    assert answer.article is not None and answer.article.article_id == "account-reset-password"
    assert len(every_hit) == 4  # every answering article, the out-of-scope one left out
    assert "not-our-business" not in [hit.article_id for hit in every_hit]
    assert len(index.search("How do I reset my password?", 2)) == 2  # the limit still holds


def test_an_out_of_scope_article_only_declines_for_its_audience(
    articles_dir: Path, encoder
) -> None:
    write_article(
        articles_dir,
        "not-for-business",
        audience="b2b",
        tags=[OUT_OF_SCOPE_TAG],
        questions=DECLINED,
    )
    index = KnowledgeIndex.build(load_articles(articles_dir), encoder)

    assert index.search(DECLINED[0], 3, audience="b2b") == []
    consumer = index.search(DECLINED[0], 3, audience="b2c")
    assert consumer and "not-for-business" not in [hit.article_id for hit in consumer]


def test_it_cannot_be_picked_or_matched(index: KnowledgeIndex) -> None:
    assert index.best_hit_in("not-our-business", DECLINED[0]) is None
    for segment in (None, "b2c", "b2b"):
        assert chosen_article(index, "not-our-business", query=DECLINED[0], segment=segment) is None


def test_it_survives_save_and_load(index: KnowledgeIndex, tmp_path: Path, encoder) -> None:
    index.save(tmp_path / "build")
    loaded = KnowledgeIndex.load(tmp_path / "build", encoder)

    assert loaded.search(DECLINED[1], 3) == []
    assert loaded.search("Track my delivery", 1)[0].article_id == "delivery-track-order"


def test_a_raw_ranking_marks_it_and_answerable_hits_applies_the_rule(
    index: KnowledgeIndex,
) -> None:
    raw = index.search(DECLINED[0], 3, raw=True)
    other = index.search("Track my delivery", 5, raw=True)

    assert raw[0].article_id == "not-our-business" and raw[0].out_of_scope
    assert answerable_hits(raw, 3) == []
    assert [hit.out_of_scope for hit in other].count(True) == 1
    assert answerable_hits(other, 2) == index.search("Track my delivery", 2)


def test_declined_by_names_the_article_only_when_it_declined(index: KnowledgeIndex) -> None:
    declined = answer_question(index, DECLINED[0], policy=POLICY)
    answered = answer_question(index, "How do I reset my password?", policy=POLICY)

    hit = declined_by(index, declined)
    assert hit is not None and hit.article_id == "not-our-business" and hit.out_of_scope
    assert declined_by(index, answered) is None
