"""knowledge.onnx_encoder with a tiny export (tests/helpers/tiny_onnx.py): no torch anywhere."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from knowledge import onnx_encoder, threads
from knowledge.articles import load_articles
from knowledge.encoder import EncoderUnavailableError
from knowledge.index import QUERY_ENCODER_DIR, KnowledgeIndex, read_manifest
from knowledge.onnx_encoder import (
    MODEL_FILE,
    OnnxEncoder,
    copy_export,
    export_is_current,
    export_status,
    load_onnx_encoder,
    read_onnx_manifest,
    source_fingerprint,
)
from knowledge.store import LiveKnowledgeBase, current_build, publish, publish_articles
from tests.helpers.fake_encoder import FakeEncoder
from tests.helpers.probe import run_python
from tests.helpers.tiny_onnx import TINY_NAME, TinyEncoder, write_tiny_export

TEXTS = ["How do I return an item?", "I forgot my password", "where is my parcel", "warm up"]


@pytest.fixture
def export(tmp_path: Path) -> Path:
    return write_tiny_export(tmp_path / "encoder-onnx")


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(onnx_encoder, "_cache", {})
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    threads._reset_for_tests()
    yield
    threads._reset_for_tests()


def test_encoder_matches_the_model_it_was_exported_from(export: Path) -> None:
    encoder = OnnxEncoder(export)

    assert not encoder.loaded
    vectors = encoder.encode(TEXTS)

    assert encoder.loaded
    assert (encoder.name, encoder.dimension, encoder.kind) == (TINY_NAME, 16, "onnx-int8")
    assert vectors.dtype == np.float32 and vectors.shape == (4, 16)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors, TinyEncoder(export).encode(TEXTS), atol=1e-5)
    # One text or a padded batch: the same vector (padding is masked out).
    assert np.allclose(encoder.encode([TEXTS[0]])[0], vectors[0], atol=1e-6)


def test_encode_edge_cases(export: Path) -> None:
    encoder = OnnxEncoder(export)

    assert encoder.encode([]).shape == (0, 16)
    assert not encoder.loaded
    with pytest.raises(TypeError):
        encoder.encode("a string")


def test_one_intra_op_thread_by_default_or_the_process_limit(export: Path) -> None:
    encoder = OnnxEncoder(export)
    encoder.encode(["x"])
    assert encoder.intra_op_threads == 1

    threads.limit_native_threads(2)
    limited = OnnxEncoder(export)
    limited.encode(["x"])
    assert limited.intra_op_threads == 2


def test_missing_export_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(EncoderUnavailableError, match="python -m bot setup"):
        OnnxEncoder(tmp_path / "nothing")


def test_broken_model_file_is_reported_on_load(export: Path) -> None:
    (export / MODEL_FILE).write_bytes(b"not an onnx file")

    with pytest.raises(EncoderUnavailableError, match="cannot load the ONNX encoder"):
        OnnxEncoder(export).encode(["x"])


def test_encoders_are_shared_per_model_file(export: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy_export(export, copy)

    assert load_onnx_encoder(export) is load_onnx_encoder(copy)


def test_copy_export_falls_back_to_copying(
    export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(*args: object) -> None:
        raise OSError("cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    copy_export(export, tmp_path / "copied")

    assert (tmp_path / "copied" / MODEL_FILE).read_bytes() == (export / MODEL_FILE).read_bytes()


def test_builds_carry_and_name_their_query_encoder(export: Path, articles_dir: Path) -> None:
    articles = load_articles(articles_dir)
    index = KnowledgeIndex.build(articles, TinyEncoder(export), query_encoder_dir=export)
    build = export.parent / "build"
    index.save(build)

    manifest = read_manifest(build)
    assert manifest.query_encoder is not None
    assert manifest.query_encoder.kind == "onnx-int8"
    assert manifest.query_encoder.model == TINY_NAME
    assert manifest.query_encoder.sha256 == read_onnx_manifest(export).model_sha256
    assert (build / QUERY_ENCODER_DIR / MODEL_FILE).is_file()

    loaded = KnowledgeIndex.load(build)  # no encoder given: the build's own

    assert isinstance(loaded.encoder, OnnxEncoder)
    assert loaded.encoder.directory == build / QUERY_ENCODER_DIR
    assert loaded.search("I forgot my password", 1)[0].article_id == "account-reset-password"
    assert [h.article_id for h in loaded.search("track my delivery", 3)] == [
        h.article_id for h in index.search("track my delivery", 3)
    ]


def test_an_export_of_another_model_is_left_out(
    export: Path, articles_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="knowledge.index")

    index = KnowledgeIndex.build(
        load_articles(articles_dir), FakeEncoder(dimension=16), query_encoder_dir=export
    )

    assert index.manifest.query_encoder is None
    assert "not fake-hashing-encoder" in caplog.text


def test_a_missing_export_is_left_out(articles_dir: Path, tmp_path: Path, export: Path) -> None:
    index = KnowledgeIndex.build(
        load_articles(articles_dir), TinyEncoder(export), query_encoder_dir=tmp_path / "none"
    )

    assert index.manifest.query_encoder is None


def test_a_new_export_means_a_rebuild_the_same_one_does_not(
    export: Path, articles_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "index"
    builder = TinyEncoder(export)
    first = publish_articles(articles_dir, root, builder)
    assert read_manifest(first.build_dir).query_encoder is None

    with_onnx = publish_articles(articles_dir, root, builder, query_encoder_dir=export)
    again = publish_articles(articles_dir, root, builder, query_encoder_dir=export)

    assert not with_onnx.skipped
    assert with_onnx.manifest.query_encoder is not None
    assert again.skipped


def test_live_knowledge_base_uses_each_builds_query_encoder(
    export: Path, articles_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "index"
    publish(
        KnowledgeIndex.build(
            load_articles(articles_dir), TinyEncoder(export), query_encoder_dir=export
        ),
        root,
    )
    threads.limit_native_threads(1)
    live = LiveKnowledgeBase(root)

    hits = live.search("How do I return an item?", 1)
    report = live.runtime_report()

    assert hits[0].article_id == "returns-start-a-return"
    assert report["encoder"] == f"OnnxEncoder:{TINY_NAME}"
    assert report["onnxruntime_intra_op_threads"] == 1
    assert report["build"] == current_build(root).name


def test_export_status(export: Path, articles_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "source-model"
    source.mkdir()
    (source / "model.safetensors").write_bytes(b"weights")
    (source / "config.json").write_text("{}")
    sound = write_tiny_export(tmp_path / "sound", source_sha256=source_fingerprint(source))
    sha = read_onnx_manifest(sound).model_sha256

    assert export_is_current(sound, source) is not None
    assert export_status(sound, source, live_sha256=sha, index_built=True).ok
    not_live = export_status(sound, source, live_sha256=None, index_built=True)
    assert (not_live.ok, not_live.fix) == (False, "python -m bot kb build")
    stale = export_status(export, source, live_sha256=None, index_built=False)  # other source
    assert (stale.ok, stale.fix) == (False, "python -m bot setup")

    (source / "model.safetensors").write_bytes(b"retrained weights")
    assert export_is_current(sound, source) is None
    (source / "model.safetensors").write_bytes(b"weights")
    (sound / MODEL_FILE).write_bytes((sound / MODEL_FILE).read_bytes() + b"tampered")
    assert export_is_current(sound, source) is None


def test_answering_through_the_onnx_encoder_never_imports_torch(
    export: Path, articles_dir: Path, tmp_path: Path
) -> None:
    from knowledge.head import DEFAULT_HEAD

    root = tmp_path / "index"
    publish(  # as published: with the classifier head, which searching reads with numpy
        KnowledgeIndex.build(
            load_articles(articles_dir),
            TinyEncoder(export),
            query_encoder_dir=export,
            head=DEFAULT_HEAD,
        ),
        root,
    )
    probe = f"""
import json, sys
from pathlib import Path
from knowledge.answering import AnswerPolicy, answer_question
from knowledge.store import LiveKnowledgeBase
from knowledge.threads import limit_native_threads
limit_native_threads()
live = LiveKnowledgeBase(Path({str(root)!r}))
answer = answer_question(live, "I forgot my password", policy=AnswerPolicy(answer_threshold=0.5))
heavy = sorted(m for m in ("torch", "sentence_transformers", "transformers", "spacy",
                          "sklearn") if m in sys.modules)
print(json.dumps({{"band": answer.band, "article": answer.article.article_id,
                  "encoder": live.runtime_report()["encoder"], "heavy": heavy}}))
"""
    result = run_python(probe)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {
        "band": "answer",
        "article": "account-reset-password",
        "encoder": f"OnnxEncoder:{TINY_NAME}",
        "heavy": [],
    }
