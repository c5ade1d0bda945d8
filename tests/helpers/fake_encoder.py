"""A deterministic stand-in for the embedding model, for fast tests.

``FakeEncoder`` hashes words and character trigrams into a small signed feature vector
(the hashing trick), so texts that share words score higher than texts that do not.
It needs no model, no torch and no network, and gives the same vectors in every process.

Usage:
    from tests.helpers.fake_encoder import FakeEncoder

    index = KnowledgeIndex.build(articles, FakeEncoder())
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

_WORD = re.compile(r"[a-z0-9]+")
_STOPWORD_TEXT = (
    "a an and are can do does for how i if in is it my of on or the to what when where "
    "which who why with you your me we our this that be"
)
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


class FakeEncoder:
    """Hashed bag of words and character trigrams, L2-normalised.

    Attributes:
        name: Recorded in index manifests (``"fake-hashing-encoder"`` by default).
        dimension: Vector length (64 by default).
        calls: Every batch passed to :meth:`encode`, for assertions.
    """

    def __init__(self, dimension: int = 64, *, name: str = "fake-hashing-encoder") -> None:
        self.name = name
        self.dimension = dimension
        self.calls: list[list[str]] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts; an empty or stop-word-only text gives a zero vector."""
        self.calls.append(list(texts))
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature, weight in _features(text):
                bucket, sign = self._bucket(feature)
                vectors[row, bucket] += sign * weight
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return (vectors / norms).astype(np.float32)

    def _bucket(self, feature: str) -> tuple[int, float]:
        digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
        number = int.from_bytes(digest, "little")
        return number % self.dimension, (1.0 if (number >> 63) & 1 else -1.0)


def _features(text: str) -> list[tuple[str, float]]:
    words = [word for word in _WORD.findall(text.lower()) if word not in STOPWORDS]
    features = [(f"w:{word}", 1.0) for word in words]
    for word in words:
        padded = f"<{word}>"
        features.extend((f"c:{padded[i : i + 3]}", 0.3) for i in range(len(padded) - 2))
    return features
