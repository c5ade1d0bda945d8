"""knowledge.lexical: BM25 scores that re-rank the semantic search (scores stay cosines)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from knowledge.articles import load_articles
from knowledge.editor import main as kb_main
from knowledge.head import DEFAULT_HEAD, HeadConfig
from knowledge.index import KnowledgeIndex, read_manifest
from knowledge.lexical import LexicalConfig, LexicalScorer
from knowledge.store import current_manifest, publish_articles
from tests.unit.knowledge.conftest import write_article


@pytest.fixture
def articles(articles_dir: Path):
    return load_articles(articles_dir)


def test_scores_are_normalised_per_query() -> None:
    scorer = LexicalScorer(["office chairs in bulk", "reset a password"], LexicalConfig())

    scores = scorer.scores("bulk chairs")

    assert scores.max() == pytest.approx(1.0)
    assert scores[1] == 0.0
    assert not scorer.scores("the and of").any()  # stop words only


@pytest.mark.parametrize("documents", [["the and", "of"], ["a b c", ""], []])
def test_documents_without_words_score_zero(documents: list[str]) -> None:
    scorer = LexicalScorer(documents, LexicalConfig())

    assert scorer.scores("the office chairs").tolist() == [0.0] * len(documents)


def test_bm25s_debug_lines_follow_the_application_level() -> None:
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    try:
        LexicalScorer(["office chairs in bulk", "reset a password"], LexicalConfig())
    finally:
        root.removeHandler(handler)
        root.setLevel(level)

    assert [r.getMessage() for r in seen if r.name.startswith("bm25s")] == []


def test_weight_zero_ranks_like_plain_search(articles, encoder) -> None:
    plain = KnowledgeIndex.build(articles, encoder)
    lexical = KnowledgeIndex.build(articles, encoder, lexical=LexicalConfig(weight=0.0))

    for question in ("return a present", "bulk chairs", "password reset link"):
        ours, theirs = lexical.search(question, 4), plain.search(question, 4)
        assert [(h.article_id, h.matched_text) for h in ours] == [
            (h.article_id, h.matched_text) for h in theirs
        ]
        assert [h.score for h in ours] == pytest.approx([h.score for h in theirs])


def test_lexical_reorders_but_scores_stay_cosines(articles, encoder) -> None:
    plain = KnowledgeIndex.build(articles, encoder)
    lexical = KnowledgeIndex.build(articles, encoder, lexical=LexicalConfig(weight=5.0))
    question = "courier delays in December"

    cosine = {h.article_id: h.score for h in plain.search(question, 4)}
    hits = lexical.search(question, 4)

    assert hits[0].article_id == "delivery-track-order"  # the only article saying "December"
    assert {h.article_id: h.score for h in hits} == pytest.approx(cosine)


def test_saved_and_loaded_with_the_same_ranking(articles, encoder, tmp_path: Path) -> None:
    index = KnowledgeIndex.build(
        articles, encoder, lexical=LexicalConfig(weight=0.3), head=HeadConfig()
    )
    index.save(tmp_path / "build")

    loaded = KnowledgeIndex.load(tmp_path / "build", encoder)

    assert read_manifest(tmp_path / "build").lexical == LexicalConfig(weight=0.3)
    for question in ("courier delays in December", "forgot password"):
        assert loaded.search(question, 4) == index.search(question, 4)


def test_with_ranking_changes_the_weight_and_needs_a_head_for_head_settings(
    articles, encoder
) -> None:
    index = KnowledgeIndex.build(articles, encoder, lexical=LexicalConfig(weight=0.0))
    plain = KnowledgeIndex.build(articles, encoder)

    heavier = index.with_ranking(lexical=LexicalConfig(weight=5.0))

    assert heavier.manifest.lexical == LexicalConfig(weight=5.0)
    assert heavier.search("courier delays in December", 1)[0].article_id == "delivery-track-order"
    with pytest.raises(ValueError, match="no classifier head"):
        plain.with_ranking(head=HeadConfig())


def test_with_ranking_adds_lexical_scores_to_an_index_built_without(
    articles, encoder, tmp_path: Path
) -> None:
    built_with = KnowledgeIndex.build(articles, encoder, lexical=LexicalConfig(weight=5.0))
    KnowledgeIndex.build(articles, encoder).save(tmp_path / "plain")
    plain = KnowledgeIndex.load(tmp_path / "plain", encoder)

    added = plain.with_ranking(lexical=LexicalConfig(weight=5.0))

    assert added.manifest.lexical == LexicalConfig(weight=5.0)
    assert plain.manifest.lexical is None  # the loaded index itself is unchanged
    for question in ("courier delays in December", "forgot password", "bulk chairs"):
        assert added.search(question, 4) == built_with.search(question, 4)


def test_bm25_is_a_setting_of_the_knowledge_base_that_later_publishes_keep(
    articles_dir: Path, encoder, tmp_path: Path
) -> None:
    root = tmp_path / "index"
    plain = publish_articles(articles_dir, root, encoder)
    added = publish_articles(articles_dir, root, encoder, lexical=LexicalConfig(weight=0.1))
    again = publish_articles(articles_dir, root, encoder)  # as the editor publishes
    write_article(articles_dir, "gift-cards", title="Do you sell gift cards?", body="Yes.")
    edited = publish_articles(articles_dir, root, encoder)
    heavier = publish_articles(articles_dir, root, encoder, lexical=LexicalConfig(weight=0.3))
    dropped = publish_articles(articles_dir, root, encoder, lexical=None)

    assert plain.manifest.lexical is None
    # Same articles, new setting: a new build (the vectors are reused, none encoded).
    assert not added.skipped and added.encoded == 0
    assert added.manifest.lexical == LexicalConfig(weight=0.1)
    assert again.skipped and again.manifest.lexical == LexicalConfig(weight=0.1)
    assert not edited.skipped and edited.manifest.lexical == LexicalConfig(weight=0.1)
    assert heavier.manifest.lexical == LexicalConfig(weight=0.3)
    assert not dropped.skipped and dropped.manifest.lexical is None


def test_kb_build_takes_bm25_and_no_bm25(articles_dir: Path, encoder, tmp_path: Path) -> None:
    root = tmp_path / "index"
    where = ["--articles-dir", str(articles_dir), "--index-dir", str(root)]

    assert kb_main(["build", *where, "--bm25", "0.1"], encoder=encoder) == 0
    assert current_manifest(root).lexical == LexicalConfig(weight=0.1)  # type: ignore[union-attr]
    assert kb_main(["build", *where, "--force"], encoder=encoder) == 0
    assert current_manifest(root).lexical == LexicalConfig(weight=0.1)  # type: ignore[union-attr]
    assert kb_main(["build", *where, "--no-bm25"], encoder=encoder) == 0
    assert current_manifest(root).lexical is None  # type: ignore[union-attr]

    for refused in (["--bm25", "2"], ["--bm25", "x"], ["--bm25", "0.1", "--no-bm25"]):
        assert kb_main(["build", *where, *refused], encoder=encoder) == 2
    assert current_manifest(root).lexical is None  # type: ignore[union-attr]


def test_kb_build_takes_head_and_no_head(articles_dir: Path, encoder, tmp_path: Path) -> None:
    root = tmp_path / "index"
    where = ["--articles-dir", str(articles_dir), "--index-dir", str(root)]

    assert kb_main(["build", *where, "--no-head"], encoder=encoder) == 0
    assert current_manifest(root).head is None  # type: ignore[union-attr]
    assert kb_main(["build", *where, "--force"], encoder=encoder) == 0
    assert current_manifest(root).head is None  # type: ignore[union-attr]
    assert kb_main(["build", *where, "--head", "--no-head"], encoder=encoder) == 2
    assert kb_main(["build", *where, "--head"], encoder=encoder) == 0
    assert current_manifest(root).head == DEFAULT_HEAD  # type: ignore[union-attr]
