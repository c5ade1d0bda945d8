"""Banking77 as FAQ routing through the real ``KnowledgeIndex`` and MiniLM encoder.

Each of the 77 categories becomes one article whose alternate questions are K training
queries (K = 10 and K = all); every test query is retrieved and scored. Compare with the
published intent classifiers in shared/datasets/README.md (they are trained models; this is
retrieval with no training at all).

Usage:
    python -m bench.banking77_routing [--k 10 --k 0]   # 0 means all training queries
"""

from __future__ import annotations

import argparse
import csv
import time

from bench.common import datasets_dir, emit
from bench.retrieval import article_id_for, intent_articles, rank_all, top_k_accuracy
from knowledge.encoder import default_encoder
from knowledge.index import KnowledgeIndex


def _rows(name: str) -> list[tuple[str, str]]:
    with (datasets_dir() / "banking77" / name).open(newline="", encoding="utf-8") as handle:
        return [(row["text"], row["category"]) for row in csv.DictReader(handle)]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its JSON line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--k", type=int, action="append", help="queries per category; 0 = all")
    args = parser.parse_args(argv)
    train, test = _rows("train.csv"), _rows("test.csv")
    queries: list[tuple[str, str | None]] = [(t, article_id_for(c)) for t, c in test]
    result: dict[str, object] = {"benchmark": "banking77_routing", "test_queries": len(test)}
    for k in args.k or [10, 0]:
        label = "all" if k == 0 else str(k)
        started = time.monotonic()
        articles = intent_articles(train, k or None, source="banking77")
        index = KnowledgeIndex.build(articles, default_encoder(), progress=True)
        ranked = rank_all(index, queries, limit=3)
        result[f"k{label}_top1"] = round(top_k_accuracy(ranked, 1), 4)
        result[f"k{label}_recall_at_3"] = round(top_k_accuracy(ranked, 3), 4)
        result[f"k{label}_seconds"] = round(time.monotonic() - started, 1)
    emit(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
