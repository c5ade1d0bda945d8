"""knowledge.head: a logistic-regression head per knowledge base, blended with the cosine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from knowledge.articles import load_articles
from knowledge.head import HEAD_FILE, ArticleHead, HeadConfig
from knowledge.index import IndexCorruptError, KnowledgeIndex, read_manifest


@pytest.fixture
def articles(articles_dir: Path):
    return load_articles(articles_dir)


def test_head_is_trained_saved_and_loaded(articles, encoder, tmp_path: Path) -> None:
    index = KnowledgeIndex.build(articles, encoder, head=HeadConfig(c=5.0, weight=0.4))
    index.save(tmp_path / "build")

    manifest = read_manifest(tmp_path / "build")
    loaded = KnowledgeIndex.load(tmp_path / "build", encoder)

    assert manifest.head == HeadConfig(c=5.0, weight=0.4)
    assert (tmp_path / "build" / HEAD_FILE).is_file()
    assert loaded.head is not None
    assert np.allclose(loaded.head.weights, index.head.weights)
    question = "I forgot my password"
    assert loaded.search(question, 4) == index.search(question, 4)


def test_rerank_keeps_cosine_scores_and_blend_scores_the_blend(articles, encoder) -> None:
    plain = KnowledgeIndex.build(articles, encoder)
    rerank = KnowledgeIndex.build(articles, encoder, head=HeadConfig(weight=0.5))
    blend = rerank.with_head_config(HeadConfig(weight=0.5, mode="blend"))
    question = "track my delivery please"

    cosine = {h.article_id: h.score for h in plain.search(question, 4)}
    reranked = rerank.search(question, 4)
    blended = blend.search(question, 4)

    assert {h.article_id: h.score for h in reranked} == pytest.approx(cosine)
    assert [h.article_id for h in reranked] == [h.article_id for h in blended]
    probabilities = rerank.head.probabilities(encoder.encode([question])[0])
    order = rerank.articles
    for hit in blended:
        number = [a.id for a in order].index(hit.article_id)
        expected = 0.5 * cosine[hit.article_id] + 0.5 * probabilities[number]
        assert hit.score == pytest.approx(expected)
    assert [h.score for h in blended] == sorted((h.score for h in blended), reverse=True)


def test_weight_zero_ranks_like_plain_search(articles, encoder) -> None:
    plain = KnowledgeIndex.build(articles, encoder)
    head = KnowledgeIndex.build(articles, encoder, head=HeadConfig(weight=0.0))

    for question in ("return a present", "bulk chairs", "password reset link"):
        assert [h.article_id for h in head.search(question, 4)] == [
            h.article_id for h in plain.search(question, 4)
        ]
        assert [h.matched_text for h in head.search(question, 4)] == [
            h.matched_text for h in plain.search(question, 4)
        ]


def test_head_search_respects_audience_and_limit(articles, encoder) -> None:
    index = KnowledgeIndex.build(articles, encoder, head=HeadConfig())

    consumer = index.search("volume discounts for businesses", 4, audience="b2c")
    business = index.search("volume discounts for businesses", 1, audience="b2b")

    assert "business-volume-pricing" not in [h.article_id for h in consumer]
    assert [h.article_id for h in business] == ["business-volume-pricing"]


def test_no_head_for_a_single_article(articles, encoder) -> None:
    index = KnowledgeIndex.build(articles[:1], encoder, head=HeadConfig())

    assert index.head is None
    assert index.manifest.head is None


def test_without_passages_only_titles_and_questions_get_vectors(articles, encoder) -> None:
    index = KnowledgeIndex.build(articles, encoder, passages=False)

    kinds = {(s.article_id, s.kind) for s in index.sources}
    with_questions = {a.id for a in articles if a.questions}
    assert not any(kind == "chunk" for article_id, kind in kinds if article_id in with_questions)
    assert index.manifest.passages is False


def test_a_missing_head_file_is_corruption(articles, encoder, tmp_path: Path) -> None:
    KnowledgeIndex.build(articles, encoder, head=HeadConfig()).save(tmp_path / "build")
    (tmp_path / "build" / HEAD_FILE).unlink()

    with pytest.raises(IndexCorruptError, match="classifier head"):
        KnowledgeIndex.load(tmp_path / "build", encoder)


def test_with_head_config_needs_a_head(articles, encoder) -> None:
    with pytest.raises(ValueError, match="no classifier head"):
        KnowledgeIndex.build(articles, encoder).with_head_config(HeadConfig())


def test_published_builds_get_the_default_head_and_rebuild_when_it_changes(
    articles_dir: Path, encoder, tmp_path: Path
) -> None:
    from knowledge.head import DEFAULT_HEAD
    from knowledge.store import publish_articles

    root = tmp_path / "index"
    first = publish_articles(articles_dir, root, encoder)
    same = publish_articles(articles_dir, root, encoder)
    other = publish_articles(articles_dir, root, encoder, head=HeadConfig(weight=0.2))
    none = publish_articles(articles_dir, root, encoder, head=None)

    assert first.manifest.head == DEFAULT_HEAD
    assert (first.build_dir / HEAD_FILE).is_file()
    assert same.skipped
    assert not other.skipped and other.manifest.head == HeadConfig(weight=0.2)
    assert not none.skipped and none.manifest.head is None


def test_the_head_setting_is_kept_by_later_publishes_until_changed(
    articles_dir: Path, encoder, tmp_path: Path
) -> None:
    from knowledge.head import DEFAULT_HEAD
    from knowledge.store import publish_articles

    root = tmp_path / "index"
    none = publish_articles(articles_dir, root, encoder, head=None)  # kb build --no-head
    again = publish_articles(articles_dir, root, encoder, force=True)  # as the editor publishes
    back = publish_articles(articles_dir, root, encoder, head=DEFAULT_HEAD)  # kb build --head
    weighted = publish_articles(articles_dir, root, encoder, head=HeadConfig(weight=0.2))
    kept = publish_articles(articles_dir, root, encoder, force=True)

    assert none.manifest.head is None
    assert not again.skipped and again.manifest.head is None
    assert not back.skipped and back.manifest.head == DEFAULT_HEAD
    assert (back.build_dir / HEAD_FILE).is_file()
    assert kept.manifest.head == weighted.manifest.head == HeadConfig(weight=0.2)


def test_a_knowledge_base_too_small_for_a_head_gets_one_once_it_grows(
    articles_dir: Path, encoder, tmp_path: Path
) -> None:
    from knowledge.head import DEFAULT_HEAD
    from knowledge.store import current_manifest, head_for_next_build, publish_articles

    root = tmp_path / "index"
    assert current_manifest(root) is None
    assert head_for_next_build(None, "live") == DEFAULT_HEAD  # nothing published yet
    single = tmp_path / "single"
    single.mkdir()
    first = sorted(articles_dir.glob("*.md"))[0]
    (single / first.name).write_bytes(first.read_bytes())
    alone = publish_articles(single, root, encoder)
    grown = publish_articles(articles_dir, root, encoder)

    assert alone.manifest.head is None  # one article: no head to train
    assert grown.manifest.head == DEFAULT_HEAD


def test_refitting_one_row_comes_close_to_training_every_row() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(12, 16))
    labels = np.repeat(np.arange(12), 6)
    vectors = centres[labels] + 0.8 * rng.normal(size=(len(labels), 16))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    config = HeadConfig()
    without_new = labels != 7  # article 7 is new: the live head never saw it
    live = ArticleHead.train(vectors[without_new], labels[without_new], 12, config)
    full = ArticleHead.train(vectors, labels, 12, config)
    assert live is not None and full is not None
    assert live.bias[7] < -1e3  # untrained row

    refitted = live.with_row_refitted(vectors, labels, 7)

    queries = vectors + 0.2 * rng.normal(size=vectors.shape)
    new = np.array([refitted.probabilities(query) for query in queries])
    retrained = np.array([full.probabilities(query) for query in queries])
    # Twelve articles: the full retrain moves the other rows a little too.
    assert np.abs(new[:, 7] - retrained[:, 7]).max() < 0.1
    assert np.mean(new.argmax(axis=1) == retrained.argmax(axis=1)) >= 0.95
    assert new[labels == 7, 7].mean() > 0.5  # it learnt the new article
    assert np.array_equal(refitted.weights[:7], live.weights[:7])  # the others are kept


def test_a_large_knowledge_bases_build_fits_only_the_changed_articles_rows(
    articles, encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = HeadConfig()
    first = KnowledgeIndex.build(articles, encoder, head=config)
    edited = articles[1].model_copy(update={"questions": ["Can I pay with a gift card?"]})
    trainings: list[int] = []
    train = ArticleHead.train.__func__
    monkeypatch.setattr(
        ArticleHead, "train", classmethod(lambda cls, *a: trainings.append(1) or train(cls, *a))
    )
    changed = [articles[0], edited, *articles[2:]]

    # head_retrain_max_cost=0: as if every row took long to train (2,000 articles);
    # head_refit_share=0.3: one row of these four may be refitted alone.
    large = {"head_retrain_max_cost": 0, "head_refit_share": 0.3}
    second = KnowledgeIndex.build(changed, encoder, head=config, previous=first, **large)

    assert trainings == [] and second.manifest.head_refits == 1
    assert second.head is not None and first.head is not None
    kept = [number for number, article in enumerate(articles) if article.id != edited.id]
    assert np.array_equal(second.head.weights[kept], first.head.weights[kept])
    assert second.search("pay with a gift card", 1)[0].article_id == edited.id
    second.save(tmp_path / "build")
    assert read_manifest(tmp_path / "build").head_refits == 1

    # A second refit would pass the share: trained in full again.
    third = KnowledgeIndex.build(articles, encoder, head=config, previous=second, **large)
    assert trainings == [1] and third.manifest.head_refits == 0
    # Small knowledge bases are always trained in full.
    KnowledgeIndex.build(changed, encoder, head=config, previous=third)
    assert trainings == [1, 1]


def test_a_forced_publish_trains_every_head_row(
    articles_dir: Path, encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from knowledge.index import HEAD_REFIT_MAX_SHARE
    from knowledge.store import publish_articles

    shares: list[float] = []
    build = KnowledgeIndex.build.__func__

    def recording(cls, *args, **kwargs):
        shares.append(kwargs["head_refit_share"])
        return build(cls, *args, **kwargs)

    monkeypatch.setattr(KnowledgeIndex, "build", classmethod(recording))
    root = tmp_path / "index"
    publish_articles(articles_dir, root, encoder)
    publish_articles(articles_dir, root, encoder, force=True)

    assert shares == [HEAD_REFIT_MAX_SHARE, 0.0]
