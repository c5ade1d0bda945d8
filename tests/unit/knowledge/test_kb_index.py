from __future__ import annotations

import datetime
import json

import pytest

from knowledge.articles import load_articles
from knowledge.index import (
    FORMAT_VERSION,
    Hit,
    IndexCorruptError,
    IndexMismatchError,
    IndexNotBuiltError,
    KnowledgeIndex,
    content_hash,
)
from tests.helpers.fake_encoder import FakeEncoder


@pytest.fixture
def articles(articles_dir):
    return load_articles(articles_dir)


@pytest.fixture
def index(articles, encoder):
    return KnowledgeIndex.build(articles, encoder)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("how do I return an item", "returns-start-a-return"),
        ("I forgot my password", "account-reset-password"),
        ("track my parcel delivery", "delivery-track-order"),
        ("volume discounts for office chairs", "business-volume-pricing"),
    ],
)
def test_search_ranks_the_right_article_first(index, query, expected):
    hits = index.search(query)

    assert hits[0].article_id == expected
    assert hits[0].score > 0.3


def test_hits_are_one_per_article_sorted_and_limited(index):
    hits = index.search("my order parcel return password discount", limit=10)

    ids = [hit.article_id for hit in hits]
    assert len(ids) == len(set(ids)) == 4
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    assert len(index.search("return", limit=2)) == 2


def test_hit_carries_article_data_and_best_match(index):
    hit = index.search("Can I send back something I bought?", limit=1)[0]

    assert hit == Hit(
        article_id="returns-start-a-return",
        title="How do I return an item?",
        score=pytest.approx(1.0, abs=1e-5),
        summary=(
            "Start a return from My orders within 30 days of delivery. Print the prepaid "
            "label and drop the parcel off."
        ),
        audience="b2c",
        matched_text="Can I send back something I bought?",
    )


def test_aggregation_keeps_the_best_vector_score(index, encoder):
    query = "Courier delays of one or two days are common in December."
    best_vector = max(
        float(encoder.encode([query])[0] @ encoder.encode([source.text])[0])
        for source in index.sources
        if source.article_id == "delivery-track-order"
    )

    hit = index.search(query, limit=1)[0]

    assert hit.article_id == "delivery-track-order"
    assert hit.score == pytest.approx(best_vector, abs=1e-5)
    assert hit.matched_text.startswith("Delays: Courier delays")


def test_vectors_cover_title_questions_and_chunks(index):
    kinds = [(s.kind, s.text) for s in index.sources if s.article_id == "account-reset-password"]

    assert kinds[0] == ("title", "How do I reset my password?")
    assert ("question", "I forgot my password") in kinds
    assert any(kind == "chunk" and "60 minutes" in text for kind, text in kinds)


@pytest.mark.parametrize(("query", "limit"), [("", 3), ("   \n", 3), ("password", 0)])
def test_empty_query_or_limit_gives_nothing(index, query, limit):
    assert index.search(query, limit) == []


def test_audience_filter(index):
    ids = {hit.article_id for hit in index.search("discounts return password", 10, audience="b2c")}

    assert "business-volume-pricing" not in ids
    assert "account-reset-password" in ids  # audience "all" is always included


def test_searching_one_question_twice_encodes_it_once(index, encoder):
    encoder.calls.clear()
    first = index.search("how do I send something back", limit=3, audience="b2c")
    second = index.search("how do I send something back", limit=3)
    index.search("where is my parcel", limit=3)
    assert encoder.calls == [["how do I send something back"], ["where is my parcel"]]
    assert first and second


def test_manifest(index, articles, encoder):
    manifest = index.manifest

    assert manifest.model == encoder.name
    assert manifest.dimension == 64
    assert manifest.article_count == 4 == len(index)
    assert manifest.vector_count == len(index.sources)
    assert manifest.article_ids == sorted(article.id for article in articles)
    assert manifest.content_hash == content_hash(articles)
    assert manifest.format_version == FORMAT_VERSION
    assert manifest.built_at.tzinfo is not None
    age = datetime.datetime.now(datetime.UTC) - manifest.built_at
    assert datetime.timedelta(0) <= age < datetime.timedelta(minutes=1)


def test_content_hash_ignores_order_and_paths_but_not_content(articles):
    moved = [article.model_copy(update={"path": None}) for article in reversed(articles)]
    edited = [articles[0].model_copy(update={"title": "Changed"}), *articles[1:]]

    assert content_hash(moved) == content_hash(articles)
    assert content_hash(edited) != content_hash(articles)


def test_article_lookup(index):
    assert index.article("account-reset-password").title == "How do I reset my password?"
    assert index.article("nope") is None
    assert "account-reset-password" in index


def test_save_load_round_trip(index, encoder, tmp_path):
    index.save(tmp_path / "idx")

    loaded = KnowledgeIndex.load(tmp_path / "idx", encoder)

    assert KnowledgeIndex.exists(tmp_path / "idx")
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == [
        "articles.json",
        "index.faiss",
        "manifest.json",
    ]
    assert loaded.manifest == index.manifest
    assert loaded.articles == index.articles
    for query in ("return an item", "password", "chairs", "parcel in December"):
        assert loaded.search(query, 4) == index.search(query, 4)


def test_articles_json_holds_summaries(index, tmp_path):
    index.save(tmp_path)

    data = json.loads((tmp_path / "articles.json").read_text(encoding="utf-8"))

    summaries = {item["id"]: item["summary"] for item in data["articles"]}
    assert summaries["account-reset-password"].startswith("Select Forgot password")


def test_load_refuses_another_model(index, tmp_path):
    index.save(tmp_path)

    with pytest.raises(IndexMismatchError, match="fake-hashing-encoder"):
        KnowledgeIndex.load(tmp_path, FakeEncoder(name="other-model"))
    with pytest.raises(IndexMismatchError, match="64-d"):
        KnowledgeIndex.load(tmp_path, FakeEncoder(dimension=32))


def test_load_missing_and_corrupt(index, encoder, tmp_path):
    with pytest.raises(IndexNotBuiltError):
        KnowledgeIndex.load(tmp_path / "empty", encoder)
    assert not KnowledgeIndex.exists(tmp_path / "empty")

    index.save(tmp_path)
    (tmp_path / "index.faiss").write_bytes(b"garbage")
    with pytest.raises(IndexCorruptError):
        KnowledgeIndex.load(tmp_path, encoder)

    (tmp_path / "manifest.json").write_text("{", encoding="utf-8")
    with pytest.raises(IndexCorruptError):
        KnowledgeIndex.load(tmp_path, encoder)


def test_load_detects_inconsistent_files(articles, encoder, tmp_path):
    KnowledgeIndex.build(articles, encoder).save(tmp_path / "big")
    KnowledgeIndex.build(articles[:1], encoder).save(tmp_path / "small")
    (tmp_path / "small" / "index.faiss").replace(tmp_path / "big" / "index.faiss")

    with pytest.raises(IndexCorruptError, match="inconsistent"):
        KnowledgeIndex.load(tmp_path / "big", encoder)


def test_empty_index(encoder, tmp_path):
    index = KnowledgeIndex.build([], encoder)
    index.save(tmp_path)

    assert len(index) == 0
    assert KnowledgeIndex.load(tmp_path, encoder).search("anything") == []


def test_duplicate_ids_are_refused(articles, encoder):
    with pytest.raises(ValueError, match="unique"):
        KnowledgeIndex.build([articles[0], articles[0]], encoder)


def test_encoder_with_wrong_shape_is_refused(articles):
    class Broken(FakeEncoder):
        def encode(self, texts):
            return super().encode(texts)[:, :10]

    with pytest.raises(ValueError, match="shape"):
        KnowledgeIndex.build(articles, Broken())
