"""Retrieval levers, one at a time, on Banking77 and CLINC150, through the bot's own code.

Every variant is a real ``KnowledgeIndex`` built with the torch MiniLM (as ``kb build``
does) and searched with the ONNX int8 query encoder (as the action server does), each
question decided by ``knowledge.answering.answer_question``. Texts are encoded once per
run and memoised (the index code is unchanged; only repeated encodings are skipped).

Levers, each against the baseline (title + alternate questions + passages, nearest
neighbour, cosine thresholds):

- ``no_passages``: titles and alternate questions only;
- ``head_rerank``: a logistic-regression head per knowledge base (``knowledge.head``),
  articles ordered by the blend of cosine and probability, thresholds still on cosine;
- ``head_blend``: the same head, the blend as the score (answer threshold chosen on val);
- ``margin``: answer only when the first article's score beats the second's by a margin
  (chosen on val), on the baseline's hits;
- ``bm25``: BM25 scores (bm25s, ``knowledge.lexical``) added to the ranking, weight chosen
  on val, thresholds still on cosine;
- ``head_bm25``: the head (rerank) and BM25 together;
- ``out_of_scope`` (CLINC150 only): the head (rerank) with an out-of-scope article
  (``knowledge.articles.OUT_OF_SCOPE_TAG``) whose alternate questions are K of the data
  set's ``oos_train`` questions; a question it ranks first finds nothing.

Tuning uses train (articles) and val only: CLINC150's val split, and for Banking77 the
last 10 % of each category's training rows (articles for val exclude them; articles for
test use the whole training set, as ``bench.banking77_routing`` does). The head's and
BM25's weights are chosen once for all settings (best mean val top-1). Test is reported
once per run.

Usage:
    python -m bench.levers [--query-encoder onnx|torch] [--levers baseline,bm25,...]
                           [--base-model all-mpnet-base-v2]
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from bench.common import (
    BaseModel,
    add_base_model_argument,
    datasets_dir,
    emit,
    query_encoder_export,
)
from bench.retrieval import Ranked, article_id_for, intent_articles, sweep, top_k_accuracy
from bot.config import get_settings
from knowledge.answering import AnswerPolicy, answer_question
from knowledge.articles import MAX_QUESTION_CHARS, OUT_OF_SCOPE_TAG, Article
from knowledge.encoder import Encoder
from knowledge.head import HeadConfig
from knowledge.index import KnowledgeIndex
from knowledge.lexical import LexicalConfig
from knowledge.onnx_encoder import OnnxEncoder

Query = tuple[str, str | None]
HEAD_WEIGHTS = (0.3, 0.5, 0.7)
LEXICAL_WEIGHTS = (0.05, 0.1, 0.2, 0.3)
LEVERS = (
    "baseline",
    "no_passages",
    "head_rerank",
    "head_blend",
    "bm25",
    "head_bm25",
    "out_of_scope",
)
MARGINS = (0.0, 0.01, 0.02, 0.03, 0.05, 0.08)


class CachedEncoder:
    """Memoises another encoder's vectors (same name and dimension, same vectors)."""

    def __init__(self, inner: Encoder, *, batch: int = 64) -> None:
        self.inner = inner
        self.batch = batch
        self.name = inner.name
        self.dimension = inner.dimension
        self._cache: dict[str, np.ndarray] = {}

    def prime(self, texts: Sequence[str]) -> None:
        """Encode the texts not seen yet, in batches of similar length (a fixed order)."""
        todo = sorted({t for t in texts if t not in self._cache}, key=lambda t: (len(t), t))
        for start in range(0, len(todo), self.batch):
            chunk = todo[start : start + self.batch]
            for text, vector in zip(chunk, self.inner.encode(chunk), strict=True):
                self._cache[text] = vector

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Return the memoised vectors, encoding unseen texts first."""
        self.prime(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self._cache[text] for text in texts])


class Setting:
    """One data set at one K: articles for val and for test, and the questions.

    ``with_out_of_scope``: the (val and test) articles plus an out-of-scope article made
    from the data set's own out-of-scope training questions, when it has them.
    """

    def __init__(
        self,
        name: str,
        val_articles: list[Article],
        test_articles: list[Article],
        val: list[Query],
        test: list[Query],
        *,
        with_out_of_scope: list[Article] | None = None,
    ) -> None:
        self.name, self.val, self.test = name, val, test
        self.val_articles, self.test_articles = val_articles, test_articles
        self.with_out_of_scope = with_out_of_scope
        self.has_oos = any(expected is None for _, expected in test)


def _banking77(k: int | None) -> Setting:
    def rows(name: str) -> list[tuple[str, str]]:
        path = datasets_dir() / "banking77" / name
        with path.open(newline="", encoding="utf-8") as handle:
            return [(row["text"], row["category"]) for row in csv.DictReader(handle)]

    train, test = rows("train.csv"), rows("test.csv")
    # Articles refuse alternate questions over MAX_QUESTION_CHARS (a handful of rows).
    train = [(text, category) for text, category in train if len(text) <= MAX_QUESTION_CHARS]
    by_category: dict[str, list[int]] = defaultdict(list)
    for number, (_, category) in enumerate(train):
        by_category[category].append(number)
    held = {n for numbers in by_category.values() for n in numbers[-max(1, len(numbers) // 10) :]}
    fit = [row for number, row in enumerate(train) if number not in held]
    val: list[Query] = [
        (text, article_id_for(category)) for n, (text, category) in enumerate(train) if n in held
    ]
    return Setting(
        f"banking77_k{k or 'all'}",
        intent_articles(fit, k, source="banking77"),
        intent_articles(train, k, source="banking77"),
        val,
        [(text, article_id_for(category)) for text, category in test],
    )


def _clinc150(k: int | None, *, out_of_scope: bool = False) -> Setting:
    """CLINC150 at K examples per intent.

    With ``out_of_scope``, the knowledge base also gets an out-of-scope article
    (``knowledge.articles.OUT_OF_SCOPE_TAG``) whose alternate questions are K of the
    ``oos_train`` questions, as Rasa's ``out_of_scope`` intent would: val and test's
    out-of-scope questions stay unseen.
    """
    data = json.loads((datasets_dir() / "clinc150" / "data_full.json").read_text())
    articles = intent_articles(data["train"], k, source="clinc150")
    rows = [(text, "out_of_scope") for text, _ in data["oos_train"]]
    (declined,) = intent_articles(rows, k, source="clinc150")
    with_declined = [*articles, declined.model_copy(update={"tags": [OUT_OF_SCOPE_TAG]})]
    with_declined.sort(key=lambda article: article.id)
    if out_of_scope:
        articles = with_declined

    def queries(split: str) -> list[Query]:
        in_scope: list[Query] = [(t, article_id_for(i)) for t, i in data[split]]
        return in_scope + [(t, None) for t, _ in data[f"oos_{split}"]]

    name = f"clinc150_k{k or 'all'}" + ("_oos" if out_of_scope else "")
    return Setting(
        name, articles, articles, queries("val"), queries("test"), with_out_of_scope=with_declined
    )


def _rank(index: KnowledgeIndex, queries: Sequence[Query], policy: AnswerPolicy) -> list[Ranked]:
    ranked = []
    for text, expected in queries:
        hits = answer_question(index, text, segment=None, policy=policy).hits
        ranked.append(
            Ranked(expected, tuple(h.article_id for h in hits), tuple(h.score for h in hits))
        )
    return ranked


def _answered(ranked: Sequence[Ranked], threshold: float, margin: float = 0.0) -> list[bool]:
    def answers(r: Ranked) -> bool:
        second = r.scores[1] if len(r.scores) > 1 else -1.0
        return bool(r.ids) and r.top_score >= threshold and r.top_score - second >= margin

    return [answers(r) for r in ranked]


def _in_scope_and_oos(
    ranked: Sequence[Ranked], threshold: float, margin: float = 0.0
) -> tuple[float, float]:
    answered = _answered(ranked, threshold, margin)
    inside = [(r, a) for r, a in zip(ranked, answered, strict=True) if r.expected is not None]
    outside = [a for r, a in zip(ranked, answered, strict=True) if r.expected is None]
    accuracy = sum(a and r.ids[0] == r.expected for r, a in inside) / max(1, len(inside))
    recall = sum(not a for a in outside) / max(1, len(outside))
    return accuracy, recall


def _tune_threshold(ranked: Sequence[Ranked], margin: float = 0.0) -> float:
    return max(sweep(), key=lambda t: sum(_in_scope_and_oos(ranked, t, margin)))


def _floor_threshold(ranked: Sequence[Ranked], min_oos_recall: float) -> float:
    """The threshold with the best in-scope accuracy whose out-of-scope recall reaches a floor.

    An operator's rule ("hand off at least this share of out-of-scope questions, then
    answer as many as possible"), applied to val. When no threshold reaches the floor,
    the one with the highest recall.
    """
    figures = {t: _in_scope_and_oos(ranked, t) for t in sweep()}
    reaching = [t for t, (_, recall) in figures.items() if recall >= min_oos_recall]
    if not reaching:
        return max(figures, key=lambda t: (figures[t][1], -t))
    return max(reaching, key=lambda t: (figures[t][0], -t))


def _figures(ranked: list[Ranked], threshold: float, margin: float = 0.0) -> dict[str, float]:
    figures = {"top1": top_k_accuracy(ranked, 1), "recall_at_3": top_k_accuracy(ranked, 3)}
    if any(r.expected is None for r in ranked):
        accuracy, recall = _in_scope_and_oos(ranked, threshold, margin)
        figures.update(
            {"threshold": threshold, "in_scope_accuracy": accuracy, "oos_recall": recall}
        )
    return {key: round(value, 4) for key, value in figures.items()}


def _top1(index: KnowledgeIndex, queries: Sequence[Query], policy: AnswerPolicy) -> float:
    return top_k_accuracy(_rank(index, queries, policy), 1)


def _best(scores: dict[float, list[float]], default: float) -> float:
    """The weight with the best mean val top-1 (``default`` when nothing was measured)."""
    if not scores:
        return default
    return max(scores, key=lambda w: float(np.mean(scores[w])))


def _built(
    articles: list[Article],
    builder: Encoder,
    query_encoder: Encoder,
    tmp: Path,
    *,
    head: HeadConfig | None = None,
    lexical: LexicalConfig | None = None,
    passages: bool = True,
) -> KnowledgeIndex:
    """Build with the torch model, then load it back with the query encoder (as deployed)."""
    index = KnowledgeIndex.build(articles, builder, head=head, lexical=lexical, passages=passages)
    folder = Path(tempfile.mkdtemp(dir=tmp))
    index.save(folder)
    return KnowledgeIndex.load(folder, query_encoder)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its JSON line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--query-encoder", choices=("onnx", "torch"), default="onnx")
    add_base_model_argument(parser)
    parser.add_argument(
        "--levers",
        default=",".join(LEVERS),
        help=f"comma-separated, from {', '.join(LEVERS)} (baseline always runs)",
    )
    args = parser.parse_args(argv)
    chosen = {"baseline", *args.levers.split(",")}
    if unknown := chosen - set(LEVERS):
        parser.error(f"unknown levers: {', '.join(sorted(unknown))}")
    needs_head = bool(chosen & {"head_rerank", "head_blend", "head_bm25", "out_of_scope"})
    needs_lexical = bool(chosen & {"bm25", "head_bm25"})
    settings = get_settings()
    bot_threshold = settings.kb_answer_threshold
    policy = AnswerPolicy(
        answer_threshold=bot_threshold, suggest_threshold=settings.kb_suggest_threshold, limit=3
    )
    started = time.monotonic()

    base = BaseModel(args.base_model)
    torch_model = base.encoder(threads=2, batch_size=64)
    builder = CachedEncoder(torch_model)
    result: dict[str, object] = {
        "benchmark": "levers",
        "query_encoder": args.query_encoder,
        "base_model": base.name,
    }
    with tempfile.TemporaryDirectory(prefix="concierge-levers-") as tmp_name:
        tmp = Path(tmp_name)
        querier = builder
        if args.query_encoder == "onnx":
            export, _ = query_encoder_export(
                tmp, base.path, name=base.name, dimension=base.dimension
            )
            # One question per call, as the action server encodes them: int8 dynamic
            # quantisation scales activations per call, so batch-mates would shift vectors.
            querier = CachedEncoder(OnnxEncoder(export), batch=1)
        setups = [_banking77(10), _banking77(None), _clinc150(10), _clinc150(None)]

        # Val: the weights are chosen once across all settings (mean val top-1).
        head_val: dict[float, list[float]] = defaultdict(list)
        lexical_val: dict[float, list[float]] = defaultdict(list)
        both_val: dict[float, list[float]] = defaultdict(list)
        head_indexes: dict[str, KnowledgeIndex] = {}
        for setup in setups:
            querier.prime([q for q, _ in setup.val + setup.test])
            if needs_head:
                head_index = _built(
                    setup.val_articles,
                    builder,
                    querier,
                    tmp,
                    head=HeadConfig(),
                    lexical=LexicalConfig(weight=0.0) if needs_lexical else None,
                )
                head_indexes[setup.name] = head_index
                for weight in HEAD_WEIGHTS:
                    reweighted = head_index.with_ranking(head=HeadConfig(weight=weight))
                    head_val[weight].append(_top1(reweighted, setup.val, policy))
            if needs_lexical:
                lexical_index = _built(
                    setup.val_articles, builder, querier, tmp, lexical=LexicalConfig()
                )
                for beta in LEXICAL_WEIGHTS:
                    reweighted = lexical_index.with_ranking(lexical=LexicalConfig(weight=beta))
                    lexical_val[beta].append(_top1(reweighted, setup.val, policy))
        weight = _best(head_val, HEAD_WEIGHTS[-1])
        beta = _best(lexical_val, LEXICAL_WEIGHTS[0])
        if "head_bm25" in chosen:
            for setup in setups:
                for candidate in LEXICAL_WEIGHTS:
                    reweighted = head_indexes[setup.name].with_ranking(
                        head=HeadConfig(weight=weight), lexical=LexicalConfig(weight=candidate)
                    )
                    both_val[candidate].append(_top1(reweighted, setup.val, policy))
        both_beta = _best(both_val, LEXICAL_WEIGHTS[0])
        for name, scores in (("head", head_val), ("bm25", lexical_val), ("head_bm25", both_val)):
            if scores:
                result[f"{name}_weight_val_top1"] = {
                    str(w): round(float(np.mean(v)), 4) for w, v in scores.items()
                }
        result.update({"head_weight": weight, "bm25_weight": beta, "head_bm25_weight": both_beta})

        for setup in setups:
            variants: dict[str, Callable[[list[Article]], KnowledgeIndex]] = {
                "baseline": lambda a: _built(a, builder, querier, tmp),
                "no_passages": lambda a: _built(a, builder, querier, tmp, passages=False),
                "head_rerank": lambda a: _built(
                    a, builder, querier, tmp, head=HeadConfig(weight=weight)
                ),
                "head_blend": lambda a: _built(
                    a, builder, querier, tmp, head=HeadConfig(weight=weight, mode="blend")
                ),
                "bm25": lambda a: _built(
                    a, builder, querier, tmp, lexical=LexicalConfig(weight=beta)
                ),
                "head_bm25": lambda a: _built(
                    a,
                    builder,
                    querier,
                    tmp,
                    head=HeadConfig(weight=weight),
                    lexical=LexicalConfig(weight=both_beta),
                ),
            }
            with_declined: list[Article] = setup.with_out_of_scope or []
            if with_declined:

                def declining(
                    _: list[Article], articles: list[Article] = with_declined
                ) -> KnowledgeIndex:
                    return _built(articles, builder, querier, tmp, head=HeadConfig(weight=weight))

                variants["out_of_scope"] = declining
            variants = {name: make for name, make in variants.items() if name in chosen}
            same_articles = setup.val_articles is setup.test_articles
            for name, make in variants.items():
                val_index = make(setup.val_articles)
                test_index = val_index if same_articles else make(setup.test_articles)
                val_ranked = _rank(val_index, setup.val, policy)
                test_ranked = _rank(test_index, setup.test, policy)
                threshold = bot_threshold
                if setup.has_oos and name == "head_blend":  # a new score scale: tune on val
                    threshold = _tune_threshold(val_ranked)
                entry = {
                    "val_top1": round(top_k_accuracy(val_ranked, 1), 4),
                    **_figures(test_ranked, threshold),
                }
                if setup.has_oos:
                    tuned = _tune_threshold(val_ranked)
                    entry["val_tuned_threshold"] = tuned
                    accuracy, recall = _in_scope_and_oos(test_ranked, tuned)
                    entry["in_scope_accuracy_at_val_tuned"] = round(accuracy, 4)
                    entry["oos_recall_at_val_tuned"] = round(recall, 4)
                result[f"{setup.name}.{name}"] = entry
                if name == "baseline" and setup.has_oos:
                    margin = max(
                        MARGINS, key=lambda m: sum(_in_scope_and_oos(val_ranked, bot_threshold, m))
                    )
                    result[f"{setup.name}.margin"] = {
                        "margin": margin,
                        **_figures(test_ranked, bot_threshold, margin),
                    }
    result["seconds"] = round(time.monotonic() - started)
    emit(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
