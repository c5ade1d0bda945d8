"""Choose the knowledge-search thresholds on CLINC150 (val), report them on CLINC150 (test).

Each of the 150 intents becomes one article whose alternate questions are K training
queries; every val/test query is then retrieved through the real ``KnowledgeIndex`` with
the packaged MiniLM encoder. Tuning uses only train (articles) and val (thresholds).

- answer threshold: maximises in-scope accuracy + out-of-scope recall on val (equal weight).
- suggest threshold: maximises in-scope recall@3 + 0.5 × out-of-scope recall on val;
  suggestions are cheap for an out-of-scope question (the customer sees options and a
  "talk to a person" button), so missing them costs less than a wrong answer.

Usage:
    python -m bench.clinc150_threshold [--k 10]
"""

from __future__ import annotations

import argparse
import json
import time

from bench.common import datasets_dir, emit
from bench.retrieval import (
    answered_correctly,
    article_id_for,
    intent_articles,
    rank_all,
    rejected,
    suggested_correctly,
    sweep,
)
from knowledge.encoder import default_encoder
from knowledge.index import KnowledgeIndex


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its JSON line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--k", type=int, default=10, help="training queries per intent (default 10)"
    )
    args = parser.parse_args(argv)

    data = json.loads((datasets_dir() / "clinc150" / "data_full.json").read_text())
    started = time.monotonic()
    index = KnowledgeIndex.build(
        intent_articles(data["train"], args.k, source="clinc150"), default_encoder(), progress=True
    )
    build_seconds = time.monotonic() - started

    def queries(split: str, oos_split: str) -> list[tuple[str, str | None]]:
        in_scope = [(t, article_id_for(i)) for t, i in data[split]]
        return in_scope + [(t, None) for t, _ in data[oos_split]]

    val = rank_all(index, queries("val", "oos_val"))
    test = rank_all(index, queries("test", "oos_test"))

    answer = max(sweep(), key=lambda t: answered_correctly(val, t) + rejected(val, t))
    suggest = max(
        (t for t in sweep() if t <= answer),
        key=lambda t: suggested_correctly(val, t) + 0.5 * rejected(val, t),
    )
    emit(
        {
            "benchmark": "clinc150_threshold",
            "k": args.k,
            "articles": len(index.manifest.article_ids),
            "build_seconds": round(build_seconds, 1),
            "answer_threshold": answer,
            "suggest_threshold": suggest,
            "val_in_scope_accuracy": round(answered_correctly(val, answer), 4),
            "val_oos_recall": round(rejected(val, answer), 4),
            "test_in_scope_accuracy": round(answered_correctly(test, answer), 4),
            "test_oos_recall": round(rejected(test, answer), 4),
            "test_top1": round(answered_correctly(test, 0.0), 4),
            "test_recall_at_3_above_suggest": round(suggested_correctly(test, suggest), 4),
            "test_oos_recall_at_suggest": round(rejected(test, suggest), 4),
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
