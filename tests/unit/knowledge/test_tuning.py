"""kb tune: a tiny locally built sentence-transformers model, tuned on a handful of articles.

No download: a 2-layer BERT with a 32-d hidden size and a word-level vocabulary is built
from a config in a temp folder, tuned with the library's own loop, exported to ONNX int8
with the library's own export, and published into a temporary index root.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from knowledge.articles import load_articles
from knowledge.index import KnowledgeIndex, read_manifest
from knowledge.onnx_encoder import read_onnx_manifest, source_fingerprint
from knowledge.store import current_build, publish
from knowledge.tuning import (
    MODEL_SUBDIR,
    QUERY_ENCODER_SUBDIR,
    TUNE_RECORD_FILE,
    TuneConfig,
    TuneInterruptedError,
    TuningError,
    _batches,
    article_neighbours,
    training_pairs,
    tune_and_publish,
    tune_drift,
    tune_encoder,
    tuned_encoder,
)
from tests.unit.knowledge.conftest import write_article

pytestmark = pytest.mark.unit

ARTICLES = {
    "returns-start": (
        "How do I return an item?",
        ["send back something I bought", "refund for a parcel I returned", "return label please"],
    ),
    "password-reset": (
        "How do I reset my password?",
        ["forgot my password", "cannot log in to my account", "locked out of sign in"],
    ),
    "delivery-track": (
        "Where is my parcel?",
        ["track my delivery", "when will my order arrive", "courier has not come"],
    ),
    "card-activate": (
        "How do I activate my card?",
        ["new card does not work", "turn on the card I received", "card activation code"],
    ),
    "invoice-copy": (
        "Can I get a copy of my invoice?",
        ["download a receipt", "vat invoice for my order", "where are my bills"],
    ),
}
NAME = "tiny-bert"


_TINY_LAYERS = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "initializer_range": 0.2,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
}


def _tiny_model(folder: Path) -> Path:
    """A random 2-layer BERT as a sentence-transformers folder (mean pooling, normalised)."""
    from transformers import BertConfig, BertModel, BertTokenizerFast  # type: ignore[attr-defined]

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "?", ".", ",", *_words()]
    tokenizer = BertTokenizerFast(vocab={word: number for number, word in enumerate(vocab)})
    assert "[UNK]" not in tokenizer.tokenize("where is my parcel?")
    config = BertConfig(vocab_size=len(vocab), max_position_embeddings=64, **_TINY_LAYERS)
    return _saved(folder, "bert", "source", tokenizer, lambda: BertModel(config))


def _tiny_mpnet(folder: Path) -> Path:
    """A random 2-layer MPNet folder: no token type ids, and ``<pad>`` (id 1) beside a ``[PAD]``."""
    from transformers import MPNetConfig, MPNetModel, MPNetTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "[PAD]", "[UNK]", "<mask>"]
    vocab = [*specials, "?", ".", ",", *_words()]
    tokenizer = MPNetTokenizerFast(vocab={w: n for n, w in enumerate(vocab)}, unk_token="[UNK]")
    assert "token_type_ids" not in tokenizer("where is my parcel?")
    config = MPNetConfig(
        vocab_size=len(vocab), max_position_embeddings=66, pad_token_id=1, **_TINY_LAYERS
    )
    return _saved(folder, "raw", "tiny-mpnet", tokenizer, lambda: MPNetModel(config))


def _words() -> list[str]:
    texts = [x for title, questions in ARTICLES.values() for x in [title, *questions]]
    return sorted({w.strip("?,.").lower() for text in texts for w in text.split()})


def _saved(folder: Path, raw_name: str, name: str, tokenizer: Any, make: Any) -> Path:
    """Save a seeded random transformer with mean pooling and normalisation as ``name``."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as models

    raw = folder / raw_name
    raw.mkdir(parents=True)
    tokenizer.save_pretrained(str(raw))
    torch.manual_seed(3)
    make().save_pretrained(str(raw))
    transformer = models.Transformer(str(raw), max_seq_length=32)
    pooling = models.Pooling(transformer.get_embedding_dimension(), "mean")
    model = SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu")
    target = folder / name
    model.save(str(target))
    return target


@pytest.fixture(scope="module")
def tiny_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("onnxruntime")
    return _tiny_model(tmp_path_factory.mktemp("tiny-st"))


@pytest.fixture
def articles_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "articles"
    for article_id, (title, questions) in ARTICLES.items():
        write_article(folder, article_id, title=title, questions=questions)
    return folder


CONFIG = TuneConfig(epochs=16, batch_size=8, learning_rate=3e-3, warmup_ratio=0.0, seed=1)


def _margin_to_own_title(encoder, articles) -> float:  # type: ignore[no-untyped-def]
    """Mean over alternate questions of (cosine to its own title - best cosine to another)."""
    titles = encoder.encode([a.title for a in articles])
    margins = []
    for row, article in enumerate(articles):
        cosines = encoder.encode(article.questions) @ titles.T
        others = np.delete(cosines, row, axis=1).max(axis=1)
        margins.extend(cosines[:, row] - others)
    return float(np.mean(margins))


def test_tune_moves_questions_to_their_article_and_publishes_the_tuned_encoder(
    tiny_source: Path, articles_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "index"
    articles = load_articles(articles_dir)
    before = _margin_to_own_title(tuned_encoder(tiny_source, NAME, dimension=32), articles)

    done = tune_and_publish(
        articles_dir, root, CONFIG, source_dir=tiny_source, base_name=NAME, head=None
    )

    model_dir = done.encoder_dir / MODEL_SUBDIR
    after = _margin_to_own_title(tuned_encoder(model_dir, done.name, dimension=32), articles)
    assert after > 0.2 and after > before + 0.2, (before, after)
    assert done.tune.steps == done.tune.planned_steps > 0
    # The live build names the tuned encoder, and its ONNX export comes from the tuned model.
    assert current_build(root) == done.build_dir
    manifest = read_manifest(done.build_dir)
    assert manifest.model == done.name and done.name.startswith(f"{NAME}+tuned-")
    assert manifest.encoder_dir == f"encoders/{done.encoder_dir.name}"
    assert (root / manifest.encoder_dir / MODEL_SUBDIR).is_dir()
    assert manifest.query_encoder is not None
    tuned_fingerprint = source_fingerprint(model_dir)
    assert (
        manifest.query_encoder.source_sha256 == tuned_fingerprint != source_fingerprint(tiny_source)
    )
    export = read_onnx_manifest(done.encoder_dir / QUERY_ENCODER_SUBDIR)
    assert export.name == done.name and export.source_sha256 == tuned_fingerprint
    # Loaded as the action server does (its own ONNX query encoder): questions find their article.
    live = KnowledgeIndex.load(done.build_dir)
    assert type(live.encoder).__name__ == "OnnxEncoder" and live.encoder.name == done.name
    found = sum(
        live.search(q, limit=1)[0].article_id == a.id for a in articles for q in a.questions
    )
    assert found >= 12  # of 15
    # How it was tuned is recorded beside it.
    record = json.loads((done.encoder_dir / TUNE_RECORD_FILE).read_text(encoding="utf-8"))
    assert record["name"] == done.name and record["base_model"] == NAME
    assert record["config"]["epochs"] == CONFIG.epochs
    assert record["config"]["freeze_layers"] == CONFIG.freeze_layers
    assert record["result"]["steps"] == done.tune.steps
    assert record["result"]["stopped_by_budget"] is False


def test_same_seed_same_pairs_and_the_cosine_loss_gets_negatives(articles_dir: Path) -> None:
    articles = load_articles(articles_dir)
    first = training_pairs(articles, seed=5)
    assert first == training_pairs(articles, seed=5)
    assert first != training_pairs(articles, seed=6)
    assert len(first) == 20 and {label for *_, label in first} == {1.0}
    pairs = training_pairs(articles, loss="cosine", seed=5)
    assert sorted({label for *_, label in pairs}) == [0.0, 1.0]
    owner = {t: a.id for a in articles for t in [a.title, *a.questions]}
    assert all((owner[x] == owner[y]) == (label == 1.0) for x, y, _, label in pairs)


def test_several_pairs_per_text_draw_distinct_partners_of_the_same_article(
    articles_dir: Path,
) -> None:
    articles = load_articles(articles_dir)
    owner = {t: a.id for a in articles for t in [a.title, *a.questions]}
    texts_of = {a.id: len({a.title, *a.questions}) for a in articles}
    pairs = training_pairs(articles, seed=5, per_text=3)
    assert training_pairs(articles, seed=5, per_text=1) == training_pairs(articles, seed=5)
    partners: dict[str, list[str]] = {}
    for text, partner, article_id, label in pairs:
        assert label == 1.0 and owner[text] == owner[partner] == article_id and text != partner
        partners.setdefault(text, []).append(partner)
    for text, found in partners.items():
        assert len(found) == len(set(found)) == min(3, texts_of[owner[text]] - 1)
    assert len(pairs) > len(training_pairs(articles, seed=5))
    negatives = training_pairs(articles, loss="cosine", seed=5, per_text=3)
    assert sum(label == 0.0 for *_, label in negatives) == len(pairs)


def _keyword_vectors(texts: list[str]) -> np.ndarray:
    """Texts → normalised counts of a few topic words (a stand-in for a model)."""
    words = ("return", "password", "parcel", "order", "card", "invoice")
    rows = np.array([[t.lower().count(w) for w in words] + [0.01] for t in texts], float)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_article_neighbours_are_nearest_first_by_their_centres(articles_dir: Path) -> None:
    articles = load_articles(articles_dir)

    near = article_neighbours(articles, _keyword_vectors)

    assert set(near) == set(ARTICLES)
    assert all(sorted(others) == sorted(set(ARTICLES) - {a}) for a, others in near.items())
    # "where is my parcel" and "vat invoice for my order" share "order"; a card does not.
    assert near["delivery-track"][0] == "invoice-copy"
    assert near["invoice-copy"][0] == "delivery-track"
    assert (
        article_neighbours(articles, _keyword_vectors, keep=2)["delivery-track"]
        == (near["delivery-track"][:2])
    )


def test_topic_batches_hold_a_seed_and_its_nearest_articles_once_each(
    articles_dir: Path,
) -> None:
    import random

    articles = load_articles(articles_dir)
    pairs = training_pairs(articles, seed=2, per_text=2)
    near = article_neighbours(articles, _keyword_vectors)

    batches = _batches(pairs, 3, distinct=True, rng=random.Random(0), neighbours=near)

    used = [pair for batch in batches for pair in batch]
    assert len(used) == len(set(used)) and set(used) <= set(pairs)  # each pair at most once
    # Only the last article's pairs can be left over: alone, it has nothing to contrast.
    assert len({pair[2] for pair in set(pairs) - set(used)}) <= 1
    for batch in batches:
        ids = [pair[2] for pair in batch]
        assert len(ids) == len(set(ids)) >= 2
    seed, *rest = [pair[2] for pair in batches[0]]
    assert rest == near[seed][:2]  # nothing used up yet: the seed's two nearest


def test_a_topic_batched_tune_trains_every_planned_step(
    tiny_source: Path, articles_dir: Path, tmp_path: Path
) -> None:
    config = TuneConfig(epochs=2, batch_size=3, learning_rate=3e-3, seed=1, batching="topic")

    result = tune_encoder(load_articles(articles_dir), tiny_source, tmp_path / "tuned", config)

    assert result.steps == result.planned_steps > 0 and not result.stopped_by_budget
    assert (tmp_path / "tuned" / "config_sentence_transformers.json").exists()


def test_tune_drift_names_articles_whose_title_or_questions_the_tune_never_saw(
    tiny_source: Path, articles_dir: Path, tmp_path: Path
) -> None:
    from knowledge.build_encoding import encoding_for_next_build

    root = tmp_path / "index"
    assert tune_drift(root) is None  # nothing built
    done = tune_and_publish(
        articles_dir, root, CONFIG, source_dir=tiny_source, base_name=NAME, head=None
    )
    drift = tune_drift(root)
    assert drift is not None and drift.name == done.name
    assert drift.tuned_articles == len(ARTICLES) and drift.new_or_changed == ()

    # Later builds keep the tuned model: one new article, one with a new question, and one
    # whose body alone changed (the tune never learns from bodies).
    write_article(articles_dir, "gift-cards", title="Do you sell gift cards?", questions=["a"])
    title, questions = ARTICLES["invoice-copy"]
    write_article(articles_dir, "invoice-copy", title=title, questions=[*questions, "pdf bill"])
    title, questions = ARTICLES["delivery-track"]
    write_article(
        articles_dir, "delivery-track", title=title, questions=questions, body="New body."
    )
    encoding = encoding_for_next_build(root, default=lambda: None, default_query_encoder_dir=None)  # type: ignore[arg-type,return-value]
    assert encoding.tuned
    index = KnowledgeIndex.build(
        load_articles(articles_dir),
        encoding.encoder,
        query_encoder_dir=encoding.query_encoder_dir,
        encoder_dir=encoding.encoder_dir,
        head=None,
    )
    publish(index, root)
    drift = tune_drift(root)
    assert drift is not None and drift.new_or_changed == ("gift-cards", "invoice-copy")

    # A record from before the articles were recorded, or an unreadable one: no claim.
    record_path = done.encoder_dir / TUNE_RECORD_FILE
    record = json.loads(record_path.read_text(encoding="utf-8"))
    del record["articles"]
    record_path.write_text(json.dumps(record), encoding="utf-8")
    publish(index, root)  # a new build (the answer is cached per build)
    assert tune_drift(root) is None
    record_path.write_text("{not json", encoding="utf-8")
    publish(index, root)
    assert tune_drift(root) is None


def test_clean_up_keeps_an_encoder_another_tune_just_made(tmp_path: Path) -> None:
    """Two tunes at once: the first to finish must not delete the other's new encoder."""
    from knowledge.tuning import _STALE_TEMP_SECONDS, _prune_encoders

    encoders = tmp_path / "index" / "encoders"
    for name in ("old+tuned-1", "fresh+tuned-2", ".tmp-running"):
        (encoders / name / MODEL_SUBDIR).mkdir(parents=True)
    long_ago = time.time() - _STALE_TEMP_SECONDS - 60
    os.utime(encoders / "old+tuned-1", (long_ago, long_ago))

    _prune_encoders(tmp_path / "index")  # no build uses any of them

    assert sorted(p.name for p in encoders.iterdir()) == [".tmp-running", "fresh+tuned-2"]


def test_interrupted_tune_leaves_the_live_build_and_no_encoder(
    tiny_source: Path, articles_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "index"
    from tests.helpers.fake_encoder import FakeEncoder

    old = publish(KnowledgeIndex.build(load_articles(articles_dir), FakeEncoder()), root)
    old_manifest = (old / "manifest.json").read_text()

    def stop(step: int, planned: int, loss: float) -> None:
        if step == 2:
            raise KeyboardInterrupt  # what Ctrl-C raises mid-training

    with pytest.raises(TuneInterruptedError):
        tune_and_publish(
            articles_dir, root, CONFIG, source_dir=tiny_source, base_name=NAME, on_step=stop
        )
    assert current_build(root) == old
    assert (old / "manifest.json").read_text() == old_manifest
    assert list((root / "encoders").iterdir()) == []

    def crash(step: int, planned: int, loss: float) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        tune_and_publish(
            articles_dir, root, CONFIG, source_dir=tiny_source, base_name=NAME, on_step=crash
        )
    assert current_build(root) == old and list((root / "encoders").iterdir()) == []
    assert json.loads(old_manifest)["encoder_dir"] is None


def test_articles_without_alternate_questions_are_refused(
    tiny_source: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "articles"
    write_article(folder, "only-a-title", title="Opening hours")
    write_article(folder, "another-title", title="Shipping costs")
    with pytest.raises(TuningError, match="alternate questions"):
        tune_and_publish(folder, tmp_path / "index", CONFIG, source_dir=tiny_source)
    assert current_build(tmp_path / "index") is None


def test_the_time_budget_stops_training_and_keeps_time_for_the_rebuild(
    tiny_source: Path, articles_dir: Path, tmp_path: Path
) -> None:
    from knowledge.tuning import tune_encoder

    articles = load_articles(articles_dir)
    config = TuneConfig(epochs=500, batch_size=8, learning_rate=3e-3, seed=1)
    started = time.perf_counter()
    done = tune_encoder(articles, tiny_source, tmp_path / "m", config, budget_seconds=1.5)
    assert done.stopped_by_budget and 0 < done.steps < done.planned_steps == 2000
    assert time.perf_counter() - started < 1.5 + 2.0  # the step that would overrun is not run
    reserved = tune_encoder(
        articles, tiny_source, tmp_path / "r", config, budget_seconds=1.5, rebuild_texts=5_000
    )
    assert reserved.stopped_by_budget and reserved.steps < done.steps


def test_slow_model_loading_does_not_count_as_time_per_step(
    tiny_source: Path, articles_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A large model takes seconds to load on a busy machine; counted as the first step's
    # time, the rebuild reserve it implies ended the tune after one step.
    import sentence_transformers

    from knowledge.tuning import tune_encoder

    loading = sentence_transformers.SentenceTransformer.__init__

    def slow_init(self: Any, *args: Any, **kwargs: Any) -> None:
        time.sleep(1.0)
        loading(self, *args, **kwargs)

    monkeypatch.setattr(sentence_transformers.SentenceTransformer, "__init__", slow_init)
    config = TuneConfig(epochs=500, batch_size=8, learning_rate=3e-3, seed=1)
    done = tune_encoder(
        load_articles(articles_dir),
        tiny_source,
        tmp_path / "m",
        config,
        budget_seconds=3.0,
        rebuild_texts=100,
    )
    assert done.stopped_by_budget and done.steps > 5


def _state(folder: Path) -> dict[str, np.ndarray]:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu")
    return {k: v.detach().numpy().copy() for k, v in model[0].auto_model.state_dict().items()}


@pytest.mark.parametrize("make", [_tiny_model, _tiny_mpnet], ids=["bert", "mpnet"])
def test_freeze_layers_keeps_embeddings_and_the_lowest_layers(
    make: Any, articles_dir: Path, tmp_path: Path
) -> None:
    pytest.importorskip("sentence_transformers")
    from knowledge.tuning import tune_encoder

    source = make(tmp_path / "source")
    before = _state(source)
    articles = load_articles(articles_dir)
    config = TuneConfig(epochs=2, batch_size=8, learning_rate=3e-3, seed=1, freeze_layers=1)
    done = tune_encoder(articles, source, tmp_path / "tuned", config)
    after = _state(done.model_dir)
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    assert not {k for k in changed if k.startswith(("embeddings.", "encoder.layer.0."))}
    assert {k for k in changed if k.startswith("encoder.layer.1.")}  # the top layer trained
    with pytest.raises(TuningError, match="has 2"):
        tune_encoder(articles, source, tmp_path / "no", config.__class__(freeze_layers=3))
    assert not (tmp_path / "no").exists()


def test_one_article_with_questions_is_refused_before_any_model_is_loaded(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "articles"
    write_article(folder, "asked", title="Opening hours", questions=["when are you open"])
    write_article(folder, "only-a-title", title="Shipping costs")

    # In-batch negatives need a second article: refused before the (missing) model loads.
    with pytest.raises(TuningError, match="nothing to tune on"):
        tune_encoder(load_articles(folder), tmp_path / "no-model", tmp_path / "out", TuneConfig())
    assert not (tmp_path / "out").exists()


def test_kb_tune_cli_refuses_without_questions_or_with_a_bad_val_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from knowledge.editor import main

    folder = tmp_path / "articles"
    write_article(folder, "only-a-title", title="Opening hours")
    write_article(folder, "another-title", title="Shipping costs")
    root = tmp_path / "index"
    bad = tmp_path / "val.jsonl"
    bad.write_text('{"question": "hours?"\n', encoding="utf-8")
    common = ["--articles-dir", str(folder), "--index-dir", str(root)]
    assert main(["tune", *common, "--val", str(bad)]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["tune", *common, "--max-minutes", "1"]) == 1
    assert "alternate questions" in capsys.readouterr().err
    assert main(["tune", *common, "--freeze-layers", "-1"]) == 2
    assert "at least 0" in capsys.readouterr().err
    assert main(["tune", *common, "--pairs-per-text", "0"]) == 2
    assert main(["tune", *common, "--batching", "clusters"]) == 2
    assert current_build(root) is None


def test_kb_tune_start_from_a_model_without_token_type_ids(
    tmp_path: Path, articles_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--start-from`` tunes another model (MPNet-style inputs), exported and served alike."""
    pytest.importorskip("onnxruntime")
    from knowledge.editor import EditorDefaults, main

    models_dir = tmp_path / "models"
    source = _tiny_mpnet(models_dir)
    root = tmp_path / "index"
    common = ["--articles-dir", str(articles_dir), "--index-dir", str(root)]
    defaults = EditorDefaults(models_dir=models_dir, models_hint="install it first")
    assert main(["tune", *common, "--start-from", "no-such-model"], defaults=defaults) == 2
    assert "install it first" in capsys.readouterr().err
    assert current_build(root) is None

    tune = ["tune", *common, "--start-from", "tiny-mpnet", "--epochs", "4"]
    options = ["--pairs-per-text", "2", "--batching", "topic", "--bm25", "0.2"]
    assert main([*tune, *options], defaults=defaults) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "Tuning from" in printed and "check the answer and suggest thresholds" in printed
    assert "also ranked by BM25 word overlap (weight 0.2)" in printed
    manifest = read_manifest(current_build(root))  # type: ignore[arg-type]
    assert manifest.model.startswith("tiny-mpnet+tuned-")
    assert manifest.lexical is not None and manifest.lexical.weight == 0.2
    assert manifest.encoder_dir is not None
    folder = root / manifest.encoder_dir
    live = KnowledgeIndex.load(current_build(root))  # type: ignore[arg-type]
    onnx = live.encoder
    questions = ["where is my parcel?", "forgot my password", "vat invoice for my order please now"]
    onnx.encode(questions)
    assert [i.name for i in onnx._session.get_inputs()] == ["input_ids", "attention_mask"]
    # One batch of different lengths (padded with <pad>) gives the tuned torch model's vectors.
    torch_vectors = tuned_encoder(folder / MODEL_SUBDIR, manifest.model, dimension=32).encode(
        questions
    )
    cosines = np.sum(onnx.encode(questions) * torch_vectors, axis=1)
    assert cosines.min() > 0.98, cosines
    assert source.is_dir()  # tuning never changes the model it starts from
    record = json.loads((folder / TUNE_RECORD_FILE).read_text(encoding="utf-8"))
    assert (record["config"]["pairs_per_text"], record["config"]["batching"]) == (2, "topic")


def test_export_keeps_feed_forward_outputs_in_float32_when_int8_drifts(
    tiny_source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A drifting int8 export is redone with the feed-forward output projections in float32."""
    import onnx

    from knowledge import onnx_encoder

    real_probe = onnx_encoder._probe_cosine
    measured: list[float] = []

    def first_probe_drifts(*args: object) -> float:
        measured.append(real_probe(*args))  # type: ignore[arg-type]
        return 0.5 if len(measured) == 1 else measured[-1]

    monkeypatch.setattr(onnx_encoder, "_probe_cosine", first_probe_drifts)
    target = tmp_path / "query-encoder"
    manifest = onnx_encoder.export_onnx_encoder(tiny_source, target, name=NAME, dimension=32)

    assert len(measured) == 2 and manifest.fp32_nodes == 2  # one per layer of the tiny BERT
    graph = onnx.load(str(target / manifest.model_file)).graph
    float_matmuls = {n.name for n in graph.node if n.op_type == "MatMul"}
    assert {f"/inner/encoder/layer.{n}/output/dense/MatMul" for n in (0, 1)} <= float_matmuls
    assert any(n.op_type == "MatMulInteger" for n in graph.node)  # the rest is still int8
    assert not list(tmp_path.glob(".tmp-*"))


def test_an_export_of_another_model_is_never_published(
    tiny_source: Path, articles_dir: Path, tmp_path: Path
) -> None:
    """The query encoder must come from the tuned weights, on either publishing path."""
    from knowledge.onnx_encoder import export_onnx_encoder

    def export_the_untuned_model(model_dir: Path, target: Path, **kwargs: Any) -> object:
        return export_onnx_encoder(tiny_source, target, **kwargs)

    published: list[object] = []
    for publisher in (None, lambda *args: published.append(args) or tmp_path):
        root = tmp_path / f"index-{len(published)}-{publisher is None}"
        with pytest.raises(TuningError, match="does not match the tuned model"):
            tune_and_publish(
                articles_dir,
                root,
                CONFIG,
                source_dir=tiny_source,
                base_name=NAME,
                head=None,
                export=export_the_untuned_model,
                publisher=publisher,
            )
        assert current_build(root) is None
    assert published == []
