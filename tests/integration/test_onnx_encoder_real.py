"""The real MiniLM exported to ONNX int8: close to torch, answers without torch, safe to redo."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from knowledge import onnx_encoder
from knowledge.articles import load_articles
from knowledge.encoder import EncoderUnavailableError, SentenceTransformerEncoder
from knowledge.index import KnowledgeIndex
from knowledge.onnx_encoder import (
    MODEL_FILE,
    OnnxEncoder,
    export_is_current,
    export_onnx_encoder,
    read_onnx_manifest,
)
from knowledge.store import publish
from tests.helpers.onnx_export import real_onnx_export
from tests.helpers.probe import run_python

pytestmark = pytest.mark.integration

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ARTICLES = PROJECT_ROOT / "knowledge" / "articles"
QUESTIONS = {
    "How can I send back something I bought?": "returns-start-a-return",
    "when do i get my money back": "refunds-timing",
    "how much is shipping": "delivery-costs",
    "my card was declined": "payments-payment-declined",
}


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return real_onnx_export(tmp_path_factory)


@pytest.fixture(scope="module")
def torch_encoder() -> SentenceTransformerEncoder:
    encoder = SentenceTransformerEncoder()
    encoder.load()
    return encoder


def test_export_is_complete_and_names_its_source(export: Path) -> None:
    from knowledge.encoder import packaged_model_path

    manifest = read_onnx_manifest(export)

    assert manifest.name == "sentence-transformers/all-MiniLM-L6-v2"
    assert (manifest.kind, manifest.dimension, manifest.max_length) == ("onnx-int8", 384, 256)
    assert manifest.probe_min_cosine >= 0.95
    assert export_is_current(export, packaged_model_path()) == manifest
    assert (export / MODEL_FILE).stat().st_size < 30_000_000  # int8: about a quarter of fp32


def test_int8_vectors_stay_close_to_torch(export: Path, torch_encoder) -> None:
    texts = [*QUESTIONS, "hi", "I want to talk to a person " * 30]

    int8 = OnnxEncoder(export).encode(texts)
    full = torch_encoder.encode(texts)

    cosines = np.sum(int8 * full, axis=1)
    assert cosines.min() >= 0.95, cosines


def test_same_answers_as_torch_on_the_demo_articles(export: Path, torch_encoder) -> None:
    index = KnowledgeIndex.build(load_articles(ARTICLES), torch_encoder, query_encoder_dir=export)
    folder = export.parent / "demo-build"
    index.save(folder)
    onnx_index = KnowledgeIndex.load(folder)

    assert isinstance(onnx_index.encoder, OnnxEncoder)
    for question, expected in QUESTIONS.items():
        assert onnx_index.search(question, 1)[0].article_id == expected, question
        assert index.search(question, 1)[0].article_id == expected, question


def test_a_process_that_answers_with_the_export_never_loads_torch(
    export: Path, torch_encoder, tmp_path: Path
) -> None:
    articles = [a for a in load_articles(ARTICLES) if a.id in QUESTIONS.values()]
    root = tmp_path / "index"
    publish(KnowledgeIndex.build(articles, torch_encoder, query_encoder_dir=export), root)
    probe = f"""
import json, sys
from pathlib import Path
from knowledge.answering import AnswerPolicy, answer_question
from knowledge.store import LiveKnowledgeBase
from knowledge.threads import limit_native_threads
limit_native_threads()
live = LiveKnowledgeBase(Path({str(root)!r}))
answer = answer_question(live, "How can I send back something I bought?", policy=AnswerPolicy())
print(json.dumps({{"article": answer.article.article_id, "torch": "torch" in sys.modules,
                  "encoder": live.runtime_report()["encoder"]}}))
"""
    result = run_python(probe)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "article": "returns-start-a-return",
        "torch": False,
        "encoder": "OnnxEncoder:sentence-transformers/all-MiniLM-L6-v2",
    }


def test_a_failed_export_leaves_the_previous_one(
    export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from knowledge.encoder import packaged_model_path

    target = tmp_path / "encoder-onnx"
    onnx_encoder.copy_export(export, target)
    before = read_onnx_manifest(target)

    def interrupted(fp32: Path, int8: Path) -> None:
        int8.write_bytes(b"half a file")
        raise EncoderUnavailableError("interrupted half-way")

    monkeypatch.setattr(onnx_encoder, "_quantize", interrupted)
    with pytest.raises(EncoderUnavailableError, match="interrupted"):
        export_onnx_encoder(packaged_model_path(), target)

    assert read_onnx_manifest(target) == before
    assert export_is_current(target, packaged_model_path()) is not None
    assert [p.name for p in tmp_path.iterdir()] == ["encoder-onnx"]  # no temporary left
