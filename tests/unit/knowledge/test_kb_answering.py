"""knowledge.answering: the bands and audience rules the bot, ``kb search`` and bench share."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from knowledge.answering import (
    BAND_ANSWER,
    BAND_SUGGEST,
    BAND_UNKNOWN,
    AnswerPolicy,
    answer_question,
    band_for,
)
from knowledge.index import Hit, KnowledgeIndex

POLICY = AnswerPolicy(answer_threshold=0.55, suggest_threshold=0.40, limit=3)


def hit(article_id: str, score: float, audience: str = "all") -> Hit:
    return Hit(article_id, f"Title {article_id}", score, f"Summary {article_id}", audience, "m")


@dataclass
class Scripted:
    """Returns the given hits filtered by audience, and records every search."""

    hits: list[Hit]
    calls: list[tuple[str, int, str | None]] = field(default_factory=list)

    def search(self, query: str, limit: int = 3, *, audience: str | None = None) -> list[Hit]:
        self.calls.append((query, limit, audience))
        allowed = [h for h in self.hits if audience is None or h.audience in (audience, "all")]
        return sorted(allowed, key=lambda h: -h.score)[:limit]


@pytest.mark.parametrize(
    ("score", "band"),
    [
        (0.9, BAND_ANSWER),
        (0.55, BAND_ANSWER),
        (0.5499, BAND_SUGGEST),
        (0.40, BAND_SUGGEST),
        (0.39, BAND_UNKNOWN),
        (None, BAND_UNKNOWN),
    ],
)
def test_band_for(score: float | None, band: str) -> None:
    assert band_for(score, POLICY) == band


@pytest.mark.parametrize(
    "kwargs",
    [
        {"answer_threshold": 1.2},
        {"suggest_threshold": -0.1},
        {"answer_threshold": 0.4, "suggest_threshold": 0.5},
        {"limit": 0},
        {"b2b_preference_margin": -1.0},
    ],
)
def test_policy_rejects_nonsense(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        AnswerPolicy(**kwargs)


def test_answer_band_searches_the_consumer_audience_once() -> None:
    source = Scripted([hit("returns", 0.8), hit("exchanges", 0.6), hit("b2b-returns", 0.79, "b2b")])

    answer = answer_question(source, "  send back?  ", policy=POLICY)

    assert answer.band == BAND_ANSWER
    assert answer.article is not None and answer.article.article_id == "returns"
    assert answer.suggestions == []
    assert source.calls == [("send back?", 3, "b2c")]
    assert answer.searched == ("b2c",)


def test_suggest_band_offers_hits_above_the_suggest_threshold() -> None:
    source = Scripted([hit("a", 0.52), hit("b", 0.47), hit("c", 0.31)])

    answer = answer_question(source, "money back", policy=POLICY)

    assert answer.band == BAND_SUGGEST
    assert answer.article is None
    assert [h.article_id for h in answer.suggestions] == ["a", "b"]
    assert answer.searched == ("b2c", None)


def test_unknown_band_when_nothing_is_close_or_nothing_is_found() -> None:
    assert answer_question(Scripted([hit("a", 0.2)]), "bitcoin", policy=POLICY).band == "unknown"
    empty = answer_question(Scripted([]), "bitcoin", policy=POLICY)
    assert (empty.band, empty.top, empty.hits) == (BAND_UNKNOWN, None, ())
    blank = Scripted([hit("a", 0.9)])
    assert answer_question(blank, "   ", policy=POLICY).band == BAND_UNKNOWN
    assert blank.calls == []


def test_consumers_get_a_business_article_only_when_it_answers_confidently() -> None:
    confident = Scripted([hit("join-business", 0.74, "b2b"), hit("plus", 0.42, "b2c")])
    answer = answer_question(confident, "join for business?", segment=None, policy=POLICY)
    assert answer.article is not None and answer.article.article_id == "join-business"
    assert [c[2] for c in confident.calls] == ["b2c", None]

    weak = Scripted([hit("b2b-returns", 0.5, "b2b"), hit("returns", 0.45, "b2c")])
    answer = answer_question(weak, "returning stuff", segment="b2c", policy=POLICY)
    assert [h.article_id for h in answer.suggestions] == ["returns"]


def test_business_contacts_prefer_a_close_business_article_in_the_same_band() -> None:
    close = Scripted([hit("invoice", 0.797, "b2c"), hit("net30", 0.783, "b2b")])
    answer = answer_question(close, "pay by invoice?", segment="b2b", policy=POLICY)
    assert answer.article is not None and answer.article.article_id == "net30"
    assert close.calls == [("pay by invoice?", 3, "b2b")]

    general = [hit("invoice", 0.57, "all")]
    other_band = Scripted([*general, hit("net30", 0.53, "b2b")])
    answer = answer_question(other_band, "invoices", segment="b2b", policy=POLICY)
    assert answer.article is not None and answer.article.article_id == "invoice"


def test_to_dict_names_band_answer_suggestions_and_hits() -> None:
    answer = answer_question(Scripted([hit("a", 0.5), hit("b", 0.45)]), "q", policy=POLICY)

    data = answer.to_dict()

    assert data["band"] == "suggest"
    assert data["answer"] is None
    assert data["suggestions"] == ["a", "b"]
    assert data["answer_threshold"] == 0.55
    assert data["searched_audiences"] == ["b2c", None]
    assert [(h["rank"], h["article_id"], h["score"]) for h in data["hits"]] == [
        (1, "a", 0.5),
        (2, "b", 0.45),
    ]


def test_works_on_a_real_index(articles_dir, encoder) -> None:
    from knowledge.articles import load_articles

    index = KnowledgeIndex.build(load_articles(articles_dir), encoder)

    answer = answer_question(index, "How do I reset my password?", policy=POLICY)

    assert answer.band == BAND_ANSWER
    assert answer.article is not None and answer.article.article_id == "account-reset-password"
