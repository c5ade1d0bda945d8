"""A tuned knowledge base stays tuned: later builds encode with the live build's model."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from knowledge.build_encoding import encoding_for_next_build
from knowledge.editor import main as kb_main
from knowledge.encoder import SentenceTransformerEncoder
from knowledge.index import read_manifest
from knowledge.lexical import LexicalConfig
from knowledge.store import current_build
from knowledge.tuning import QUERY_ENCODER_SUBDIR, tune_and_publish
from tests.helpers.fake_encoder import FakeEncoder
from tests.unit.knowledge.conftest import write_article
from tests.unit.knowledge.test_tuning import ARTICLES, CONFIG, NAME, _tiny_model

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def tiny_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("onnxruntime")
    return _tiny_model(tmp_path_factory.mktemp("tiny-st"))


def _articles(folder: Path) -> Path:
    for article_id, (title, questions) in ARTICLES.items():
        write_article(folder, article_id, title=title, questions=questions)
    return folder


def test_without_a_tuned_build_the_default_encoder_is_used(tmp_path: Path) -> None:
    default = FakeEncoder()
    encoding = encoding_for_next_build(
        tmp_path / "index", default=lambda: default, default_query_encoder_dir=tmp_path / "q"
    )
    assert encoding.encoder is default
    assert encoding.query_encoder_dir == tmp_path / "q"
    assert encoding.encoder_dir is None and not encoding.tuned


def test_a_build_after_kb_tune_keeps_the_tuned_encoder(
    tiny_source: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    articles = _articles(tmp_path / "articles")
    root = tmp_path / "index"
    tuned = tune_and_publish(
        articles,
        root,
        CONFIG,
        source_dir=tiny_source,
        base_name=NAME,
        head=None,
        lexical=LexicalConfig(weight=0.1),
    )
    tuned_manifest = read_manifest(tuned.build_dir)
    assert tuned_manifest.lexical == LexicalConfig(weight=0.1)

    encoding = encoding_for_next_build(
        root, default=FakeEncoder, default_query_encoder_dir=tmp_path / "packaged-export"
    )
    assert encoding.tuned and encoding.encoder_dir == tuned_manifest.encoder_dir
    assert isinstance(encoding.encoder, SentenceTransformerEncoder)
    assert encoding.encoder.name == tuned.name
    assert encoding.query_encoder_dir == root / tuned_manifest.encoder_dir / QUERY_ENCODER_SUBDIR
    packaged = encoding_for_next_build(
        root, default=FakeEncoder, default_query_encoder_dir=None, use_tuned=False
    )
    assert not packaged.tuned and isinstance(packaged.encoder, FakeEncoder)

    # An editor changes an article; `kb build` publishes it with the tuned model again.
    write_article(
        articles,
        "invoice-copy",
        title="Can I get a copy of my invoice?",
        questions=["download a receipt", "vat invoice for my order", "where are my bills"],
        body="Invoices are in your account under Orders. Each order has a download link.",
    )
    code = kb_main(
        ["build", "--articles-dir", str(articles), "--index-dir", str(root), "--no-head"],
        encoder=FakeEncoder(),
    )
    assert code == 0
    rebuilt = read_manifest(current_build(root))  # type: ignore[arg-type]
    assert current_build(root) != tuned.build_dir
    assert rebuilt.model == tuned.name
    assert rebuilt.encoder_dir == tuned_manifest.encoder_dir
    assert rebuilt.query_encoder == tuned_manifest.query_encoder
    assert rebuilt.lexical == LexicalConfig(weight=0.1)  # the BM25 setting is kept too

    # A tuned folder that went missing: the packaged model builds, and the log says why.
    (root / tuned_manifest.encoder_dir / QUERY_ENCODER_SUBDIR).rename(tmp_path / "moved")
    with caplog.at_level(logging.WARNING, logger="knowledge.build_encoding"):
        fallback = encoding_for_next_build(
            root, default=FakeEncoder, default_query_encoder_dir=None
        )
    assert not fallback.tuned and isinstance(fallback.encoder, FakeEncoder)
    assert "incomplete" in caplog.text
