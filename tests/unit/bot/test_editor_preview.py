"""The editor's preview: the live index with the draft in place, through the bot's decision."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.editor.preview import PreviewIndex, draft_index, preview_answers
from knowledge.answering import AnswerPolicy, answer_question
from knowledge.articles import OUT_OF_SCOPE_TAG, Article
from knowledge.head import DEFAULT_HEAD, ArticleHead
from knowledge.index import KnowledgeIndex
from knowledge.store import publish
from tests.helpers.fake_encoder import FakeEncoder

ENCODER = FakeEncoder()
POLICY = AnswerPolicy(answer_threshold=0.5, suggest_threshold=0.3, limit=3)


def make(
    article_id: str,
    title: str,
    *,
    audience: str = "all",
    body: str = "An answer.",
    tags: tuple[str, ...] = (),
    questions: tuple[str, ...] = (),
) -> Article:
    return Article(
        id=article_id,
        title=title,
        audience=audience,  # type: ignore[arg-type]
        tags=list(tags),
        questions=list(questions),
        language="en",
        updated="2026-11-24",  # type: ignore[arg-type]
        owner="team",
        body=body,
    )


LIVE = [
    make("orders-track", "Where is my parcel tracking number"),
    make("returns-label", "How do I print a return label"),
]


def test_draft_replaces_its_live_version_and_ranks_with_the_live_hits() -> None:
    index = KnowledgeIndex.build(LIVE, ENCODER)
    edited = make("returns-label", "Gift receipt for a present", body="Ask for a gift receipt.")
    search = draft_index(index, ENCODER, edited)
    hits = search.search("gift receipt for a present", 3)
    assert hits[0].article_id == "returns-label" and hits[0].title == edited.title
    assert [hit.article_id for hit in hits].count("returns-label") == 1  # old text gone
    tracking = search.search("parcel tracking number", 3)
    assert tracking[0].article_id == "orders-track"
    assert tracking == sorted(tracking, key=lambda hit: -hit.score)


def test_audience_rules_apply_to_the_draft() -> None:
    index = KnowledgeIndex.build(LIVE, ENCODER)
    business = make("business-invoices", "Net 30 invoices for companies", audience="b2b")
    search = draft_index(index, ENCODER, business)
    assert all(
        hit.article_id != business.id for hit in search.search("net 30 invoices", 3, audience="b2c")
    )
    assert search.search("net 30 invoices", 3, audience="b2b")[0].article_id == business.id


def test_an_out_of_scope_draft_declines_what_it_ranks_first_for() -> None:
    index = KnowledgeIndex.build(LIVE, ENCODER)
    declines = make("not-ours", "Weather forecast and football scores", tags=(OUT_OF_SCOPE_TAG,))
    search = draft_index(index, ENCODER, declines)

    assert search.search("weather forecast for football", 3) == []
    tracking = search.search("parcel tracking number", 3)
    assert [hit.article_id for hit in tracking] == ["orders-track", "returns-label"]


def test_a_live_out_of_scope_article_still_declines_around_a_draft() -> None:
    live = [*LIVE, make("not-ours", "Weather forecast and football scores", tags=("out-of-scope",))]
    search = draft_index(KnowledgeIndex.build(live, ENCODER), ENCODER, make("gifts", "Gift wrap"))

    assert search.search("weather forecast for football", 3) == []
    assert search.search("gift wrap", 3)[0].article_id == "gifts"
    assert "not-ours" not in [hit.article_id for hit in search.search("gift wrap", 5)]


def test_preview_answers_through_the_bots_decision(tmp_path: Path) -> None:
    publish(KnowledgeIndex.build(LIVE, ENCODER), tmp_path)
    preview = PreviewIndex(tmp_path, ENCODER)
    draft = make("gifts-wrap", "Can you gift wrap my order")
    answers = preview_answers(
        preview, draft, ["can you gift wrap my order", "print a return label", "  "], policy=POLICY
    )
    assert len(answers) == 2  # blank questions are skipped
    assert answers[0].band == "answer" and answers[0].is_draft
    assert answers[1].article_id == "returns-label" and not answers[1].is_draft


def test_preview_without_a_live_index_scores_the_draft_alone(tmp_path: Path) -> None:
    draft = make("gifts-wrap", "Can you gift wrap my order")
    answers = preview_answers(
        PreviewIndex(tmp_path, ENCODER), draft, ["gift wrap my order"], policy=POLICY
    )
    assert answers[0].is_draft


def test_preview_without_questions_builds_nothing(tmp_path: Path) -> None:
    encoder = FakeEncoder()
    publish(KnowledgeIndex.build(LIVE, ENCODER), tmp_path)
    encoder.calls.clear()

    answers = preview_answers(
        PreviewIndex(tmp_path, encoder), make("x", "X"), [" ", ""], policy=POLICY
    )

    assert answers == [] and encoder.calls == []


SHOP = [
    make(article_id, title, questions=questions)
    for article_id, title, questions in [
        (
            "orders-track",
            "Where is my parcel",
            ("tracking number for my order", "has my package shipped", "when will it arrive"),
        ),
        (
            "returns-label",
            "How do I print a return label",
            ("send an item back", "return postage label", "printer for returns"),
        ),
        (
            "refunds",
            "When will I get my refund",
            ("money back for a return", "refund has not arrived", "refund to my card"),
        ),
        (
            "exchange",
            "Exchange an item for another size",
            ("swap for a bigger size", "wrong size exchange", "exchange my order"),
        ),
    ]
]
GIFT_WRAP = make(
    "gifts-wrap", "Can you gift wrap my order", questions=("wrap a present", "gift message")
)
QUESTIONS = [
    "return my order",
    "my parcel refund",
    "card for the present",
    "order arrive",
    "gift for my order",
    "send back the wrong size",
]


def test_preview_answers_as_the_published_build_with_its_head_will(tmp_path: Path) -> None:
    publish(KnowledgeIndex.build(SHOP, ENCODER, head=DEFAULT_HEAD), tmp_path)
    published = KnowledgeIndex.build([*SHOP, GIFT_WRAP], ENCODER, head=DEFAULT_HEAD)
    by_cosine = KnowledgeIndex.build([*SHOP, GIFT_WRAP], ENCODER, head=None)

    previewed = preview_answers(
        PreviewIndex(tmp_path, ENCODER), GIFT_WRAP, QUESTIONS, policy=POLICY
    )

    expected = [answer_question(published, question, policy=POLICY) for question in QUESTIONS]
    assert [(p.band, p.article_id, p.suggestions) for p in previewed] == [
        (
            answer.band,
            answer.article.article_id if answer.article else None,
            [(hit.article_id, hit.title) for hit in answer.suggestions],
        )
        for answer in expected
    ]
    # The head re-orders some of these questions: a cosine-only preview would differ.
    assert any(
        published.search(question, 1) != by_cosine.search(question, 1) for question in QUESTIONS
    )


def test_a_draft_is_ranked_once_while_only_the_test_questions_change(tmp_path: Path) -> None:
    encoder = FakeEncoder()
    publish(KnowledgeIndex.build(SHOP, ENCODER, head=DEFAULT_HEAD), tmp_path)
    preview = PreviewIndex(tmp_path, encoder)

    preview_answers(preview, GIFT_WRAP, ["gift for my order"], policy=POLICY)
    encoded = sum(len(batch) for batch in encoder.calls)
    preview_answers(preview, GIFT_WRAP, ["card for the present"], policy=POLICY)
    assert sum(len(batch) for batch in encoder.calls) == encoded + 1  # the question only

    changed = GIFT_WRAP.model_copy(update={"title": "Gift wrapping and gift messages"})
    answers = preview_answers(preview, changed, ["gift wrapping"], policy=POLICY)
    assert changed.title in encoder.calls[-2] and answers[0].title == changed.title


def test_a_large_knowledge_bases_preview_fits_only_the_drafts_head_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    live = KnowledgeIndex.build(SHOP, ENCODER, head=DEFAULT_HEAD)
    trained: list[int] = []
    original_train = ArticleHead.train
    monkeypatch.setattr(
        ArticleHead,
        "train",
        classmethod(lambda cls, *a, **k: trained.append(1) or original_train(*a, **k)),
    )

    draft = live.with_article(GIFT_WRAP, ENCODER, head_retrain_max_cost=0)

    assert trained == []  # no full retrain
    assert draft.head is not None and draft.manifest.head == DEFAULT_HEAD
    # How close this comes to a full retrain at 2,000 articles: bench.editor_publish --large.
    for question, expected in [
        ("gift for my order", GIFT_WRAP.id),
        ("wrap a present", GIFT_WRAP.id),
        ("refund has not arrived", "refunds"),
        ("print a return label", "returns-label"),
    ]:
        assert draft.search(question, 1)[0].article_id == expected, question
