"""Lexical scores (BM25 with bm25s) that can re-rank the semantic search.

Each article becomes one BM25 document: the texts the index embeds for it (title,
alternate questions, passages). At search time the query's BM25 score per article is
divided by the best article's (0..1) and added to the ranking score:

    rank = semantic + weight * bm25 / max(bm25)

Like the classifier head in ``rerank`` mode, it only re-orders articles: a hit's score
stays the cosine, so the answer/suggest thresholds keep their meaning. Built in memory
when an index is created or loaded (no extra files). A knowledge-base setting, off unless
asked for (``kb build --bm25 0.1`` or ``kb tune --bm25 0.1``; later builds and publishes keep
it): measured by ``python -m bench.levers`` and ``python -m bench.tuning --bm25 0.1``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["LexicalConfig", "LexicalScorer"]

_HINT = "lexical re-ranking needs bm25s: pip install bm25s"


class LexicalConfig(BaseModel):
    """How lexical scores are blended in (recorded in the index manifest).

    Attributes:
        kind: ``bm25``.
        weight: Weight of the normalised BM25 score added to the ranking score.
    """

    model_config = ConfigDict(frozen=True)

    kind: Literal["bm25"] = "bm25"
    weight: float = Field(0.1, ge=0)


class LexicalScorer:
    """BM25 over one document per article, in the index's article order.

    Args:
        documents: One text per article.
        config: The blend weight.

    Raises:
        ImportError: If bm25s is not installed.
    """

    def __init__(self, documents: Sequence[str], config: LexicalConfig) -> None:
        try:
            import bm25s
        except ImportError as exc:
            raise ImportError(_HINT) from exc
        # bm25s sets its logger to DEBUG when imported, which prints its debug lines in
        # the CLI and the action server's log; the application's level decides instead.
        logging.getLogger("bm25s").setLevel(logging.NOTSET)
        self._bm25s: Any = bm25s
        self.config = config
        self._count = len(documents)
        tokens = bm25s.tokenize(list(documents), stopwords="en", show_progress=False)
        # Nothing but stop words (or no articles): no BM25 index, every score 0.
        self._retriever: Any = bm25s.BM25() if tokens.vocab else None
        if self._retriever is not None:
            self._retriever.index(tokens, show_progress=False)

    def with_config(self, config: LexicalConfig) -> LexicalScorer:
        """Return the same index blended with another weight."""
        clone = object.__new__(LexicalScorer)
        clone.__dict__.update(self.__dict__)
        clone.config = config
        return clone

    def scores(self, query: str) -> np.ndarray:
        """Return each article's BM25 score for the query, divided by the best one (0..1)."""
        tokens = self._bm25s.tokenize(
            [query], stopwords="en", show_progress=False, return_ids=False
        )[0]
        if not tokens or self._retriever is None:
            return np.zeros(self._count, dtype=np.float32)
        raw = np.asarray(self._retriever.get_scores(tokens), dtype=np.float32)
        best = float(raw.max()) if raw.size else 0.0
        return raw / best if best > 0 else np.zeros(self._count, dtype=np.float32)
