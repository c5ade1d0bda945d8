"""A per-knowledge-base classifier head on top of the embeddings (logistic regression).

Nearest-neighbour search asks "which stored text is closest?"; the head asks "which
article does this question belong to?", learnt in seconds at build time from every vector
of the index (each article's title, alternate questions and passages, labelled with the
article). At search time the article's best cosine and the head's probability are blended:

    blend = (1 - weight) * best_cosine + weight * probability

``mode`` decides what the bands see: ``rerank`` orders the articles by the blend but
keeps the cosine as each hit's score (so the answer/suggest thresholds, chosen for cosine
scores, keep their meaning); ``blend`` makes the blend the score (thresholds must be
chosen for it).

Measured on Banking77 and CLINC150 by ``python -m bench.levers`` (docs/benchmarks.md);
published builds use :data:`DEFAULT_HEAD`.
Training needs scikit-learn; searching needs numpy only.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DEFAULT_HEAD", "HEAD_FILE", "UNTRAINED_BIAS", "ArticleHead", "HeadConfig", "HeadMode"]

logger = logging.getLogger(__name__)

HEAD_FILE = "head.npz"
UNTRAINED_BIAS = -1e4  # an article's row with nothing to learn from: never chosen
HeadMode = Literal["rerank", "blend"]


class HeadConfig(BaseModel):
    """How the head is trained and blended (recorded in the index manifest).

    Attributes:
        kind: ``logistic-regression``.
        c: Inverse regularisation strength of the logistic regression.
        weight: Share of the head's probability in the blended score (0..1).
        mode: ``rerank`` (order by the blend, score stays the cosine) or ``blend``.
        max_articles: Above this many articles no head is trained (training time grows
            with articles x vectors).
    """

    model_config = ConfigDict(frozen=True)

    kind: Literal["logistic-regression"] = "logistic-regression"
    c: float = Field(10.0, gt=0)
    weight: float = Field(0.7, ge=0, le=1)
    mode: HeadMode = "rerank"
    max_articles: int = Field(2000, ge=2)

    def applies_to(self, articles: int) -> bool:
        """Whether a head is trained for a knowledge base of this many articles."""
        return 2 <= articles <= self.max_articles


# What published builds use (``kb build``, set-up): chosen on Banking77 and CLINC150 val by
# ``python -m bench.levers`` (weight 0.7 had the best mean val top-1 of 0.3/0.5/0.7), and
# in ``rerank`` mode so the cosine answer/suggest thresholds keep their meaning.
DEFAULT_HEAD = HeadConfig(c=10.0, weight=0.7, mode="rerank")


class ArticleHead:
    """A trained head: one weight row and one bias per article, in the index's article order.

    Args:
        weights: Array of shape ``(articles, dimension)``.
        bias: Array of shape ``(articles,)``.
        config: How it was trained and is blended.
    """

    def __init__(self, weights: np.ndarray, bias: np.ndarray, config: HeadConfig) -> None:
        self.weights = np.ascontiguousarray(weights, dtype=np.float32)
        self.bias = np.ascontiguousarray(bias, dtype=np.float32)
        self.config = config

    @classmethod
    def train(
        cls, vectors: np.ndarray, labels: np.ndarray, articles: int, config: HeadConfig
    ) -> ArticleHead | None:
        """Fit the logistic regression on the index's vectors.

        Args:
            vectors: The index's vectors, shape ``(n, dimension)``.
            labels: The article position (0..articles-1) of each vector.
            articles: Number of articles.
            config: Training settings.

        Returns:
            The head, or ``None`` when there are fewer than two or more than
            ``config.max_articles`` articles.

        Raises:
            ImportError: If scikit-learn is not installed.
        """
        if not config.applies_to(articles):
            logger.info("No classifier head for %d articles", articles)
            return None
        from sklearn.linear_model import LogisticRegression

        started = time.perf_counter()
        model = LogisticRegression(C=config.c, max_iter=2000)
        model.fit(vectors, labels)
        weights = np.zeros((articles, vectors.shape[1]), dtype=np.float32)
        bias = np.full(articles, UNTRAINED_BIAS, dtype=np.float32)  # articles with no vector
        classes = model.classes_.astype(int)
        weights[classes] = model.coef_
        bias[classes] = model.intercept_
        logger.info(
            "Trained the classifier head on %d vectors, %d articles in %.1fs",
            len(vectors),
            articles,
            time.perf_counter() - started,
        )
        return cls(weights, bias, config)

    def probabilities(self, vector: np.ndarray) -> np.ndarray:
        """Return each article's probability for one query vector (softmax over articles)."""
        logits = self.weights @ np.asarray(vector, dtype=np.float32).reshape(-1) + self.bias
        logits -= logits.max()
        exp = np.exp(logits)
        return np.asarray(exp / exp.sum(), dtype=np.float32)

    def save(self, path: Path) -> None:
        """Write the weights to an ``.npz`` file."""
        with Path(path).open("wb") as handle:
            np.savez(handle, weights=self.weights, bias=self.bias)

    @classmethod
    def load(cls, path: Path, config: HeadConfig) -> ArticleHead:
        """Read a head written by :meth:`save`.

        Raises:
            OSError: If the file cannot be read.
            ValueError: If it is not a head file.
        """
        with np.load(Path(path)) as data:
            try:
                return cls(data["weights"], data["bias"], config)
            except KeyError as exc:
                raise ValueError(f"{path} is not a classifier head: {exc}") from exc

    def with_row_refitted(self, vectors: np.ndarray, labels: np.ndarray, row: int) -> ArticleHead:
        """Return this head with one article's row fitted again and every other row kept.

        The same regularised multinomial likelihood as :meth:`train`, maximised over that
        row's weights and bias only (the other articles' logits are held fixed): a
        logistic regression in one row, 0.5 s where training every row takes 27 s (2,000
        articles of 4 texts). For a publish that changes a few articles of a large
        knowledge base, and for its preview (``knowledge.index._head_for_build``): there
        it ranked the same article first as a full retrain for 300 of 300 test questions
        (``python -m bench.editor_publish --large 2000``).

        Args:
            vectors: The training vectors, shape ``(n, dimension)``, the row's new ones
                among them.
            labels: The article position of each vector.
            row: The article position to fit (its current weights start the search; an
                untrained row, bias at :data:`UNTRAINED_BIAS`, starts from zero).
        """
        from scipy.optimize import minimize
        from scipy.special import expit, logsumexp

        features = np.asarray(vectors, dtype=np.float64)
        others = np.ones(len(self.weights), dtype=bool)
        others[row] = False
        fixed = logsumexp(features @ self.weights[others].T + self.bias[others], axis=1)
        target = (np.asarray(labels) == row).astype(np.float64)
        c = self.config.c

        def objective(params: np.ndarray) -> tuple[float, np.ndarray]:
            logits = features @ params[:-1] + params[-1]
            loss = np.logaddexp(fixed, logits) - target * logits
            residual = expit(logits - fixed) - target
            value = c * float(loss.sum()) + 0.5 * float(params[:-1] @ params[:-1])
            gradient = np.append(c * (features.T @ residual) + params[:-1], c * residual.sum())
            return value, gradient

        trained = self.bias[row] > UNTRAINED_BIAS / 10
        start = np.append(
            self.weights[row] if trained else np.zeros(self.weights.shape[1]),
            self.bias[row] if trained else 0.0,
        )
        result = minimize(objective, start, jac=True, method="L-BFGS-B")
        weights, bias = self.weights.copy(), self.bias.copy()
        weights[row], bias[row] = result.x[:-1], result.x[-1]
        return ArticleHead(weights, bias, self.config)

    def with_config(self, config: HeadConfig) -> ArticleHead:
        """Return the same weights blended differently (``weight``/``mode`` only)."""
        return ArticleHead(self.weights, self.bias, config)
