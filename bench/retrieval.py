"""Retrieval scoring shared by the quality benchmarks: run queries, count hits per band."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from knowledge.articles import Article
from knowledge.index import Hit, KnowledgeIndex


def article_id_for(intent: str) -> str:
    """A valid article id for a dataset's intent label."""
    return intent.lower().replace("_", "-").replace("?", "").replace("'", "")


def intent_articles(pairs: Iterable[Sequence[str]], k: int | None, *, source: str) -> list[Article]:
    """One article per intent whose alternate questions are its first ``k`` training queries.

    Args:
        pairs: ``(text, intent)`` training rows.
        k: Queries kept per intent (None: all).
        source: Dataset name, recorded as the articles' owner.
    """
    examples: dict[str, list[str]] = defaultdict(list)
    for text, intent in pairs:
        if k is None or len(examples[intent]) < k:
            examples[intent].append(text)
    return [
        Article(
            id=article_id_for(intent),
            title=intent.replace("_", " "),
            audience="all",
            tags=[],
            questions=questions,
            language="en",
            updated=dt.date(2020, 1, 1),
            owner=source,
            body=intent.replace("_", " ") + ".",
            path=None,
        )
        for intent, questions in sorted(examples.items())
    ]


@dataclass(frozen=True)
class Ranked:
    """One query's result: the expected article (None when out of domain) and the ranking."""

    expected: str | None
    ids: tuple[str, ...]
    scores: tuple[float, ...]

    @property
    def top_score(self) -> float:
        """Score of the best hit (0 when nothing was found)."""
        return self.scores[0] if self.scores else 0.0


def rank_all(
    index: KnowledgeIndex,
    queries: Sequence[tuple[str, str | None]],
    limit: int = 3,
    *,
    search: Callable[[str, int], list[Hit]] | None = None,
) -> list[Ranked]:
    """Search every ``(query, expected_article_id)`` pair.

    Args:
        index: The index to search.
        queries: Question text and the article that should answer it (None: out of domain).
        limit: Hits kept per query.
        search: How to search (default: the plain index); e.g. the bot's audience-aware path.
    """
    run_search = search or (lambda text, k: index.search(text, limit=k))
    ranked = []
    for text, expected in queries:
        hits = run_search(text, limit)
        ranked.append(
            Ranked(expected, tuple(h.article_id for h in hits), tuple(h.score for h in hits))
        )
    return ranked


def top_k_accuracy(ranked: Sequence[Ranked], k: int) -> float:
    """Share of in-domain queries whose article is among the first ``k`` hits."""
    in_domain = [r for r in ranked if r.expected is not None]
    return sum(r.expected in r.ids[:k] for r in in_domain) / max(1, len(in_domain))


def answered_correctly(ranked: Sequence[Ranked], threshold: float) -> float:
    """Share of in-domain queries answered (top score ≥ threshold) with the right article."""
    in_domain = [r for r in ranked if r.expected is not None]
    good = sum(
        bool(r.ids) and r.ids[0] == r.expected and r.top_score >= threshold for r in in_domain
    )
    return good / max(1, len(in_domain))


def suggested_correctly(ranked: Sequence[Ranked], threshold: float) -> float:
    """Share of in-domain queries whose article is in the top 3 with score ≥ threshold."""
    in_domain = [r for r in ranked if r.expected is not None]
    good = 0
    for r in in_domain:
        good += any(
            i == r.expected and s >= threshold for i, s in zip(r.ids, r.scores, strict=True)
        )
    return good / max(1, len(in_domain))


def rejected(ranked: Sequence[Ranked], threshold: float) -> float:
    """Share of out-of-domain queries whose top score is below ``threshold``."""
    out = [r for r in ranked if r.expected is None]
    return sum(r.top_score < threshold for r in out) / max(1, len(out))


def sweep(lo: float = 0.20, hi: float = 0.90, step: float = 0.01) -> list[float]:
    """Candidate thresholds from ``lo`` to ``hi``."""
    count = round((hi - lo) / step)
    return [round(lo + i * step, 2) for i in range(count + 1)]
