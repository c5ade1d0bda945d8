"""The editor's preview: the live index with the draft in place, through the bot's decision."""

from __future__ import annotations

from pathlib import Path

from bot.editor.preview import DraftSearch, PreviewIndex, draft_texts, preview_answers
from knowledge.answering import AnswerPolicy
from knowledge.articles import OUT_OF_SCOPE_TAG, Article
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
) -> Article:
    return Article(
        id=article_id,
        title=title,
        audience=audience,  # type: ignore[arg-type]
        tags=list(tags),
        questions=[],
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
    search = DraftSearch(index, ENCODER, edited)
    hits = search.search("gift receipt for a present", 3)
    assert hits[0].article_id == "returns-label" and hits[0].title == edited.title
    assert [hit.article_id for hit in hits].count("returns-label") == 1  # old text gone
    tracking = search.search("parcel tracking number", 3)
    assert tracking[0].article_id == "orders-track"
    assert tracking == sorted(tracking, key=lambda hit: -hit.score)


def test_audience_rules_apply_to_the_draft() -> None:
    index = KnowledgeIndex.build(LIVE, ENCODER)
    business = make("business-invoices", "Net 30 invoices for companies", audience="b2b")
    search = DraftSearch(index, ENCODER, business)
    assert all(
        hit.article_id != business.id for hit in search.search("net 30 invoices", 3, audience="b2c")
    )
    assert search.search("net 30 invoices", 3, audience="b2b")[0].article_id == business.id


def test_an_out_of_scope_draft_declines_what_it_ranks_first_for() -> None:
    index = KnowledgeIndex.build(LIVE, ENCODER)
    declines = make("not-ours", "Weather forecast and football scores", tags=(OUT_OF_SCOPE_TAG,))
    search = DraftSearch(index, ENCODER, declines)

    assert search.search("weather forecast for football", 3) == []
    tracking = search.search("parcel tracking number", 3)
    assert [hit.article_id for hit in tracking] == ["orders-track", "returns-label"]


def test_a_live_out_of_scope_article_still_declines_around_a_draft() -> None:
    live = [*LIVE, make("not-ours", "Weather forecast and football scores", tags=("out-of-scope",))]
    search = DraftSearch(KnowledgeIndex.build(live, ENCODER), ENCODER, make("gifts", "Gift wrap"))

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
    assert draft_texts(draft)[0] == draft.title


def test_preview_without_a_live_index_scores_the_draft_alone(tmp_path: Path) -> None:
    draft = make("gifts-wrap", "Can you gift wrap my order")
    answers = preview_answers(
        PreviewIndex(tmp_path, ENCODER), draft, ["gift wrap my order"], policy=POLICY
    )
    assert answers[0].is_draft
