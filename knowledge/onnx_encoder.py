"""ONNX int8 query encoder: the model that built the index, run with onnxruntime, no torch.

The index is built with the sentence-transformers model (torch). For queries, set-up
exports that same model once (:func:`export_onnx_encoder`): the transformer, mean pooling
over the attention mask and L2 normalisation in one ONNX graph, its weights quantised to
int8 (dynamic, per channel) with onnxruntime. An export folder holds::

    model.int8.onnx   the quantised graph (inputs input_ids, attention_mask and, for BERT-style
                      models, token_type_ids)
    tokenizer.json    the source model's tokenizer, run with the ``tokenizers`` package
    manifest.json     OnnxEncoderManifest: source model name and fingerprint, files' sha256

Each index build that uses it carries a copy (hard link) in ``query-encoder/`` and names
it in its own manifest, so a build and its query encoder are swapped in together.
:class:`OnnxEncoder` imports numpy, ``tokenizers`` and onnxruntime only: a process that
only answers questions never loads torch. Exporting needs torch, ``onnx`` and
sentence-transformers and runs only at set-up (``python -m bot setup``).

Measured on the project's 2-core machine (``python -m bench.encoder_parity``, see
docs/benchmarks.md): about 1 ms per query on one thread against about 7 ms with torch.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from knowledge.encoder import (
    EMBEDDING_DIMENSION,
    EMBEDDING_MODEL_NAME,
    EncoderUnavailableError,
    normalize_rows,
)
from knowledge.threads import DEFAULT_SERVING_THREADS, thread_limit

__all__ = [
    "EXPORT_DIRNAME",
    "MANIFEST_FILE",
    "MODEL_FILE",
    "ONNX_INT8",
    "TOKENIZER_FILE",
    "ExportStatus",
    "OnnxEncoder",
    "OnnxEncoderManifest",
    "copy_export",
    "ensure_onnx_export",
    "export_is_current",
    "export_onnx_encoder",
    "export_status",
    "file_sha256",
    "load_onnx_encoder",
    "read_onnx_manifest",
    "source_fingerprint",
]

logger = logging.getLogger(__name__)

ONNX_INT8 = "onnx-int8"
EXPORT_DIRNAME = "encoder-onnx"  # the export's folder under a deployment's models folder
MODEL_FILE = "model.int8.onnx"
TOKENIZER_FILE = "tokenizer.json"
MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1
OPSET = 17
DEFAULT_MAX_LENGTH = 256
# An export whose vectors drift further than this from torch's on the probe sentences is
# refused (int8 per-channel gives about 0.99 here; per-tensor gave 0.91 at worst).
MIN_PROBE_COSINE = 0.95
_FEED_FORWARD_OUTPUT = re.compile(r"/layer\.\d+/output/dense/MatMul$")
_PROBES = (
    "Where is my order?",
    "can i send back a lamp i bought",
    "My payment got declined twice and I am really annoyed about it.",
    "net 30 invoicing for our company",
    "hi",
)
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_INSTALL_HINT = "install the project's dependencies (pip install -e .), which include onnxruntime"


class OnnxEncoderManifest(BaseModel):
    """Description of an exported query encoder, saved as ``manifest.json``.

    Attributes:
        name: The source model's name; indexes built with that model accept this encoder.
        kind: ``onnx-int8``.
        dimension: Vector length.
        max_length: Longest input in tokens (longer texts are truncated, as in the source).
        source_path: Where the source model was loaded from when exporting.
        source_sha256: Fingerprint of the source model's weights (see
            :func:`source_fingerprint`); a different source needs a new export.
        model_file: The ONNX file's name.
        model_sha256: sha256 of the ONNX file.
        tokenizer_sha256: sha256 of ``tokenizer.json``.
        probe_min_cosine: Lowest cosine between this encoder's and the source model's
            vectors over the probe sentences, measured when exporting.
        exported_at: When it was exported (UTC).
        versions: Library versions used to export (torch, onnx, onnxruntime).
        fp32_nodes: MatMul nodes left in float32 because quantising them moved the vectors
            too far (none for MiniLM; MPNet's feed-forward output projections).
        format_version: Layout version of the folder.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    kind: str = ONNX_INT8
    dimension: int
    max_length: int
    source_path: str
    source_sha256: str
    model_file: str = MODEL_FILE
    model_sha256: str
    tokenizer_sha256: str
    probe_min_cosine: float
    exported_at: datetime.datetime
    versions: dict[str, str]
    fp32_nodes: int = 0
    format_version: int = FORMAT_VERSION


def file_sha256(path: Path) -> str:
    """Return the sha256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_fingerprint(model_dir: Path) -> str:
    """Fingerprint a sentence-transformers model folder: sha256 over its weights and configs.

    Args:
        model_dir: The model folder.

    Returns:
        A hex digest that changes when any weight or configuration file changes.

    Raises:
        EncoderUnavailableError: If the folder holds no weights.
    """
    model_dir = Path(model_dir)
    patterns = ("*.safetensors", "*.bin", "*.json")
    files = sorted({path for pattern in patterns for path in model_dir.rglob(pattern)})
    if not any(path.suffix in (".safetensors", ".bin") for path in files):
        raise EncoderUnavailableError(f"no model weights in {model_dir}")
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(model_dir)).encode("utf-8"))
        digest.update(file_sha256(path).encode("ascii"))
    return digest.hexdigest()


def read_onnx_manifest(directory: Path) -> OnnxEncoderManifest:
    """Read an export folder's manifest.

    Args:
        directory: The export folder.

    Returns:
        The manifest.

    Raises:
        EncoderUnavailableError: If it is missing or unreadable.
    """
    path = Path(directory) / MANIFEST_FILE
    try:
        return OnnxEncoderManifest.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise EncoderUnavailableError(
            f"no ONNX query encoder in {directory}; run `python -m bot setup`"
        ) from exc
    except (OSError, ValidationError) as exc:
        raise EncoderUnavailableError(f"cannot read {path}: {exc}") from exc


def export_is_current(directory: Path, source_dir: Path) -> OnnxEncoderManifest | None:
    """Return the export's manifest if it is complete and was made from ``source_dir``'s model.

    Args:
        directory: The export folder.
        source_dir: The source model folder.

    Returns:
        The manifest, or ``None`` if the export is missing, damaged or from another model.
    """
    try:
        manifest = read_onnx_manifest(directory)
    except EncoderUnavailableError:
        return None
    model, tokenizer = Path(directory) / manifest.model_file, Path(directory) / TOKENIZER_FILE
    if not (model.is_file() and tokenizer.is_file()):
        return None
    try:
        same_source = manifest.source_sha256 == source_fingerprint(source_dir)
    except (EncoderUnavailableError, OSError):
        return None
    if not same_source or manifest.format_version != FORMAT_VERSION:
        return None
    if file_sha256(model) != manifest.model_sha256:
        return None
    if file_sha256(tokenizer) != manifest.tokenizer_sha256:
        return None
    return manifest


def copy_export(source: Path, target: Path) -> None:
    """Put an export's files into ``target`` (hard links where possible, else copies).

    Args:
        source: The export folder.
        target: The new folder (created; must not exist).
    """
    target.mkdir(parents=True)
    for name in (MODEL_FILE, TOKENIZER_FILE, MANIFEST_FILE):
        try:
            os.link(source / name, target / name)
        except OSError:  # another file system, or links not allowed
            shutil.copy2(source / name, target / name)


def _library_versions() -> dict[str, str]:
    versions = {}
    for package in ("torch", "onnx", "onnxruntime", "transformers", "sentence-transformers"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def export_onnx_encoder(
    source_dir: Path,
    target_dir: Path,
    *,
    name: str = EMBEDDING_MODEL_NAME,
    dimension: int = EMBEDDING_DIMENSION,
) -> OnnxEncoderManifest:
    """Export a sentence-transformers model to ONNX, quantise it to int8 and check it.

    The new folder replaces ``target_dir`` only once it is complete and checked; an
    interrupted or failed export leaves the previous one as it was.

    Args:
        source_dir: The sentence-transformers model folder (transformer + mean pooling +
            normalisation, as all-MiniLM-L6-v2).
        target_dir: The export folder to write.
        name: The source model's name, recorded as the encoder's name.
        dimension: The expected vector length.

    Returns:
        The new export's manifest.

    Raises:
        EncoderUnavailableError: If a library is missing, the model cannot be exported,
            or the int8 vectors drift too far from the source model's.
    """
    started = time.perf_counter()
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    source_dir, target_dir = Path(source_dir), Path(target_dir)
    target_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".tmp-{target_dir.name}-", dir=target_dir.parent))
    work.chmod(0o755)
    try:
        model = _load_source(source_dir, dimension)
        max_length = int(getattr(model, "max_seq_length", None) or DEFAULT_MAX_LENGTH)
        fp32 = work / "model.fp32.onnx"
        _export_fp32(model, fp32)
        tokenizer = source_dir / TOKENIZER_FILE
        if not tokenizer.is_file():
            raise EncoderUnavailableError(f"{source_dir} has no {TOKENIZER_FILE}")
        shutil.copy2(tokenizer, work / TOKENIZER_FILE)
        _quantize(fp32, work / MODEL_FILE)
        probe_cosine = _probe_cosine(model, work, max_length, dimension)
        kept: list[str] = []
        if probe_cosine < MIN_PROBE_COSINE:
            # Dynamic int8 scales each activation tensor as a whole; the feed-forward output
            # projections of some models (MPNet) take inputs with large outliers, which
            # drown the rest. Those projections stay float32; the rest is still int8.
            kept = _feed_forward_outputs(fp32)
            if kept:
                _quantize(fp32, work / MODEL_FILE, keep_fp32=kept)
                probe_cosine = _probe_cosine(model, work, max_length, dimension)
        fp32.unlink()
        if probe_cosine < MIN_PROBE_COSINE:
            raise EncoderUnavailableError(
                f"the int8 export drifts from {name}: cosine {probe_cosine:.3f} on the probe "
                f"sentences, below {MIN_PROBE_COSINE}"
            )
        manifest = OnnxEncoderManifest(
            name=name,
            dimension=dimension,
            max_length=max_length,
            source_path=str(source_dir),
            source_sha256=source_fingerprint(source_dir),
            model_sha256=file_sha256(work / MODEL_FILE),
            tokenizer_sha256=file_sha256(work / TOKENIZER_FILE),
            probe_min_cosine=round(probe_cosine, 5),
            exported_at=datetime.datetime.now(datetime.UTC),
            versions=_library_versions(),
            fp32_nodes=len(kept),
        )
        (work / MANIFEST_FILE).write_text(
            json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n", encoding="utf-8"
        )
        _replace_dir(work, target_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    logger.info(
        "Exported %s to %s (int8, probe cosine %.4f) in %.1fs",
        name,
        target_dir,
        probe_cosine,
        time.perf_counter() - started,
    )
    return manifest


def ensure_onnx_export(
    source_dir: Path,
    target_dir: Path,
    *,
    name: str = EMBEDDING_MODEL_NAME,
    dimension: int = EMBEDDING_DIMENSION,
) -> tuple[OnnxEncoderManifest, bool]:
    """Export the model unless ``target_dir`` already holds a sound export of it.

    Args:
        source_dir: The sentence-transformers model folder that builds the index.
        target_dir: The export folder.
        name: The source model's name.
        dimension: The expected vector length.

    Returns:
        The export's manifest, and whether it was exported now.

    Raises:
        EncoderUnavailableError: If exporting was needed and failed (see
            :func:`export_onnx_encoder`); the previous export, if any, is kept.
    """
    current = export_is_current(target_dir, source_dir)
    if current is not None and current.name == name and current.dimension == dimension:
        return current, False
    return export_onnx_encoder(source_dir, target_dir, name=name, dimension=dimension), True


@dataclass(frozen=True)
class ExportStatus:
    """Whether the query encoder is in place, for ``python -m bot doctor``.

    Attributes:
        ok: True if the export is sound, loads, and the live build carries it.
        detail: What was found.
        fix: The command that fixes it (empty when ``ok``).
    """

    ok: bool
    detail: str
    fix: str = ""


def export_status(
    directory: Path, source_dir: Path, *, live_sha256: str | None, index_built: bool
) -> ExportStatus:
    """Check an export: made from ``source_dir``'s model, loads, and is the live build's.

    Args:
        directory: The export folder.
        source_dir: The model folder that builds the index.
        live_sha256: The ONNX file's sha256 named by the live build (``None``: none named).
        index_built: Whether a live build exists at all.

    Returns:
        The status, with the fix when something is wrong.
    """
    manifest = export_is_current(directory, source_dir)
    if manifest is None:
        return ExportStatus(False, f"not exported (or stale) in {directory}", "python -m bot setup")
    try:
        shape = OnnxEncoder(directory, manifest=manifest).encode(["ping"]).shape
    except EncoderUnavailableError as exc:
        return ExportStatus(False, exc.message, "python -m bot setup")
    size_mb = (Path(directory) / manifest.model_file).stat().st_size / 1e6
    detail = (
        f"{manifest.kind}, {shape[1]} dimensions, {size_mb:.0f} MB, "
        f"probe cosine {manifest.probe_min_cosine:.3f} to {manifest.name}"
    )
    if index_built and live_sha256 != manifest.model_sha256:
        return ExportStatus(
            False, detail + "; the live build does not carry it", "python -m bot kb build"
        )
    return ExportStatus(True, detail + ("; carried by the live build" if index_built else ""))


def _replace_dir(new: Path, target: Path) -> None:
    """Move ``new`` to ``target``, replacing an existing folder with one rename each."""
    old = None
    if target.exists():
        old = target.with_name(f".old-{target.name}-{uuid.uuid4().hex[:8]}")
        os.rename(target, old)
    try:
        os.rename(new, target)
    except BaseException:
        if old is not None:
            os.rename(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _load_source(source_dir: Path, dimension: int) -> Any:
    try:
        import torch  # noqa: F401 - the export needs it; say so clearly if it is missing
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise EncoderUnavailableError(
            f"exporting needs {exc.name or 'sentence-transformers'}: install the project's "
            "dependencies (pip install -e .)"
        ) from exc
    try:
        model = SentenceTransformer(str(source_dir), device="cpu")
    except Exception as exc:  # library errors vary by version; all mean "unusable"
        raise EncoderUnavailableError(f"cannot load the model from {source_dir}: {exc}") from exc
    model.eval()
    getter = getattr(model, "get_embedding_dimension", None)
    got = getter() if getter is not None else model.get_sentence_embedding_dimension()
    if got != dimension:
        raise EncoderUnavailableError(f"{source_dir} makes {got}-d vectors, expected {dimension}")
    return model


def _export_fp32(model: Any, path: Path) -> None:
    import warnings

    import torch

    transformer = model[0].auto_model

    class Pooled(torch.nn.Module):
        """Transformer, mean pooling over the attention mask, L2 normalisation."""

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor | None = None,
        ) -> torch.Tensor:
            extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
            tokens = self.inner(input_ids=input_ids, attention_mask=attention_mask, **extra)[0]
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    example = model.tokenizer(
        ["how do I return an item I bought?", "hi"], padding=True, return_tensors="pt"
    )
    # BERT-style models take token type ids; others (MPNet) take only the first two.
    inputs = [name for name in _INPUTS if name in example]
    args = tuple(example[name] for name in inputs)
    axes = {name: {0: "batch", 1: "tokens"} for name in inputs}
    axes["embedding"] = {0: "batch"}
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about Python-side shape checks
            torch.onnx.export(
                Pooled(transformer).eval(),
                args,
                str(path),
                input_names=inputs,
                output_names=["embedding"],
                dynamic_axes=axes,
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
    except Exception as exc:
        raise EncoderUnavailableError(f"cannot export the model to ONNX: {exc}") from exc


def _feed_forward_outputs(fp32: Path) -> list[str]:
    """Names of the graph's feed-forward output MatMuls (``layer.N/output/dense``).

    The same names in BERT-style and MPNet exports; attention's own output projection is
    ``attention/output/dense`` (BERT) or ``attention/attn/o`` (MPNet) and does not match.
    """
    import onnx

    graph = onnx.load(str(fp32), load_external_data=False).graph
    return [
        node.name
        for node in graph.node
        if node.op_type == "MatMul" and _FEED_FORWARD_OUTPUT.search(node.name)
    ]


def _quantize(fp32: Path, int8: Path, *, keep_fp32: Sequence[str] = ()) -> None:
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise EncoderUnavailableError(f"cannot import onnxruntime.quantization: {exc}") from exc
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))  # it logs a pre-processing hint at WARNING
    try:
        quantize_dynamic(
            str(fp32),
            str(int8),
            weight_type=QuantType.QInt8,
            per_channel=True,
            nodes_to_exclude=list(keep_fp32),
        )
    finally:
        root.setLevel(level)


def _probe_cosine(model: Any, work: Path, max_length: int, dimension: int) -> float:
    reference = normalize_rows(
        model.encode(
            list(_PROBES),
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
    )
    candidate = OnnxEncoder(work, manifest=_provisional(max_length, dimension))
    vectors = candidate.encode(list(_PROBES))
    return float(np.min(np.sum(reference * vectors, axis=1)))


def _provisional(max_length: int, dimension: int) -> OnnxEncoderManifest:
    return OnnxEncoderManifest(
        name="int8 export being checked",
        dimension=dimension,
        max_length=max_length,
        source_path="",
        source_sha256="",
        model_sha256="",
        tokenizer_sha256="",
        probe_min_cosine=0.0,
        exported_at=datetime.datetime.now(datetime.UTC),
        versions={},
    )


class OnnxEncoder:
    """An exported query encoder run with onnxruntime (no torch), loaded on first use.

    Args:
        directory: The export folder (or a build's ``query-encoder/`` copy).
        threads: onnxruntime intra-op threads (default: the process's limit from
            :func:`knowledge.threads.limit_native_threads`, else 1).
        manifest: The folder's manifest, if already read.

    Attributes:
        name: The source model's name (indexes built with it accept this encoder).
        dimension: Vector length.
        kind: ``onnx-int8``.
        directory: The folder loaded from.
        intra_op_threads: onnxruntime intra-op threads, once loaded (else ``None``).
    """

    kind = ONNX_INT8

    def __init__(
        self,
        directory: Path,
        *,
        threads: int | None = None,
        manifest: OnnxEncoderManifest | None = None,
    ) -> None:
        self.directory = Path(directory)
        manifest = manifest or read_onnx_manifest(self.directory)
        self.manifest = manifest
        self.name = manifest.name
        self.dimension = manifest.dimension
        self._threads = threads
        self._session: Any = None
        self._tokenizer: Any = None
        self._input_names: tuple[str, ...] = ()
        self._lock = threading.Lock()
        self.intra_op_threads: int | None = None
        self.load_seconds: float | None = None

    @property
    def loaded(self) -> bool:
        """Whether the ONNX session is in memory."""
        return self._session is not None

    def load(self) -> None:
        """Create the onnxruntime session and the tokenizer now.

        Raises:
            EncoderUnavailableError: If onnxruntime or tokenizers is missing or the files
                cannot be loaded.
        """
        with self._lock:
            if self._session is None:
                self._load()

    def _load(self) -> None:
        started = time.perf_counter()
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise EncoderUnavailableError(f"cannot import {exc.name}: {_INSTALL_HINT}") from exc
        threads = self._threads or thread_limit() or DEFAULT_SERVING_THREADS
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        model = self.directory / self.manifest.model_file
        try:
            session = onnxruntime.InferenceSession(
                str(model), options, providers=["CPUExecutionProvider"]
            )
            tokenizer = Tokenizer.from_file(str(self.directory / TOKENIZER_FILE))
        except Exception as exc:  # onnxruntime raises its own exception types
            raise EncoderUnavailableError(f"cannot load the ONNX encoder {model}: {exc}") from exc
        tokenizer.enable_truncation(max_length=self.manifest.max_length)
        # Pad to the longest in a batch, with the model's own pad token when its tokenizer
        # names one (MPNet: <pad>, id 1; its vocabulary also has a [PAD], id 4).
        own = tokenizer.padding or {"pad_id": 0, "pad_token": "[PAD]"}
        tokenizer.enable_padding(pad_id=own["pad_id"], pad_token=own["pad_token"])
        self._tokenizer = tokenizer
        self._input_names = tuple(i.name for i in session.get_inputs())
        self._session = session
        self.intra_op_threads = int(session.get_session_options().intra_op_num_threads)
        self.load_seconds = time.perf_counter() - started
        logger.info(
            "Loaded ONNX query encoder %s from %s in %.2fs (%d intra-op thread(s))",
            self.name,
            self.directory,
            self.load_seconds,
            self.intra_op_threads,
        )

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts, loading the session first if needed.

        Args:
            texts: The texts to embed.

        Returns:
            A float32 array of shape ``(len(texts), dimension)`` with L2-normalised rows.

        Raises:
            EncoderUnavailableError: If the encoder cannot be loaded.
        """
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts, not a single string")
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self._session is None:
            self.load()
        encodings = self._tokenizer.encode_batch(list(texts))
        feed = {
            name: np.array([_FEATURES[name](e) for e in encodings], dtype=np.int64)
            for name in self._input_names
        }
        (vectors,) = self._session.run(["embedding"], feed)
        return normalize_rows(vectors)


# What each graph input is, per tokenised text (``tokenizers.Encoding``).
_FEATURES: dict[str, Callable[[Any], list[int]]] = {
    "input_ids": lambda encoding: encoding.ids,
    "attention_mask": lambda encoding: encoding.attention_mask,
    "token_type_ids": lambda encoding: encoding.type_ids,
}

_cache: dict[str, OnnxEncoder] = {}
_cache_lock = threading.Lock()


def load_onnx_encoder(directory: Path) -> OnnxEncoder:
    """Return the process-wide encoder for an export (one per ONNX file's sha256).

    Builds that carry the same export share one onnxruntime session.

    Args:
        directory: The export folder (or a build's ``query-encoder/`` copy).

    Returns:
        The encoder (loaded on first use).

    Raises:
        EncoderUnavailableError: If the folder's manifest is missing or unreadable.
    """
    manifest = read_onnx_manifest(directory)
    with _cache_lock:
        encoder = _cache.get(manifest.model_sha256)
        if encoder is None:
            encoder = OnnxEncoder(directory, manifest=manifest)
            _cache[manifest.model_sha256] = encoder
        return encoder
