"""Group customer questions by meaning: near-duplicate merging, then average-linkage clustering.

Two steps, both deterministic:

1. **Near-identical phrasings** (same words give or take a typo, case, spacing or end
   punctuation) are merged before anything is embedded: the texts are normalised like the
   reports' unanswered questions (:func:`bot.reports.queries.normalise_question`) and any
   two whose rapidfuzz ``ratio`` is at least :data:`NEAR_DUPLICATE_RATIO` join the same
   phrasing (greedily, most frequent first). Each phrasing is embedded once.
2. **Same meaning**: the phrasings' vectors (unit length, from the live build's query
   encoder) are clustered by average linkage on cosine distance (scipy), cut where the mean
   cosine between two groups falls below :data:`GROUP_THRESHOLD`. Average linkage does not
   chain unrelated questions through one ambiguous message the way single linkage (or a
   greedy leader pass) does.

``GROUP_THRESHOLD`` was chosen by ``python -m bench.content_gaps_grouping`` on the public
data's tuning splits (CLINC150 val and Banking77 train: questions of one intent are
paraphrases of one topic), maximising the pairwise F1 of the groups against the intents,
and reported on the test splits (``docs/benchmarks.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from bot.reports.queries import normalise_question

__all__ = [
    "GROUP_THRESHOLD",
    "NEAR_DUPLICATE_RATIO",
    "Phrasing",
    "QuestionEncoder",
    "cluster_vectors",
    "embed",
    "medoid",
    "merge_near_duplicates",
]

GROUP_THRESHOLD = 0.525
"""Mean cosine similarity from which two groups of phrasings are one topic."""
NEAR_DUPLICATE_RATIO = 90.0
"""rapidfuzz ``ratio`` (0–100) of normalised texts from which two phrasings are one."""
EMBED_BATCH = 64


class QuestionEncoder(Protocol):
    """What grouping needs of an encoder (``knowledge.encoder.Encoder``, the ONNX one)."""

    name: str
    dimension: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Return one unit-length float32 row per text."""
        ...


@dataclass(frozen=True)
class Phrasing:
    """One wording of a question and the near-identical ones merged into it.

    Attributes:
        key: The normalised text (the grouping key of the first, most frequent wording).
        text: The wording shown to editors (the most recent as the customer typed it).
        members: Indexes, into the texts given to :func:`merge_near_duplicates`, of every
            question merged into this phrasing.
    """

    key: str
    text: str
    members: tuple[int, ...]


def merge_near_duplicates(
    texts: Sequence[str], *, ratio: float = NEAR_DUPLICATE_RATIO
) -> list[Phrasing]:
    """Merge near-identical wordings (see the module docstring).

    Args:
        texts: The questions, oldest first (the last of a phrasing's members is shown).
        ratio: rapidfuzz ``ratio`` from which two normalised texts are one phrasing.

    Returns:
        The phrasings, most frequent first (ties: most recent first). Texts that normalise
        to nothing are left out.
    """
    from rapidfuzz import fuzz, process

    by_key: dict[str, list[int]] = {}
    for position, text in enumerate(texts):
        key = normalise_question(text)
        if key:
            by_key.setdefault(key, []).append(position)
    keys = sorted(by_key, key=lambda key: (-len(by_key[key]), -by_key[key][-1], key))
    if not keys:
        return []
    scores = process.cdist(keys, keys, scorer=fuzz.ratio, score_cutoff=ratio, workers=1)
    leader_of: list[int] = list(range(len(keys)))
    leaders: list[int] = []
    for number in range(len(keys)):
        # Join the first (most frequent) earlier leader this wording is close enough to.
        match = next((lead for lead in leaders if scores[number, lead] >= ratio), None)
        if match is None:
            leaders.append(number)
        else:
            leader_of[number] = match
    phrasings: list[Phrasing] = []
    for lead in leaders:
        members = sorted(
            position
            for number, key in enumerate(keys)
            if leader_of[number] == lead
            for position in by_key[key]
        )
        shown = " ".join(texts[members[-1]].split())
        phrasings.append(Phrasing(key=keys[lead], text=shown, members=tuple(members)))
    return phrasings


def embed(
    encoder: QuestionEncoder, texts: Sequence[str], *, batch: int = EMBED_BATCH
) -> np.ndarray:
    """Embed texts in batches (call it off the event loop: it takes milliseconds per text).

    Args:
        encoder: The query encoder.
        texts: The texts.
        batch: Texts per call to the encoder.

    Returns:
        A float32 array, one unit-length row per text.
    """
    if not texts:
        return np.zeros((0, encoder.dimension), dtype=np.float32)
    parts = [
        encoder.encode(list(texts[start : start + batch])) for start in range(0, len(texts), batch)
    ]
    vectors = np.asarray(np.vstack(parts), dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


def cluster_vectors(vectors: np.ndarray, *, threshold: float = GROUP_THRESHOLD) -> list[int]:
    """Average-linkage clusters of unit vectors, cut at a mean cosine of ``threshold``.

    Args:
        vectors: One unit-length row per phrasing.
        threshold: Two clusters merge while the mean cosine between their members is at
            least this.

    Returns:
        A cluster number per row, numbered 0, 1, ... in order of first appearance (so the
        same input always gives the same numbers).

    Raises:
        ValueError: ``threshold`` is outside -1..1.
    """
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be between -1 and 1, not {threshold}")
    count = len(vectors)
    if count == 0:
        return []
    if count == 1:
        return [0]
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist

    distances = np.clip(pdist(np.asarray(vectors, dtype=np.float64), metric="cosine"), 0.0, 2.0)
    tree = linkage(distances, method="average")
    raw = fcluster(tree, t=1.0 - threshold, criterion="distance")
    numbers: dict[int, int] = {}
    return [numbers.setdefault(int(label), len(numbers)) for label in raw]


def medoid(vectors: np.ndarray, weights: Sequence[int] | None = None) -> int:
    """The row closest on average to the others (weighted by how often each was asked).

    Args:
        vectors: Unit-length rows (at least one).
        weights: How many questions each row stands for (default 1 each).

    Returns:
        The row's index; ties go to the earliest row.
    """
    if len(vectors) == 1:
        return 0
    similarity = vectors @ vectors.T
    weight = np.ones(len(vectors)) if weights is None else np.asarray(weights, dtype=np.float64)
    scores = similarity @ weight
    return int(np.argmax(scores))
