"""Index type by size: flat, IVF or HNSW, recorded in the manifest and kept on load."""

from __future__ import annotations

import datetime

import numpy as np
import pytest

from knowledge.articles import Article
from knowledge.index import AnnConfig, KnowledgeIndex
from tests.helpers.fake_encoder import FakeEncoder

WORDS = [
    "parcel",
    "refund",
    "invoice",
    "chair",
    "desk",
    "lamp",
    "kettle",
    "voucher",
    "courier",
    "warranty",
    "battery",
    "screen",
    "drawer",
    "hinge",
    "sofa",
    "pillow",
    "mattress",
    "label",
    "return",
    "exchange",
    "gift",
    "card",
    "account",
    "password",
    "delivery",
    "tracking",
    "address",
    "payment",
    "instalment",
    "discount",
    "membership",
    "cancel",
    "order",
]


def make_articles(count: int) -> list[Article]:
    rng = np.random.default_rng(7)
    articles = []
    for number in range(count):
        words = " ".join(rng.choice(WORDS, size=4, replace=False))
        articles.append(
            Article(
                id=f"a{number:04d}",
                title=f"{words} {number}",
                audience="all",
                tags=[],
                questions=[f"question {number} about {words}"],
                language="en",
                updated=datetime.date(2026, 1, 1),
                owner="o",
                body=f"Answer {number} about {words}.",
            )
        )
    return articles


@pytest.fixture(scope="module")
def articles() -> list[Article]:
    return make_articles(600)


def test_choose_by_size():
    config = AnnConfig(approximate_above=100)

    assert config.choose(100) == "flat"
    assert config.choose(101) == "ivf"
    assert AnnConfig(approximate_above=100, approximate_kind="hnsw").choose(101) == "hnsw"
    assert AnnConfig(kind="hnsw").choose(1) == "hnsw"
    assert AnnConfig(kind="flat").choose(10**9) == "flat"


def test_small_builds_stay_flat(articles):
    index = KnowledgeIndex.build(articles[:50], FakeEncoder())

    assert index.manifest.index_type == "flat"
    assert index.manifest.index_params == {}


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_switches_above_the_threshold_and_round_trips(articles, kind, tmp_path):
    encoder = FakeEncoder()
    config = AnnConfig(approximate_above=500, approximate_kind=kind, ivf_probe=8)
    index = KnowledgeIndex.build(articles, encoder, ann=config)

    assert index.manifest.vector_count > 500
    assert index.manifest.index_type == kind
    assert index.manifest.index_params
    index.save(tmp_path / "build")
    loaded = KnowledgeIndex.load(tmp_path / "build", encoder)
    assert loaded.manifest.index_type == kind
    assert loaded.manifest.index_params == index.manifest.index_params
    queries = [article.questions[0] for article in articles[::20]]
    for query in queries:
        assert [hit.article_id for hit in loaded.search(query, 3)] == [
            hit.article_id for hit in index.search(query, 3)
        ]


def test_loaded_ivf_searches_with_its_manifest_nprobe(articles, tmp_path):
    encoder = FakeEncoder()
    config = AnnConfig(kind="ivf", ivf_lists=16, ivf_probe=5)
    KnowledgeIndex.build(articles, encoder, ann=config).save(tmp_path / "build")

    loaded = KnowledgeIndex.load(tmp_path / "build", encoder)

    import faiss

    inner = faiss.downcast_index(loaded._index.index)
    assert isinstance(inner, faiss.IndexIVFFlat)
    assert inner.nprobe == 5
    assert loaded.manifest.index_params == {"nlist": 16, "nprobe": 5}


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_recall_against_flat(articles, kind):
    encoder = FakeEncoder()
    flat = KnowledgeIndex.build(articles, encoder, ann=AnnConfig(kind="flat"))
    approx = KnowledgeIndex.build(articles, encoder, ann=AnnConfig(kind=kind), previous=flat)
    queries = [article.questions[0] for article in articles[::5]]

    agree = sum(
        approx.search(query, 1)[0].article_id == flat.search(query, 1)[0].article_id
        for query in queries
    )

    assert agree / len(queries) >= 0.9
    assert approx.encoded_count == 0  # the approximate build reused the flat one's vectors


def test_approximate_index_reuses_into_flat(articles):
    encoder = FakeEncoder()
    hnsw = KnowledgeIndex.build(articles, encoder, ann=AnnConfig(kind="hnsw"))
    again = FakeEncoder()

    flat = KnowledgeIndex.build(articles, again, ann=AnnConfig(kind="flat"), previous=hnsw)

    assert again.calls == []
    assert np.allclose(flat._all_vectors(), hnsw._all_vectors())
