"""Incremental builds: only new or changed texts are encoded; other encoders never reuse."""

from __future__ import annotations

import numpy as np
import pytest

from knowledge.articles import load_articles
from knowledge.head import DEFAULT_HEAD
from knowledge.index import KnowledgeIndex, encoder_identity
from knowledge.lexical import LexicalConfig
from knowledge.store import current_build, publish, publish_articles
from tests.helpers.fake_encoder import FakeEncoder


def encoded_texts(encoder: FakeEncoder) -> list[str]:
    return [text for batch in encoder.calls for text in batch]


@pytest.fixture
def root(tmp_path):
    return tmp_path / "index"


def test_unchanged_articles_encode_nothing(articles_dir):
    articles = load_articles(articles_dir)
    first = KnowledgeIndex.build(articles, FakeEncoder())
    encoder = FakeEncoder()

    second = KnowledgeIndex.build(articles, encoder, previous=first)

    assert encoder.calls == []
    assert second.encoded_count == 0
    assert np.array_equal(second._all_vectors(), first._all_vectors())
    assert second.sources == first.sources


def test_only_the_changed_texts_are_encoded(articles_dir, make_article):
    first = KnowledgeIndex.build(load_articles(articles_dir), FakeEncoder())
    make_article(
        articles_dir,
        "business-volume-pricing",
        title="Do you offer volume discounts for businesses?",
        questions=["Bulk pricing for office chairs", "Cheaper prices for 50 desks?"],
        tags=["business", "pricing"],
        audience="b2b",
        body="Business accounts get tiered discounts from five units of the same product.",
    )
    encoder = FakeEncoder()

    second = KnowledgeIndex.build(load_articles(articles_dir), encoder, previous=first)

    assert encoded_texts(encoder) == ["Cheaper prices for 50 desks?"]
    assert second.encoded_count == 1
    hits = second.search("cheaper prices for 50 desks", 1)
    assert hits[0].article_id == "business-volume-pricing"
    # every reused vector equals a fresh encoding of its text
    fresh = KnowledgeIndex.build(load_articles(articles_dir), FakeEncoder())
    assert second.sources == fresh.sources
    assert np.allclose(second._all_vectors(), fresh._all_vectors(), atol=1e-6)


def test_a_new_article_encodes_only_its_texts(articles_dir, make_article):
    first = KnowledgeIndex.build(load_articles(articles_dir), FakeEncoder())
    make_article(articles_dir, "gift-wrap", title="Can you gift wrap my order?", body="Yes.")
    encoder = FakeEncoder()

    KnowledgeIndex.build(load_articles(articles_dir), encoder, previous=first)

    assert sorted(encoded_texts(encoder)) == ["Can you gift wrap my order?", "Yes."]


def test_another_encoder_never_reuses(articles_dir):
    articles = load_articles(articles_dir)
    first = KnowledgeIndex.build(articles, FakeEncoder())
    other = FakeEncoder(name="another-model")

    second = KnowledgeIndex.build(articles, other, previous=first)

    assert second.encoded_count == len(second.sources)
    assert len(encoded_texts(other)) == len(second.sources)


def test_identity_includes_a_fingerprint(tmp_path):
    plain = FakeEncoder()
    tuned = FakeEncoder()
    tuned.fingerprint = "abc"  # type: ignore[attr-defined]

    assert encoder_identity(plain) != encoder_identity(tuned)
    assert encoder_identity(tuned).endswith("|abc")


def test_identity_of_a_model_folder_changes_with_its_weights(tmp_path):
    class FolderEncoder(FakeEncoder):
        model_path = tmp_path / "model"

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights one")
    (folder / "config.json").write_text("{}")
    before = encoder_identity(FolderEncoder())
    (folder / "model.safetensors").write_bytes(b"weights two, a different length")

    assert encoder_identity(FolderEncoder()) != before


def test_a_build_without_identity_is_not_reused(articles_dir, tmp_path):
    articles = load_articles(articles_dir)
    first = KnowledgeIndex.build(articles, FakeEncoder())
    first._manifest = first.manifest.model_copy(update={"encoder_identity": None})
    encoder = FakeEncoder()

    KnowledgeIndex.build(articles, encoder, previous=first)

    assert len(encoded_texts(encoder)) == len(first.sources)


def test_reuse_survives_save_and_load(articles_dir, tmp_path, make_article):
    first = KnowledgeIndex.build(load_articles(articles_dir), FakeEncoder())
    first.save(tmp_path / "build")
    loaded = KnowledgeIndex.load(tmp_path / "build", FakeEncoder())
    make_article(articles_dir, "gift-wrap", title="Can you gift wrap my order?", body="Yes.")
    encoder = FakeEncoder()

    KnowledgeIndex.build(load_articles(articles_dir), encoder, previous=loaded)

    assert sorted(encoded_texts(encoder)) == ["Can you gift wrap my order?", "Yes."]


def test_publish_articles_reuses_the_live_build(articles_dir, root, make_article):
    publish_articles(articles_dir, root, FakeEncoder())
    make_article(articles_dir, "gift-wrap", title="Can you gift wrap my order?", body="Yes.")
    encoder = FakeEncoder()

    result = publish_articles(articles_dir, root, encoder)

    assert not result.skipped
    assert result.encoded == 2
    assert sorted(encoded_texts(encoder)) == ["Can you gift wrap my order?", "Yes."]
    assert current_build(root) == result.build_dir


def test_publish_articles_without_reuse_encodes_everything(articles_dir, root, make_article):
    publish_articles(articles_dir, root, FakeEncoder())
    make_article(articles_dir, "gift-wrap", title="Can you gift wrap my order?", body="Yes.")
    encoder = FakeEncoder()

    result = publish_articles(articles_dir, root, encoder, reuse=False)

    assert result.encoded == result.manifest.vector_count
    assert len(encoded_texts(encoder)) == result.manifest.vector_count


def test_a_broken_live_build_means_a_full_encode(articles_dir, root, make_article):
    build = publish(KnowledgeIndex.build(load_articles(articles_dir), FakeEncoder()), root)
    (build / "index.faiss").write_bytes(b"not faiss")
    make_article(articles_dir, "gift-wrap", title="Can you gift wrap my order?", body="Yes.")
    encoder = FakeEncoder()

    result = publish_articles(articles_dir, root, encoder)

    assert result.encoded == result.manifest.vector_count
    assert current_build(root) == result.build_dir


def load_current_index(root):
    from knowledge.store import load_current

    return load_current(root, FakeEncoder())


def test_publish_parses_only_the_files_that_changed(articles_dir, root, make_article, monkeypatch):
    import knowledge.articles as articles_module

    publish_articles(articles_dir, root, FakeEncoder())
    make_article(articles_dir, "gift-wrap", title="Can you gift wrap my order?", body="Yes.")
    parsed: list[str] = []
    original = articles_module._parse_data

    def counting(path, data):
        parsed.append(path.name)
        return original(path, data)

    monkeypatch.setattr(articles_module, "_parse_data", counting)

    result = publish_articles(articles_dir, root, FakeEncoder())

    assert parsed == ["gift-wrap.md"]
    assert result.encoded == 2
    live = load_current_index(root)
    fresh = KnowledgeIndex.build(load_articles(articles_dir), FakeEncoder())
    assert [a.canonical_content() for a in live.articles] == [
        a.canonical_content() for a in fresh.articles
    ]


def test_a_changed_file_with_a_known_name_is_parsed_again(articles_dir, root, make_article):
    publish_articles(articles_dir, root, FakeEncoder())
    make_article(
        articles_dir,
        "account-reset-password",
        title="How do I reset my password?",
        body="A new answer about resetting.",
    )

    publish_articles(articles_dir, root, FakeEncoder())

    article = load_current_index(root).article("account-reset-password")
    assert article is not None and article.body == "A new answer about resetting."


def test_with_article_encodes_only_the_drafts_new_texts_with_another_encoder(articles_dir):
    articles = load_articles(articles_dir)
    live = KnowledgeIndex.build(
        articles, FakeEncoder(), head=DEFAULT_HEAD, lexical=LexicalConfig(weight=0.1)
    )
    before = live.sources
    edited = articles[0].model_copy(update={"questions": [*articles[0].questions, "Gift wrap?"]})
    other = FakeEncoder(name="stand-in-query-encoder")  # another identity: reuse anyway

    draft = live.with_article(edited, other)

    assert encoded_texts(other) == ["Gift wrap?"]
    assert draft.manifest.head == DEFAULT_HEAD and draft.head is not None
    assert draft.manifest.lexical == live.manifest.lexical
    assert draft.manifest.index_type == "flat"
    assert draft.search("gift wrap", 1)[0].article_id == edited.id
    assert live.sources == before and "Gift wrap?" not in [s.text for s in live.sources]
