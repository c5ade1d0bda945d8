"""Choose and check the content-gap grouping threshold on public paraphrase data.

Questions of one intent are paraphrases of one topic, so a set of "gap" questions drawn
from a few intents has a known right grouping. Each draw takes ``--topics`` random intents
and from each a random 1 to ``--max-per-topic`` questions (gaps come in all sizes,
singletons included), groups them exactly as the editor's page does
(:mod:`bot.content_gaps.grouping`: near-duplicate merging, the ONNX int8 query encoder,
average linkage) at every threshold of a sweep, and scores the groups against the intents
with pairwise precision (two questions put together share an intent), recall (two
questions of one intent were put together) and F0.5, which weighs precision twice: a mixed
group would hand an editor unrelated phrasings as alternate questions, a split one only
costs a second look.

The threshold is chosen on the tuning splits only (CLINC150 val, Banking77 train: best mean
F0.5 over both) and reported once on the test splits (CLINC150 test, Banking77 test), with
the adjusted Rand index beside it. It also times grouping ``--timing-questions`` questions.

Usage:
    python -m bench.content_gaps_grouping [--draws 20] [--topics 25] [--max-per-topic 8]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import tempfile
import time
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path

import numpy as np

from bench.common import datasets_dir, emit, query_encoder_export
from bot.content_gaps.grouping import (
    GROUP_THRESHOLD,
    cluster_vectors,
    embed,
    merge_near_duplicates,
)

Draw = list[tuple[str, str]]  # (question, intent)
SWEEP = [round(0.30 + 0.025 * step, 3) for step in range(21)]  # 0.30 .. 0.80


def _banking(name: str) -> Draw:
    path = datasets_dir() / "banking77" / name
    with path.open(newline="", encoding="utf-8") as handle:
        return [(row["text"], row["category"]) for row in csv.DictReader(handle)]


def _clinc(split: str) -> Draw:
    data = json.loads((datasets_dir() / "clinc150" / "data_full.json").read_text())
    return [(text, intent) for text, intent in data[split]]


def draws(rows: Draw, *, count: int, topics: int, most: int, seed: int) -> list[Draw]:
    """Random gap sets: ``topics`` intents, 1..``most`` questions of each."""
    by_intent: dict[str, list[str]] = {}
    for text, intent in rows:
        by_intent.setdefault(intent, []).append(text)
    rng = random.Random(seed)
    result: list[Draw] = []
    for _ in range(count):
        chosen = rng.sample(sorted(by_intent), topics)
        draw = [
            (text, intent)
            for intent in chosen
            for text in rng.sample(by_intent[intent], rng.randint(1, most))
        ]
        rng.shuffle(draw)
        result.append(draw)
    return result


def group(draw: Draw, vectors: dict[str, np.ndarray], threshold: float) -> list[int]:
    """The page's grouping of one draw: a group number per question."""
    texts = [text for text, _ in draw]
    phrasings = merge_near_duplicates(texts)
    matrix = np.vstack([vectors[phrasing.text] for phrasing in phrasings])
    labels = cluster_vectors(matrix, threshold=threshold)
    per_question = [-1] * len(texts)
    for phrasing, label in zip(phrasings, labels, strict=True):
        for member in phrasing.members:
            per_question[member] = label
    return per_question


def pairwise(truth: Sequence[str], predicted: Sequence[int]) -> tuple[int, int, int]:
    """Pairs together in both, together only in the prediction, only in the truth."""
    both = predicted_only = truth_only = 0
    for a, b in combinations(range(len(truth)), 2):
        same_truth = truth[a] == truth[b]
        same_predicted = predicted[a] == predicted[b] and predicted[a] >= 0
        both += same_truth and same_predicted
        predicted_only += same_predicted and not same_truth
        truth_only += same_truth and not same_predicted
    return both, predicted_only, truth_only


def score(sets: list[Draw], vectors: dict[str, np.ndarray], threshold: float) -> dict[str, float]:
    """Micro-averaged pairwise precision, recall, F1, F0.5 and mean ARI over the draws."""
    from sklearn.metrics import adjusted_rand_score

    both = predicted_only = truth_only = 0
    rand: list[float] = []
    for draw in sets:
        truth = [intent for _, intent in draw]
        predicted = group(draw, vectors, threshold)
        b, p, t = pairwise(truth, predicted)
        both, predicted_only, truth_only = both + b, predicted_only + p, truth_only + t
        rand.append(float(adjusted_rand_score(truth, predicted)))
    precision = both / (both + predicted_only) if both + predicted_only else 1.0
    recall = both / (both + truth_only) if both + truth_only else 1.0

    def f(beta: float) -> float:
        if not precision or not recall:
            return 0.0
        return (1 + beta**2) * precision * recall / (beta**2 * precision + recall)

    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f(1.0), 4),
        "f05": round(f(0.5), 4),
        "ari": round(float(np.mean(rand)), 4),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its JSON line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--draws", type=int, default=20, help="gap sets per split (20)")
    parser.add_argument("--topics", type=int, default=25, help="intents per gap set (25)")
    parser.add_argument("--max-per-topic", type=int, default=8, help="most questions each (8)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timing-questions", type=int, default=1000)
    args = parser.parse_args(argv)

    from knowledge.encoder import packaged_model_path
    from knowledge.onnx_encoder import load_onnx_encoder
    from knowledge.threads import limit_native_threads

    limit_native_threads()
    options = {"count": args.draws, "topics": args.topics, "most": args.max_per_topic}
    splits = {
        "clinc150_val": draws(_clinc("val"), seed=args.seed, **options),
        "banking77_train": draws(_banking("train.csv"), seed=args.seed, **options),
        "clinc150_test": draws(_clinc("test"), seed=args.seed + 1, **options),
        "banking77_test": draws(_banking("test.csv"), seed=args.seed + 1, **options),
    }
    with tempfile.TemporaryDirectory() as tmp:
        export, _ = query_encoder_export(Path(tmp), packaged_model_path())
        encoder = load_onnx_encoder(export)
        texts = sorted(
            {
                phrasing.text
                for sets in splits.values()
                for draw in sets
                for phrasing in merge_near_duplicates([text for text, _ in draw])
            }
        )
        started = time.perf_counter()
        vectors = dict(zip(texts, embed(encoder, texts), strict=True))
        per_text_ms = (time.perf_counter() - started) * 1000 / len(texts)

        tuning = ("clinc150_val", "banking77_train")
        sweep = {
            threshold: {name: score(splits[name], vectors, threshold) for name in tuning}
            for threshold in SWEEP
        }
        for threshold, figures in sweep.items():
            line = "  ".join(
                f"{name} P={v['precision']:.3f} R={v['recall']:.3f} F0.5={v['f05']:.3f}"
                for name, v in figures.items()
            )
            print(f"threshold {threshold:.3f}  {line}")
        chosen = max(SWEEP, key=lambda t: (np.mean([v["f05"] for v in sweep[t].values()]), -t))
        report = {
            name: score(splits[name], vectors, chosen)
            for name in ("clinc150_test", "banking77_test")
        }
        shipped = {
            name: score(splits[name], vectors, GROUP_THRESHOLD)
            for name in ("clinc150_test", "banking77_test")
        }

        # Time the page's work for N questions (Banking77 test, a realistic mix of topics).
        pool = [text for text, _ in _banking("test.csv")][: args.timing_questions]
        started = time.perf_counter()
        phrasings = merge_near_duplicates(pool)
        merged = time.perf_counter()
        matrix = embed(encoder, [phrasing.text for phrasing in phrasings])
        embedded = time.perf_counter()
        labels = cluster_vectors(matrix, threshold=GROUP_THRESHOLD)
        clustered = time.perf_counter()

    emit(
        {
            "benchmark": "content_gaps_grouping",
            "draws": args.draws,
            "topics": args.topics,
            "max_per_topic": args.max_per_topic,
            "chosen_threshold": chosen,
            "shipped_threshold": GROUP_THRESHOLD,
            "tuning_at_chosen": sweep[chosen],
            "test_at_chosen": report,
            "test_at_shipped": shipped,
            "encode_ms_per_text": round(per_text_ms, 2),
            "timing": {
                "questions": len(pool),
                "phrasings": len(phrasings),
                "groups": len(set(labels)),
                "merge_s": round(merged - started, 3),
                "embed_s": round(embedded - merged, 3),
                "cluster_s": round(clustered - embedded, 3),
            },
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
