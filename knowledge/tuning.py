"""Contrastive fine-tuning of the encoder on a knowledge base's own texts (``kb tune``).

SetFit-style: the texts of one article (its title and each alternate question) are
positives for one another, texts of other articles are negatives. Two losses:

- ``mnrl`` (default): sentence-transformers' ``MultipleNegativesRankingLoss`` on
  (question, other text of the same article) pairs, every other pair of the batch a
  negative; batches never hold two pairs of one article (no false negatives);
- ``cosine``: SetFit's pair generation (one positive and one negative pair per text)
  with ``CosineSimilarityLoss``.

``pairs_per_text`` draws several positive partners per text (SetFit's pair iterations),
and ``batching="topic"`` builds each ``mnrl`` batch from an article and its nearest
articles (by the model before tuning), so the in-batch negatives are the confusable ones.

Training runs on the CPU in a small loop of its own (no ``datasets``/``accelerate``),
seeded (same articles, settings and seed: same pairs, same batches, same weights for the
same number of steps). It is **capped**: at most ``epochs`` passes over at most
``max_pairs`` pairs, and training stops early when the time budget would be exceeded
(``max_minutes`` for the whole tune, less an estimate of the export and rebuild that
follow). See ``docs/operations.md`` ("Tuning the encoder") for measured times.

:func:`tune_and_publish` is what ``kb tune`` runs. Layout under the index root::

    encoders/<name>/model/          the tuned sentence-transformers model
    encoders/<name>/query-encoder/  its ONNX int8 export (knowledge.onnx_encoder)
    encoders/<name>/tune.json       how it was tuned: the base model, the settings
                                    (every field of TuneConfig) and what the tune did
                                    (pairs, steps, stopped by the cap, losses, seconds)
    builds/<id>/                    the index rebuilt with the tuned model; its manifest's
                                    ``model`` is the tuned name and ``encoder_dir`` is
                                    ``encoders/<name>``; it carries the ONNX export

Everything is written into temporary folders first; the live index changes only at the
end, through :func:`knowledge.store.publish` (one symlink swap). An interrupted tune
(Ctrl-C, a crash, SIGKILL) leaves ``current`` and the encoder it uses exactly as they
were; an abandoned temporary folder is removed by the next tune.

This is an operator/editor command: nothing here runs on a customer's request path.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import itertools
import json
import logging
import math
import os
import random
import shutil
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from knowledge.articles import Article, load_articles
from knowledge.encoder import (
    EMBEDDING_DIMENSION,
    EMBEDDING_MODEL_NAME,
    EncoderUnavailableError,
    SentenceTransformerEncoder,
    packaged_model_path,
)
from knowledge.head import HeadConfig
from knowledge.index import (
    KnowledgeIndex,
    KnowledgeIndexError,
    Manifest,
    read_build_articles,
    read_manifest,
)
from knowledge.lexical import LexicalConfig
from knowledge.store import (
    LIVE_SETTING,
    HeadSetting,
    LexicalSetting,
    current_build,
    current_manifest,
    head_for_next_build,
    lexical_for_next_build,
    list_builds,
    publish,
)

__all__ = [
    "ENCODERS_DIR",
    "MODEL_SUBDIR",
    "QUERY_ENCODER_SUBDIR",
    "TUNE_RECORD_FILE",
    "StepCallback",
    "TuneConfig",
    "TuneDrift",
    "TuneInterruptedError",
    "TunePublishResult",
    "TuneResult",
    "TunedEncoder",
    "TunedPublisher",
    "TuningError",
    "live_tune_record",
    "training_pairs",
    "tune_and_publish",
    "tune_drift",
    "tune_encoder",
    "tuned_encoder",
]

logger = logging.getLogger(__name__)

ENCODERS_DIR = "encoders"
MODEL_SUBDIR = "model"
QUERY_ENCODER_SUBDIR = "query-encoder"
TUNE_RECORD_FILE = "tune.json"
_TEMP_PREFIX = ".tmp-"
_STALE_TEMP_SECONDS = 3600.0
_TUNED_MARK = "+tuned-"
_EXPORT_RESERVE_SECONDS = 60.0  # ONNX export and publishing (6 s measured with 10k texts)
Loss = Literal["mnrl", "cosine"]
Batching = Literal["random", "topic"]
# Texts per article encoded for topic-aware batches (their mean is the article's centre).
_TOPIC_TEXTS_PER_ARTICLE = 8
# Called after every training step with (step, planned steps, loss).
StepCallback = Callable[[int, int, float], None]


class TuningError(Exception):
    """Raised when a knowledge base cannot be tuned (e.g. nothing to learn from).

    Attributes:
        message: What is wrong, with a hint.
    """

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class TuneInterruptedError(TuningError):
    """Raised when a tune was interrupted; nothing was published."""


@dataclass(frozen=True)
class TuneConfig:
    """How to fine-tune (all settings come in as arguments; the library reads none).

    Attributes:
        loss: ``mnrl`` (in-batch negatives) or ``cosine`` (SetFit pairs).
        epochs: Passes over the pairs (at most).
        batch_size: Pairs per step.
        learning_rate: AdamW's peak learning rate (linear warm-up then decay).
        warmup_ratio: Share of the planned steps spent warming up.
        max_pairs: Most pairs per epoch (a random sample above it).
        max_minutes: Budget for the whole tune (training, export and rebuild); training
            stops early, after a whole step, when it would overrun.
        max_length: Tokens per text while training (questions are short).
        seed: Seeds the pair sampling, the batches, dropout and the optimiser.
        freeze_layers: Keep the token embeddings and this many of the lowest transformer
            layers as they are (0: train everything). Fewer weights to update makes a step
            cheaper, so a time-capped tune of a large model gets through more of the pairs.
        threads: torch threads (1: on a small shared CPU two threads were ten times
            slower per step than one, spinning against other processes).
        pairs_per_text: Positive partners drawn for each text (distinct, as many as the
            article has), as SetFit draws several pairs per example.
        batching: ``random`` batches, or ``topic``-aware ones (``mnrl`` only): each batch
            is an article and its nearest articles by the untuned model, so the in-batch
            negatives are the articles most easily confused with one another (TAS-B's
            balanced topic-aware sampling, Hofstätter et al., 2021). The untuned model
            first encodes up to eight texts per article, inside the time budget.
    """

    loss: Loss = "mnrl"
    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    max_pairs: int = 20_000
    max_minutes: float = 25.0
    max_length: int = 64
    seed: int = 0
    freeze_layers: int = 0
    threads: int = 1
    pairs_per_text: int = 1
    batching: Batching = "random"


@dataclass(frozen=True)
class TuneResult:
    """What :func:`tune_encoder` did.

    Attributes:
        model_dir: The saved tuned model.
        pairs: Pairs per epoch.
        steps: Optimiser steps taken.
        planned_steps: Steps the epochs asked for.
        seconds: Training time.
        stopped_by_budget: Whether the time budget cut training short.
        first_loss: Mean loss over the first tenth of the steps.
        last_loss: Mean loss over the last tenth of the steps.
        dimension: The model's vector length.
    """

    model_dir: Path
    pairs: int
    steps: int
    planned_steps: int
    seconds: float
    stopped_by_budget: bool
    first_loss: float
    last_loss: float
    dimension: int = EMBEDDING_DIMENSION


@dataclass(frozen=True)
class TunePublishResult:
    """What :func:`tune_and_publish` did.

    Attributes:
        name: The tuned encoder's name (recorded in the build's manifest).
        encoder_dir: ``encoders/<name>`` under the index root.
        build_dir: The new live build.
        manifest: Its manifest.
        tune: The training figures.
        seconds: Wall time of the whole tune (training, export, rebuild, publish).
        export_seconds: Time of the ONNX int8 export.
        build_seconds: Time of the rebuild with the tuned model.
        val_top1: Top-1 on the given validation questions with the new build (its ONNX
            query encoder), if any were given.
        val_top1_before: The same with the build that was live before, if there was one.
    """

    name: str
    encoder_dir: Path
    build_dir: Path
    manifest: Manifest
    tune: TuneResult
    seconds: float
    export_seconds: float
    build_seconds: float
    val_top1: float | None = None
    val_top1_before: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TunedEncoder:
    """A tuned model saved under the index root, ready for a build to encode with.

    Attributes:
        name: The tuned encoder's name (``<base>+tuned-<12 hex>``).
        folder: ``encoders/<name>`` under the index root.
        encoder_dir: The same, relative to the index root (what a manifest records).
        dimension: Its vector length.
        threads: torch threads for encoding.
    """

    name: str
    folder: Path
    encoder_dir: str
    dimension: int
    threads: int = 1

    @property
    def query_encoder_dir(self) -> Path:
        """Its ONNX int8 query encoder (the build carries a copy)."""
        return self.folder / QUERY_ENCODER_SUBDIR

    def encoder(self) -> SentenceTransformerEncoder:
        """The torch document encoder (loads the model on first use)."""
        return tuned_encoder(
            self.folder / MODEL_SUBDIR, self.name, dimension=self.dimension, threads=self.threads
        )


# Publishes the knowledge base's live articles encoded with a freshly tuned model and
# returns the build folder put live; called with the head and BM25 settings to build with.
TunedPublisher = Callable[[TunedEncoder, HeadConfig | None, LexicalConfig | None], Path]


@dataclass(frozen=True)
class TuneDrift:
    """How far the knowledge base has moved from what its live encoder was tuned on.

    Attributes:
        name: The tuned encoder's name.
        tuned_at: When it was tuned (ISO 8601, UTC).
        tuned_articles: Articles it learned from.
        new_or_changed: Ids of live articles it never saw, or whose title or alternate
            questions changed since (their body does not count: the tune learns from
            titles and questions only).
    """

    name: str
    tuned_at: str
    tuned_articles: int
    new_or_changed: tuple[str, ...]


def tune_drift(root: Path) -> TuneDrift | None:
    """Compare the live articles with what the live build's tuned encoder learned from.

    Builds and encoder folders never change once written, so the answer is cached per
    build (an editor's page asks on every view).

    Args:
        root: The index root.

    Returns:
        The drift, or ``None`` when the live build is not tuned or its ``tune.json``
        predates the record of articles (or cannot be read).
    """
    build = current_build(root)
    if build is None:
        return None
    try:  # a failure is not cached: the next view tries again
        return _build_drift(str(Path(root).resolve()), str(build.resolve()))
    except (OSError, ValueError, KeyError, TypeError, KnowledgeIndexError) as exc:
        logger.warning("Cannot compare build %s with its tune record: %s", build.name, exc)
        return None


def live_tune_record(root: Path) -> dict[str, Any] | None:
    """How the live build's encoder was tuned (its ``tune.json``), or ``None`` if untuned.

    Raises:
        OSError: If the record cannot be read.
        ValueError: If it is not JSON.
    """
    build = current_build(root)
    return None if build is None else _tune_record(Path(root), read_manifest(build))


def _tune_record(root: Path, manifest: Manifest) -> dict[str, Any] | None:
    if not manifest.encoder_dir:
        return None
    record = json.loads((root / manifest.encoder_dir / TUNE_RECORD_FILE).read_text("utf-8"))
    if not isinstance(record, dict):
        raise ValueError(f"{TUNE_RECORD_FILE} of {manifest.encoder_dir} is not an object")
    return record


@functools.lru_cache(maxsize=8)
def _build_drift(root: str, build: str) -> TuneDrift | None:
    record = _tune_record(Path(root), read_manifest(Path(build)))
    if record is None or "articles" not in record:  # untuned, or tuned before the record
        return None
    tuned = dict(record["articles"])
    fresh = _article_fingerprints(read_build_articles(Path(build)))
    changed = tuple(sorted(a for a, mark in fresh.items() if tuned.get(a) != mark))
    return TuneDrift(str(record["name"]), str(record["created_at"]), len(tuned), changed)


def _article_fingerprints(articles: Sequence[Article]) -> dict[str, str]:
    """Per article, a short hash of the texts a tune learns from (title and questions)."""
    return {
        a.id: hashlib.sha256("\n".join(_article_texts(a)).encode("utf-8")).hexdigest()[:16]
        for a in articles
    }


def _article_texts(article: Article) -> list[str]:
    """The article's title and alternate questions, without repeats (case and spacing)."""
    seen: set[str] = set()
    texts = []
    for text in [article.title, *article.questions]:
        key = " ".join(text.lower().split())
        if key and key not in seen:
            seen.add(key)
            texts.append(text)
    return texts


def training_pairs(
    articles: Sequence[Article],
    *,
    loss: Loss = "mnrl",
    seed: int = 0,
    max_pairs: int = 20_000,
    per_text: int = 1,
) -> list[tuple[str, str, str, float]]:
    """Pairs to learn from: ``(text, other text, article id of text, label)``.

    ``mnrl``: each text of an article with at least two texts is paired with
    ``per_text`` other texts of the same article (label 1; fewer when the article has
    fewer). ``cosine``: each such pair also gets a negative pair with a text of another
    article (label 0), SetFit's balanced pair generation.

    Args:
        articles: The knowledge base.
        loss: Which loss the pairs are for.
        seed: Seeds the choice of partners and the sample.
        max_pairs: Most pairs returned (a seeded random sample above it).
        per_text: Distinct positive partners per text (1: one pair per text).

    Returns:
        The pairs, in a seeded order.
    """
    rng = random.Random(seed)
    groups = [(a.id, _article_texts(a)) for a in sorted(articles, key=lambda a: a.id)]
    pairs: list[tuple[str, str, str, float]] = []
    everything = [(article_id, text) for article_id, texts in groups for text in texts]
    for article_id, texts in groups:
        if len(texts) < 2:
            continue
        for position, text in enumerate(texts):
            others = texts[:position] + texts[position + 1 :]
            # one partner draws what rng.choice would, so per_text=1 keeps earlier pairs
            for partner in rng.sample(others, min(max(1, per_text), len(others))):
                pairs.append((text, partner, article_id, 1.0))
                if loss == "cosine" and len(groups) > 1:
                    while True:
                        other_id, other = everything[rng.randrange(len(everything))]
                        if other_id != article_id:
                            break
                    pairs.append((text, other, article_id, 0.0))
    rng.shuffle(pairs)
    if len(pairs) > max_pairs:
        pairs = rng.sample(pairs, max_pairs)
    return pairs


def _batches(
    pairs: list[tuple[str, str, str, float]],
    size: int,
    *,
    distinct: bool,
    rng: random.Random,
    neighbours: dict[str, list[str]] | None = None,
) -> list[list[tuple[str, str, str, float]]]:
    """Cut shuffled pairs into batches; ``distinct``: never two pairs of one article.

    ``neighbours`` (article id → the other article ids, nearest first) makes topic-aware
    batches: a random article that still has pairs, then one pair of each of its nearest
    articles that still have some (``distinct`` is implied).
    """
    order = list(pairs)
    rng.shuffle(order)
    if neighbours is not None:
        return _topic_batches(order, size, neighbours, rng)
    if not distinct:
        return [order[i : i + size] for i in range(0, len(order), size)]
    batches: list[list[tuple[str, str, str, float]]] = []
    waiting = order
    while waiting:
        batch: list[tuple[str, str, str, float]] = []
        seen: set[str] = set()
        later = []
        for pair in waiting:
            if len(batch) < size and pair[2] not in seen:
                batch.append(pair)
                seen.add(pair[2])
            else:
                later.append(pair)
        if len(batch) < 2:  # one article left: it has no negatives, nothing to learn
            break
        batches.append(batch)
        waiting = later
    return batches


def _topic_batches(
    order: list[tuple[str, str, str, float]],
    size: int,
    neighbours: dict[str, list[str]],
    rng: random.Random,
) -> list[list[tuple[str, str, str, float]]]:
    queues: dict[str, list[tuple[str, str, str, float]]] = defaultdict(list)
    for pair in order:
        queues[pair[2]].append(pair)
    batches: list[list[tuple[str, str, str, float]]] = []
    while len(queues) > 1:
        waiting = sorted(queues)
        seed = rng.choice(waiting)
        near = [a for a in neighbours.get(seed, []) if a in queues]
        members = [seed, *near[: size - 1]]
        if len(members) < size:  # the seed's near articles are used up: fill at random
            taken = set(members)
            rest = [a for a in waiting if a not in taken]
            members += rng.sample(rest, min(len(rest), size - len(members)))
        batch = []
        for article_id in members:
            batch.append(queues[article_id].pop())
            if not queues[article_id]:
                del queues[article_id]
        batches.append(batch)
    return batches


def article_neighbours(
    articles: Sequence[Article], encode: Callable[[list[str]], Any], *, keep: int = 128
) -> dict[str, list[str]]:
    """Each article's nearest other articles, nearest first, by the cosine of their centres.

    Args:
        articles: The knowledge base.
        encode: Texts → normalised vectors (the model before tuning).
        keep: Most neighbours kept per article (a batch needs fewer).

    Returns:
        Article id → up to ``keep`` other article ids (only articles with texts).
    """
    groups = [(a.id, _article_texts(a)[:_TOPIC_TEXTS_PER_ARTICLE]) for a in articles]
    groups = [(article_id, texts) for article_id, texts in groups if texts]
    texts = [text for _, group in groups for text in group]
    if not texts:
        return {}
    vectors = np.asarray(encode(texts), dtype=np.float32)
    bounds = np.cumsum([0] + [len(group) for _, group in groups])
    centres = np.stack([vectors[a:b].mean(axis=0) for a, b in itertools.pairwise(bounds)])
    centres /= np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
    ids = [article_id for article_id, _ in groups]
    count = min(keep, len(ids) - 1)
    result: dict[str, list[str]] = {article_id: [] for article_id in ids}
    if count < 1:
        return result
    for start in range(0, len(ids), 1024):  # rows in chunks: 10,000 articles stay small
        similarity = centres[start : start + 1024] @ centres.T
        for offset, row in enumerate(similarity):
            position = start + offset
            row[position] = -np.inf
            nearest = np.argpartition(-row, count - 1)[:count]
            ranked = nearest[np.lexsort((nearest, -row[nearest]))]  # nearest first, then id
            result[ids[position]] = [ids[j] for j in ranked]
    return result


def tune_encoder(
    articles: Sequence[Article],
    source_dir: Path,
    target_dir: Path,
    config: TuneConfig,
    *,
    budget_seconds: float | None = None,
    rebuild_texts: int = 0,
    progress: bool = False,
    on_step: StepCallback | None = None,
) -> TuneResult:
    """Fine-tune a sentence-transformers model on the articles and save it.

    Args:
        articles: The knowledge base.
        source_dir: The model to start from (a sentence-transformers folder).
        target_dir: Where to save the tuned model (created; must not exist).
        config: The settings.
        budget_seconds: Time budget for training and the rebuild that follows (default:
            ``config.max_minutes``).
        rebuild_texts: How many texts the rebuild will encode: training stops early
            enough to leave time for them, estimated from the measured time per step
            (so a busy machine reserves more).
        progress: Show a progress bar with the time left.
        on_step: Called after every step with ``(step, planned steps, loss)``; an
            exception it raises stops training and propagates (nothing is saved).

    Returns:
        The figures.

    Raises:
        TuningError: If the articles give nothing to learn from.
        EncoderUnavailableError: If torch or sentence-transformers cannot be loaded.
    """
    started = time.perf_counter()
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import torch
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.sentence_transformer.losses import (
            CosineSimilarityLoss,
            MultipleNegativesRankingLoss,
        )
        from transformers import get_linear_schedule_with_warmup
    except ImportError as exc:
        raise EncoderUnavailableError(
            f"tuning needs {exc.name or 'sentence-transformers'}: install the project's "
            "dependencies (pip install -e .)"
        ) from exc

    pairs = training_pairs(
        articles,
        loss=config.loss,
        seed=config.seed,
        max_pairs=config.max_pairs,
        per_text=config.pairs_per_text,
    )
    distinct = config.loss == "mnrl"
    if not pairs or (distinct and len({pair[2] for pair in pairs}) < 2):
        # No pairs, or in-batch negatives with one article: nothing to contrast.
        raise TuningError(
            "nothing to tune on: articles need alternate questions (at least two articles "
            "with a title and one question each); the live index was left unchanged"
        )
    torch.manual_seed(config.seed)
    torch.set_num_threads(max(1, config.threads))
    try:
        model = SentenceTransformer(str(source_dir), device="cpu")
    except Exception as exc:  # library errors vary by version; all mean "unusable"
        raise EncoderUnavailableError(f"cannot load the model from {source_dir}: {exc}") from exc
    neighbours = None
    if config.batching == "topic" and config.loss == "mnrl":
        neighbours = article_neighbours(
            articles,
            lambda texts: model.encode(texts, batch_size=64, normalize_embeddings=True),
        )
    rng = random.Random(config.seed)
    epochs = [
        _batches(pairs, config.batch_size, distinct=distinct, rng=rng, neighbours=neighbours)
        for _ in range(max(1, config.epochs))
    ]
    planned = sum(len(batches) for batches in epochs)
    prepare = getattr(model, "preprocess", None) or model.tokenize  # renamed in 5.x
    saved_length = model.max_seq_length
    model.max_seq_length = min(int(saved_length or config.max_length), config.max_length)
    loss_module: Any = (
        MultipleNegativesRankingLoss(model)
        if config.loss == "mnrl"
        else CosineSimilarityLoss(model)
    )
    trainable = _freeze_lower_layers(model, config.freeze_layers)
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(planned * config.warmup_ratio), planned
    )
    budget = config.max_minutes * 60.0 if budget_seconds is None else budget_seconds
    losses: list[float] = []
    stopped = False
    bar, task = _progress_bar(progress, planned)
    model.train()
    try:
        step = 0
        training_started = time.perf_counter()  # the time per step leaves loading out
        for batches in epochs:
            for batch in batches:
                now = time.perf_counter()
                elapsed = now - started
                per_step = (now - training_started) / step if step else 0.0
                reserve = _rebuild_seconds(rebuild_texts, per_step, config.batch_size)
                if step and elapsed + per_step + reserve > budget:
                    stopped = True
                    break
                features = [
                    prepare([pair[0] for pair in batch]),
                    prepare([pair[1] for pair in batch]),
                ]
                labels = torch.tensor([pair[3] for pair in batch], dtype=torch.float32)
                value = loss_module(features, labels)
                value.backward()
                torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
                step += 1
                losses.append(float(value.detach()))
                if bar is not None:
                    bar.update(task, advance=1, description=f"Tuning (loss {losses[-1]:.3f})")
                if on_step is not None:
                    on_step(step, planned, losses[-1])
            if stopped:
                break
    finally:
        if bar is not None:
            bar.stop()
    model.eval()
    model.max_seq_length = saved_length
    target_dir = Path(target_dir)
    target_dir.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(target_dir))
    tenth = max(1, len(losses) // 10)
    result = TuneResult(
        model_dir=target_dir,
        pairs=len(pairs),
        steps=len(losses),
        planned_steps=planned,
        seconds=time.perf_counter() - started,
        stopped_by_budget=stopped,
        first_loss=round(sum(losses[:tenth]) / tenth, 4),
        last_loss=round(sum(losses[-tenth:]) / tenth, 4),
        dimension=_dimension(model),
    )
    logger.info(
        "Tuned %s on %d pairs: %d of %d steps in %.1fs (loss %.3f -> %.3f)%s",
        source_dir,
        result.pairs,
        result.steps,
        planned,
        result.seconds,
        result.first_loss,
        result.last_loss,
        " (stopped by the time budget)" if stopped else "",
    )
    return result


def _freeze_lower_layers(model: Any, layers: int) -> list[Any]:
    """Freeze the token embeddings and the lowest ``layers`` layers; return what still trains.

    Raises:
        TuningError: If the model has fewer layers, or no layer stack this knows (BERT,
            MPNet and their kin keep it at ``encoder.layer``).
    """
    if layers <= 0:
        return [p for p in model.parameters() if p.requires_grad]
    transformer = getattr(model[0], "auto_model", None)
    stack = getattr(getattr(transformer, "encoder", None), "layer", None)
    embeddings = getattr(transformer, "embeddings", None)
    if stack is None or embeddings is None:
        raise TuningError("cannot freeze layers of this model: no encoder.layer stack found")
    if layers > len(stack):
        raise TuningError(f"cannot freeze {layers} layers: the model has {len(stack)}")
    for module in [embeddings, *stack[:layers]]:
        for parameter in module.parameters():
            parameter.requires_grad_(False)
    return [p for p in model.parameters() if p.requires_grad]


def _dimension(model: Any) -> int:
    for method in ("get_embedding_dimension", "get_sentence_embedding_dimension"):
        getter = getattr(model, method, None)
        if getter is not None:
            return int(getter())
    return EMBEDDING_DIMENSION


def _progress_bar(show: bool, total: int) -> tuple[Any, Any]:
    if not show:
        return None, None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        "eta",
        TimeRemainingColumn(),
        transient=False,
    )
    bar.start()
    return bar, bar.add_task("Tuning", total=total)


def tuned_encoder(
    model_dir: Path, name: str, *, dimension: int = EMBEDDING_DIMENSION, threads: int = 1
) -> SentenceTransformerEncoder:
    """The torch encoder for a tuned model folder, under its tuned name."""
    return SentenceTransformerEncoder(
        Path(model_dir), name=name, dimension=dimension, threads=threads, batch_size=64
    )


def _tuned_name(base: str, fingerprint: str) -> str:
    """``<base model>+tuned-<12 hex of the tuned weights>``; the base stays readable."""
    base = base.split(_TUNED_MARK, 1)[0]
    return f"{base}{_TUNED_MARK}{fingerprint[:12]}"


def _folder_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.+" else "_" for c in name)


_ENCODE_SHARE = 0.3  # encoding a text costs ~0.18 of a training pass over it (measured)


def _rebuild_texts(articles: Sequence[Article]) -> int:
    """About how many texts a build encodes (title, questions, a passage per 400 chars)."""
    return sum(2 + len(a.questions) + len(a.body) // 400 for a in articles)


def _rebuild_seconds(texts: int, per_step: float, batch_size: int) -> float:
    """The rebuild's time, from the time a training step takes (2 x batch texts, fwd+bwd)."""
    return _ENCODE_SHARE * texts * per_step / (2 * max(1, batch_size))


def tune_and_publish(
    articles_dir: Path | Sequence[Article],
    root: Path,
    config: TuneConfig,
    *,
    source_dir: Path | None = None,
    base_name: str = EMBEDDING_MODEL_NAME,
    head: HeadSetting = LIVE_SETTING,
    progress: bool = False,
    on_step: StepCallback | None = None,
    val_questions: Sequence[tuple[str, str]] = (),
    export: Callable[..., Any] | None = None,
    lexical: LexicalSetting = LIVE_SETTING,
    publisher: TunedPublisher | None = None,
) -> TunePublishResult:
    """Tune the encoder on the articles, rebuild the index with it and publish it.

    Args:
        articles_dir: The articles folder (or the articles themselves, e.g. in benchmarks).
        root: The index root (``builds/``, ``current``, ``encoders/``).
        config: Training settings and caps.
        source_dir: The model to start from (default: the packaged all-MiniLM-L6-v2;
            tuning always starts from it, not from an earlier tune, so tunes do not drift).
        base_name: The source model's name.
        head: The classifier head for the rebuilt index (as ``kb build``; default: as
            the live build has it, see :func:`knowledge.store.head_for_next_build`).
        progress: Show progress bars.
        on_step: Called after every training step (see :func:`tune_encoder`).
        val_questions: ``(question, expected article id)`` pairs; top-1 before and after
            is reported.
        export: The ONNX export function (default:
            :func:`knowledge.onnx_encoder.export_onnx_encoder`; tests pass a tiny one).
        lexical: BM25 re-ranking for the rebuilt index (default: as the live build has
            it; see :func:`knowledge.store.publish_articles`).
        publisher: Builds and publishes with the tuned model instead of this function
            (default: build from ``articles_dir`` and swap it in). A deployment whose
            articles are edited while the tune runs passes one that publishes the
            articles live *then*, under its own publish lock, so that a tune of minutes
            never puts back an older text or a retired article.

    Returns:
        What was done.

    Raises:
        ArticleError: If an article is invalid.
        TuningError: If there is nothing to learn from, or the tune was interrupted
            (:class:`TuneInterruptedError`); the live index is unchanged.
        EncoderUnavailableError: If the model cannot be loaded or exported.
    """
    started = time.perf_counter()
    root = Path(root)
    live = current_manifest(root)
    lexical = lexical_for_next_build(live, lexical)
    head = head_for_next_build(live, head)
    if isinstance(articles_dir, (str, Path)):
        articles = load_articles(Path(articles_dir))
    else:
        articles = list(articles_dir)
    source = Path(source_dir) if source_dir is not None else packaged_model_path()
    encoders = root / ENCODERS_DIR
    encoders.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(encoders)
    work = encoders / f"{_TEMP_PREFIX}{uuid.uuid4().hex}"
    budget = config.max_minutes * 60.0 - _EXPORT_RESERVE_SECONDS
    try:
        tune = tune_encoder(
            articles,
            source,
            work / MODEL_SUBDIR,
            config,
            budget_seconds=max(30.0, budget),
            rebuild_texts=_rebuild_texts(articles),
            progress=progress,
            on_step=on_step,
        )
        from knowledge.onnx_encoder import export_onnx_encoder, source_fingerprint

        name = _tuned_name(base_name, source_fingerprint(work / MODEL_SUBDIR))
        _write_tune_record(work / TUNE_RECORD_FILE, name, base_name, config, tune, articles)
        export_started = time.perf_counter()
        (export or export_onnx_encoder)(
            work / MODEL_SUBDIR, work / QUERY_ENCODER_SUBDIR, name=name, dimension=tune.dimension
        )
        export_seconds = time.perf_counter() - export_started
        final = encoders / _folder_name(name)
        if final.exists():  # the same weights again (same articles, settings, seed)
            shutil.rmtree(work)
        else:
            os.rename(work, final)
        os.utime(final)  # made now: another tune's clean-up leaves it alone (_prune_encoders)
    except KeyboardInterrupt as exc:
        shutil.rmtree(work, ignore_errors=True)
        raise TuneInterruptedError("the tune was interrupted; the live index is unchanged") from exc
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    tuned = TunedEncoder(
        name, final, f"{ENCODERS_DIR}/{final.name}", tune.dimension, config.threads
    )
    build_started = time.perf_counter()
    before = None
    previous = current_build(root)
    if val_questions and previous is not None:
        try:
            before = _top1(KnowledgeIndex.load(previous), val_questions)
        except Exception:  # an old or broken build only loses the comparison
            logger.warning("Could not load the previous build %s for comparison", previous)
    _check_export(tuned)
    if publisher is not None:
        build = publisher(tuned, head, lexical)
    else:
        build = publish(_tuned_build(tuned, articles, head, lexical, progress=progress), root)
    build_seconds = time.perf_counter() - build_started
    after = _top1(KnowledgeIndex.load(build), val_questions) if val_questions else None
    _prune_encoders(root)
    return TunePublishResult(
        name=name,
        encoder_dir=final,
        build_dir=build,
        manifest=read_manifest(build),
        tune=tune,
        seconds=time.perf_counter() - started,
        export_seconds=export_seconds,
        build_seconds=build_seconds,
        val_top1=after,
        val_top1_before=before,
    )


def _check_export(tuned: TunedEncoder) -> None:
    """Refuse to publish when the ONNX query encoder was not exported from the tuned model."""
    from knowledge.onnx_encoder import read_onnx_manifest, source_fingerprint

    try:
        exported = read_onnx_manifest(tuned.query_encoder_dir).source_sha256
        matches = exported == source_fingerprint(tuned.folder / MODEL_SUBDIR)
    except EncoderUnavailableError:
        matches = False
    if not matches:
        raise TuningError(
            f"the ONNX export in {tuned.query_encoder_dir} does not match the tuned "
            "model; nothing was published"
        )


def _tuned_build(
    tuned: TunedEncoder,
    articles: Sequence[Article],
    head: HeadConfig | None,
    lexical: LexicalConfig | None,
    *,
    progress: bool,
) -> KnowledgeIndex:
    """The index of ``articles`` encoded with the tuned model, carrying its query encoder."""
    index = KnowledgeIndex.build(
        articles,
        tuned.encoder(),
        progress=progress,
        query_encoder_dir=tuned.query_encoder_dir,
        head=head,
        encoder_dir=tuned.encoder_dir,
        lexical=lexical,
    )
    if index.manifest.query_encoder is None:
        raise TuningError(
            f"the ONNX export in {tuned.query_encoder_dir} does not match the tuned "
            "model; nothing was published"
        )
    return index


def _write_tune_record(
    path: Path,
    name: str,
    base_name: str,
    config: TuneConfig,
    tune: TuneResult,
    articles: Sequence[Article],
) -> None:
    """Write how an encoder was tuned beside it (``tune.json``; read by people and tools).

    ``articles`` records, per article, a hash of the title and questions it learned from
    (:func:`tune_drift` compares the live articles with them).
    """
    record = {
        "name": name,
        "base_model": base_name,
        "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "config": dataclasses.asdict(config),
        "result": {
            "pairs": tune.pairs,
            "steps": tune.steps,
            "planned_steps": tune.planned_steps,
            "stopped_by_budget": tune.stopped_by_budget,
            "seconds": round(tune.seconds, 1),
            "first_loss": round(tune.first_loss, 4),
            "last_loss": round(tune.last_loss, 4),
        },
        "articles": _article_fingerprints(articles),
    }
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _top1(index: KnowledgeIndex, questions: Sequence[tuple[str, str]]) -> float:
    right = 0
    for question, expected in questions:
        hits = index.search(question, limit=1)
        right += bool(hits) and hits[0].article_id == expected
    return round(right / max(1, len(questions)), 4)


def _remove_stale_temps(encoders: Path) -> None:
    now = time.time()
    for temp in encoders.glob(f"{_TEMP_PREFIX}*"):
        try:
            stale = now - temp.stat().st_mtime > _STALE_TEMP_SECONDS
        except OSError:
            continue
        if stale:
            logger.info("Removing abandoned temporary tune %s", temp.name)
            shutil.rmtree(temp, ignore_errors=True)


def _prune_encoders(root: Path) -> None:
    """Remove tuned encoders no kept build names (the live one is always kept).

    An encoder made within the last hour is kept too: another tune may have just made it
    and still be building or publishing with it.
    """
    used = set()
    for build in list_builds(root):
        try:
            manifest = read_manifest(build)
        except Exception:  # an unreadable build keeps nothing alive
            continue
        if manifest.encoder_dir:
            used.add(Path(manifest.encoder_dir).name)
    now = time.time()
    for folder in (Path(root) / ENCODERS_DIR).iterdir():
        if not folder.is_dir() or folder.name.startswith(".") or folder.name in used:
            continue
        try:
            recent = now - folder.stat().st_mtime < _STALE_TEMP_SECONDS
        except OSError:  # removed meanwhile
            continue
        if not recent:
            logger.info("Removing tuned encoder %s (no kept build uses it)", folder.name)
            shutil.rmtree(folder, ignore_errors=True)


def planned_steps(pairs: int, config: TuneConfig) -> int:
    """Steps the settings ask for with ``pairs`` pairs (before the time budget)."""
    return max(1, config.epochs) * math.ceil(min(pairs, config.max_pairs) / config.batch_size)


def pairs_by_article(pairs: Sequence[tuple[str, str, str, float]]) -> dict[str, int]:
    """How many pairs each article contributes (for reports)."""
    counts: dict[str, int] = defaultdict(int)
    for pair in pairs:
        counts[pair[2]] += 1
    return dict(counts)
