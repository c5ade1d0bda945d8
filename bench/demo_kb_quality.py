"""Retrieval quality on the demo knowledge base, at the thresholds in the settings.

The question set (bench/data/demo_kb_questions.yml) holds at least three paraphrases per
article, written apart from the articles' own alternate questions, and 30 out-of-domain
questions.

Figures: ``top1`` and ``top3`` (right article first / in the first three), ``answered``
(right article and above the answer threshold), ``ood_wrong`` (out-of-domain questions
that get an answer instead of "I don't know", out of 30) and ``ood_suggested`` (those
that get suggestions). They are measured on the path the bot takes for a customer who
has not identified themselves (``knowledge.answering.answer_question``, the code the
action server runs: consumer and general articles first, business articles only when
they are a confident answer);
``index_top1``/``index_top3`` are the plain index's figures over all articles.

The index is built as ``kb build`` builds it, with the classifier head
(``knowledge.head.DEFAULT_HEAD``). Levers (``bench.levers`` measures them on public data):
``--head none|rerank|blend`` and ``--head-weight``; ``--no-passages`` gives only titles
and alternate questions vectors; ``--bm25 WEIGHT`` adds BM25 re-ranking.

Usage:
    python -m bench.demo_kb_quality [--head none] [--no-passages]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from bench.common import emit
from bench.retrieval import answered_correctly, rank_all, top_k_accuracy
from bot.config import get_settings
from knowledge.answering import AnswerPolicy, answer_question
from knowledge.articles import load_articles
from knowledge.encoder import default_encoder
from knowledge.head import DEFAULT_HEAD
from knowledge.index import Hit, KnowledgeIndex
from knowledge.lexical import LexicalConfig

QUESTIONS = Path(__file__).resolve().parent / "data" / "demo_kb_questions.yml"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its JSON line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--questions", type=Path, default=QUESTIONS)
    parser.add_argument("--show-misses", action="store_true", help="list every wrong top-1")
    parser.add_argument("--head", choices=("none", "rerank", "blend"), default=DEFAULT_HEAD.mode)
    parser.add_argument("--head-weight", type=float, default=DEFAULT_HEAD.weight)
    parser.add_argument("--no-passages", action="store_true")
    parser.add_argument(
        "--bm25", type=float, default=None, help="add BM25 re-ranking with this weight"
    )
    args = parser.parse_args(argv)
    settings = get_settings()

    spec = yaml.safe_load(args.questions.read_text())
    queries: list[tuple[str, str | None]] = [
        (q, article_id) for article_id, qs in spec["in_domain"].items() for q in qs
    ]
    queries += [(q, None) for q in spec["out_of_domain"]]
    head = None
    if args.head != "none":
        head = DEFAULT_HEAD.model_copy(update={"weight": args.head_weight, "mode": args.head})
    index = KnowledgeIndex.build(
        load_articles(settings.articles_dir),
        default_encoder(),
        head=head,
        lexical=None if args.bm25 is None else LexicalConfig(weight=args.bm25),
        passages=not args.no_passages,
    )

    def bot_search(text: str, limit: int) -> list[Hit]:
        policy = AnswerPolicy(
            answer_threshold=settings.kb_answer_threshold,
            suggest_threshold=settings.kb_suggest_threshold,
            limit=limit,
        )
        return list(answer_question(index, text, segment=None, policy=policy).hits)

    plain = rank_all(index, queries, limit=3)
    ranked = rank_all(index, queries, limit=3, search=bot_search)
    ood = [r for r in ranked if r.expected is None]
    if args.show_misses:
        for (text, _), r in zip(queries, ranked, strict=True):
            if r.expected is not None and r.ids[:1] != (r.expected,):
                print(f"MISS {r.expected} <- {text!r}: got {r.ids[:1]} {r.top_score:.2f}")
    emit(
        {
            "benchmark": "demo_kb_quality",
            "head": args.head if head is None else f"{args.head}:{args.head_weight}",
            "passages": not args.no_passages,
            "bm25": args.bm25,
            "articles": len(index.manifest.article_ids),
            "in_domain_questions": len(ranked) - len(ood),
            "ood_questions": len(ood),
            "answer_threshold": settings.kb_answer_threshold,
            "suggest_threshold": settings.kb_suggest_threshold,
            "index_top1": round(top_k_accuracy(plain, 1), 4),
            "index_top3": round(top_k_accuracy(plain, 3), 4),
            "top1": round(top_k_accuracy(ranked, 1), 4),
            "top3": round(top_k_accuracy(ranked, 3), 4),
            "answered": round(answered_correctly(ranked, settings.kb_answer_threshold), 4),
            "ood_wrong": sum(r.top_score >= settings.kb_answer_threshold for r in ood),
            "ood_suggested": sum(
                settings.kb_suggest_threshold <= r.top_score < settings.kb_answer_threshold
                for r in ood
            ),
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
