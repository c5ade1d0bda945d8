"""Small helpers shared by the benchmarks: percentiles, memory, the JSON result line."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DATASETS_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of ``values`` (``fraction`` in 0..1)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(0, math.ceil(fraction * len(ordered)) - 1)
    return ordered[rank]


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` and its children, in MB, from /proc."""
    total_kb = 0
    for process in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{process}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except FileNotFoundError:
            continue
    return round(total_kb / 1024, 1)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        children_file = task / "children"
        if children_file.exists():
            for child in children_file.read_text().split():
                found.append(int(child))
                found.extend(_children(int(child)))
    return found


def emit(result: dict[str, Any]) -> None:
    """Print the benchmark's figures as the single final JSON line."""
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    sys.stdout.flush()


def datasets_dir() -> Path:
    """The shared public evaluation data (``../shared/datasets`` beside the repo)."""
    if not DATASETS_DIR.exists():
        raise SystemExit(
            f"public datasets not found at {DATASETS_DIR} (see shared/datasets/README.md)"
        )
    return DATASETS_DIR


def query_encoder_export(
    tmp: Path, source: Path, *, name: str | None = None, dimension: int | None = None
) -> tuple[Path, bool]:
    """The deployment's ONNX query encoder if sound, else a fresh export in ``tmp``.

    Args:
        tmp: A temporary folder for a fresh export.
        source: The model folder the index is built with.
        name: Its name (default: the packaged model's).
        dimension: Its vector length (default: the packaged model's).

    Returns:
        The export folder, and whether it was exported now (the deployment is never touched).
    """
    from bot.config import get_settings
    from knowledge.onnx_encoder import EXPORT_DIRNAME, ensure_onnx_export, export_is_current

    deployed = get_settings().models_dir / EXPORT_DIRNAME
    if export_is_current(deployed, source) is not None:
        return deployed, False
    options: dict[str, Any] = {}
    if name is not None:
        options["name"] = name
    if dimension is not None:
        options["dimension"] = dimension
    ensure_onnx_export(source, tmp / EXPORT_DIRNAME, **options)
    return tmp / EXPORT_DIRNAME, True


class BaseModel:
    """The encoder a benchmark starts from: the packaged MiniLM or ``--base-model MODEL``.

    Attributes:
        path: The sentence-transformers model folder.
        name: Its name in index manifests.
        dimension: Its vector length (from the folder's pooling config).
    """

    def __init__(self, given: str | None = None) -> None:
        from knowledge.encoder import EMBEDDING_DIMENSION, EMBEDDING_MODEL_NAME, packaged_model_path

        if given is None:
            self.path, self.name, self.dimension = (
                packaged_model_path(),
                EMBEDDING_MODEL_NAME,
                EMBEDDING_DIMENSION,
            )
            return
        from bot.config import get_settings
        from knowledge.encoder import find_model_folder

        folder = find_model_folder(given, get_settings().models_dir)
        pooling = folder / "1_Pooling" / "config.json" if folder is not None else None
        if folder is not None and pooling is not None and pooling.is_file():
            self.path, self.name = folder, folder.name
            self.dimension = int(json.loads(pooling.read_text())["word_embedding_dimension"])
            return
        raise SystemExit(
            f"--base-model {given}: no sentence-transformers model folder there "
            "(`python -m bot setup --large-encoder` installs all-mpnet-base-v2)"
        )

    @property
    def packaged(self) -> bool:
        """Whether this is the packaged all-MiniLM-L6-v2."""
        from knowledge.encoder import EMBEDDING_MODEL_NAME

        return self.name == EMBEDDING_MODEL_NAME

    def encoder(self, **options: Any) -> Any:
        """A torch encoder for this model (``SentenceTransformerEncoder`` options)."""
        from knowledge.encoder import SentenceTransformerEncoder

        return SentenceTransformerEncoder(
            None if self.packaged else self.path,
            name=self.name,
            dimension=self.dimension,
            **options,
        )


def add_base_model_argument(parser: Any) -> None:
    """Add ``--base-model`` to a benchmark's argument parser."""
    parser.add_argument(
        "--base-model",
        default=None,
        metavar="MODEL",
        help="start from this sentence-transformers folder (or the name of one in the models "
        "folder, e.g. all-mpnet-base-v2) instead of the packaged all-MiniLM-L6-v2",
    )
