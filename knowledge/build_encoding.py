"""Which encoder the next build uses, so that a tuned knowledge base stays tuned.

``kb tune`` saves a fine-tuned model under ``<index root>/encoders/<name>/`` (the torch
model in ``model/`` and its ONNX int8 query encoder in ``query-encoder/``), and the build
it publishes names that folder in its manifest (``encoder_dir``). Every later build,
whether ``kb build`` or a publish from the editor, must encode with the same model,
or the new build's vectors would come from the packaged model and the tuning would be
silently dropped. :func:`encoding_for_next_build` reads the live manifest and returns
the tuned model, its query encoder and the ``encoder_dir`` to record again; with no
tuned build live (or ``use_tuned=False``: ``kb build --base-model``) it returns the
caller's default encoder.

Tuned encoders are cached per process by folder (the model loads on first use, about
10 s), so an editor's second publish after a tune does not load it again.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from knowledge.encoder import Encoder, SentenceTransformerEncoder
from knowledge.store import current_manifest
from knowledge.tuning import MODEL_SUBDIR, QUERY_ENCODER_SUBDIR

__all__ = ["BuildEncoding", "encoding_for_next_build"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildEncoding:
    """What a build encodes with.

    Attributes:
        encoder: The document encoder.
        query_encoder_dir: The ONNX query encoder exported from ``encoder``'s model.
        encoder_dir: The tuned model's folder relative to the index root (recorded in
            the manifest), or ``None`` for the packaged model.
    """

    encoder: Encoder
    query_encoder_dir: Path | None
    encoder_dir: str | None = None

    @property
    def tuned(self) -> bool:
        """Whether this is a ``kb tune`` model."""
        return self.encoder_dir is not None


def encoding_for_next_build(
    root: Path,
    *,
    default: Callable[[], Encoder],
    default_query_encoder_dir: Path | None,
    use_tuned: bool = True,
) -> BuildEncoding:
    """Return the live build's tuned encoder if it has one, else the default.

    Args:
        root: The index root (``current`` and ``encoders/``).
        default: Returns the packaged encoder (called only when it is used).
        default_query_encoder_dir: The packaged model's ONNX export.
        use_tuned: ``False`` builds with the packaged model even after a tune.

    Returns:
        The encoder, query encoder and ``encoder_dir`` for the next build. A tuned
        folder that is missing or incomplete is logged and the default is used.
    """
    manifest = current_manifest(root) if use_tuned else None
    if manifest is None or not manifest.encoder_dir:
        return BuildEncoding(default(), default_query_encoder_dir)
    folder = Path(root) / manifest.encoder_dir
    model_dir, query_dir = folder / MODEL_SUBDIR, folder / QUERY_ENCODER_SUBDIR
    if not model_dir.is_dir() or not query_dir.is_dir():
        logger.warning(
            "The live build names the tuned encoder %s, but %s is incomplete; building with "
            "the packaged model (the tuning is dropped; run kb tune again)",
            manifest.encoder_dir,
            folder,
        )
        return BuildEncoding(default(), default_query_encoder_dir)
    encoder = _tuned_encoder(str(model_dir.resolve()), manifest.model, manifest.dimension)
    return BuildEncoding(encoder, query_dir, manifest.encoder_dir)


@functools.lru_cache(maxsize=2)
def _tuned_encoder(model_dir: str, name: str, dimension: int) -> SentenceTransformerEncoder:
    """One encoder per tuned folder and process (the model loads on first use)."""
    return SentenceTransformerEncoder(Path(model_dir), name=name, dimension=dimension)
