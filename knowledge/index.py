"""Semantic search over knowledge-base articles with faiss.

Modelled on txtai's dense ANN: every vector is L2-normalised, stored in an
``IndexIDMap(IndexFlatIP)`` (exact inner product = cosine similarity) and added with
``add_with_ids``. Each article contributes several vectors (its title, each alternate
question and each body passage); a search keeps the best score per article.

A saved index is a folder::

    index.faiss     the faiss index
    manifest.json   model, dimension, counts, content hash, build time, article ids,
                    and the query encoder (if any)
    articles.json   the articles (with their summaries) and what each vector encodes
    head.npz        the classifier head's weights, when built with one (knowledge.head)
    query-encoder/  the ONNX int8 query encoder exported from the model that built the
                    index (see knowledge.onnx_encoder), when one was given to build()

so a search never re-reads the Markdown sources.

**Index type by size** (:class:`AnnConfig`): exact ``IndexFlatIP`` up to
``approximate_above`` vectors, then an approximate index (``IndexIVFFlat`` by default, or
``IndexHNSWFlat``), both with inner product, wrapped in ``IndexIDMap`` like the flat one.
The manifest records the type and its search parameters (``index_type``,
``index_params``), which a loaded index searches with. Figures behind the defaults:
``python -m bench.scale`` (docs/benchmarks.md, "Scale").

**Re-embedding only what changed**: :meth:`KnowledgeIndex.build` given the previous build
(``previous=``) reuses the vectors of every text it already encoded, keyed by the exact
text and the encoder's identity (:func:`encoder_identity`: name, dimension and a
fingerprint of the weights), and the passages of every article whose content is unchanged;
only new or changed texts go to the encoder. Loading without an explicit encoder
(:meth:`KnowledgeIndex.load` with ``encoder=None``) uses the build's own query encoder,
or the torch model when the build names none.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from knowledge.articles import Article
from knowledge.chunking import DEFAULT_MAX_CHARS, chunk_article_passages
from knowledge.encoder import Encoder, normalize_rows
from knowledge.head import HEAD_FILE, UNTRAINED_BIAS, ArticleHead, HeadConfig
from knowledge.lexical import LexicalConfig, LexicalScorer
from knowledge.threads import apply_in_this_thread, blas_threads
from knowledge.timing import timed

__all__ = [
    "ARTICLES_FILE",
    "DEFAULT_ANN",
    "FORMAT_VERSION",
    "INDEX_FILE",
    "LONG_ARTICLE_CHARS",
    "MANIFEST_FILE",
    "AnnConfig",
    "Hit",
    "IndexCorruptError",
    "IndexMismatchError",
    "IndexNotBuiltError",
    "KnowledgeIndex",
    "KnowledgeIndexError",
    "Manifest",
    "QueryEncoderRef",
    "VectorSource",
    "answerable_hits",
    "content_hash",
    "encoder_identity",
    "make_faiss_index",
    "query_encoder_for",
    "query_encoder_ref",
    "read_build_articles",
    "read_manifest",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
# Passages carry their section (heading and anchor) since chunker 2; content hashes include
# it, so `kb build` rebuilds older builds once, and their passages are never reused.
CHUNKER_VERSION = 2
# An article whose body is at least this long is answered with the passage that matched
# (and cited with its section) instead of its first paragraph.
LONG_ARTICLE_CHARS = 3000
# The classifier head learns from at most this many passages of one article (spread over
# the whole article), besides its title and questions: a long article's 30+ passages
# otherwise make the head favour it for any loosely related question (measured on the demo
# KB: it took business-returns and an out-of-domain question). No short demo article has
# more than 8 passages, so their head is unchanged.
HEAD_PASSAGES_PER_ARTICLE = 8
INDEX_FILE = "index.faiss"
MANIFEST_FILE = "manifest.json"
ARTICLES_FILE = "articles.json"
QUERY_ENCODER_DIR = "query-encoder"
_ENCODE_BATCH = 32
_FAISS_HINT = "faiss is not installed: pip install faiss-cpu (part of the project's dependencies)"

VectorKind = Literal["title", "question", "chunk"]
IndexType = Literal["flat", "ivf", "hnsw"]


class KnowledgeIndexError(Exception):
    """Base class for knowledge-index errors.

    Attributes:
        message: A human explanation, with a hint on how to fix it.
    """

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class IndexNotBuiltError(KnowledgeIndexError):
    """Raised when there is no saved index where one was expected."""


class IndexMismatchError(KnowledgeIndexError):
    """Raised when a saved index was built with another model or dimension."""


class IndexCorruptError(KnowledgeIndexError):
    """Raised when the files of a saved index are missing, unreadable or inconsistent."""


@dataclass(frozen=True)
class Hit:
    """One search result: an article and how well it matched.

    Attributes:
        article_id: The article's id.
        title: The article's title.
        score: Cosine similarity of the best-matching vector of the article.
        summary: The short answer (first paragraph).
        audience: ``b2c``, ``b2b`` or ``all``.
        matched_text: The title, question or passage that matched best.
        passage: For a long article (body of at least :data:`LONG_ARTICLE_CHARS`) whose
            best match is a body passage: that passage without its heading prefix, the
            answer to show instead of the summary; else ``None``.
        section: The heading of that passage's section (``None``: no section).
        section_anchor: The section's anchor on the article page (``#`` + this).
        out_of_scope: The article lists questions to decline (only in a raw ranking,
            see :func:`answerable_hits`).
    """

    article_id: str
    title: str
    score: float
    summary: str
    audience: str
    matched_text: str
    passage: str | None = None
    section: str | None = None
    section_anchor: str | None = None
    out_of_scope: bool = False

    @property
    def answer_text(self) -> str:
        """What to answer with: the matched passage of a long article, else the summary."""
        return self.passage or self.summary


def answerable_hits(ranked: Sequence[Hit], limit: int) -> list[Hit]:
    """The hits to offer from a raw ranking that may hold out-of-scope articles.

    None when an out-of-scope article ranks first (the question is declined); otherwise
    the first ``limit`` other hits.
    """
    if ranked and ranked[0].out_of_scope:
        logger.debug("Declined: out-of-scope article %s ranked first", ranked[0].article_id)
        return []
    return [hit for hit in ranked if not hit.out_of_scope][:limit]


class QueryEncoderRef(BaseModel):
    """The query encoder a build carries (in its ``query-encoder/`` folder).

    Attributes:
        kind: ``onnx-int8``.
        path: Folder inside the build.
        model: The source model's name (the model that built the index).
        sha256: sha256 of the encoder's ONNX file.
        source_sha256: Fingerprint of the source model's weights it was exported from.
    """

    model_config = ConfigDict(frozen=True)

    kind: str
    path: str = QUERY_ENCODER_DIR
    model: str
    sha256: str
    source_sha256: str


class AnnConfig(BaseModel):
    """Which faiss index a build gets, by its number of vectors.

    Attributes:
        kind: ``auto`` (flat up to ``approximate_above`` vectors, then
            ``approximate_kind``), or always ``flat``, ``ivf`` or ``hnsw``.
        approximate_above: Vectors above which ``auto`` switches to an approximate index.
        approximate_kind: ``ivf`` (fast to build: a one-article publish stays quick) or
            ``hnsw`` (fastest searches, slow to build).
        ivf_lists: IVF cells (``None``: about ``sqrt(vectors)``: few cells keep the
            k-means training at every publish short, ~0.5 s at 50,000 vectors).
        ivf_probe: Cells searched per query (recall against build speed).
        hnsw_m: HNSW neighbours per node.
        hnsw_ef_construction: HNSW build-time beam width.
        hnsw_ef_search: HNSW search-time beam width.
    """

    model_config = ConfigDict(frozen=True)

    kind: Literal["auto", "flat", "ivf", "hnsw"] = "auto"
    approximate_above: int = Field(50_000, ge=1)
    approximate_kind: Literal["ivf", "hnsw"] = "ivf"
    ivf_lists: int | None = Field(None, ge=1)
    ivf_probe: int = Field(16, ge=1)
    hnsw_m: int = Field(32, ge=4)
    hnsw_ef_construction: int = Field(80, ge=8)
    hnsw_ef_search: int = Field(64, ge=8)

    def choose(self, vectors: int) -> IndexType:
        """Return the index type for this many vectors."""
        if self.kind != "auto":
            return self.kind
        return self.approximate_kind if vectors > self.approximate_above else "flat"


# Published builds (docs/benchmarks.md, "Scale", python -m bench.scale): exact search stays
# under ~1 ms up to 10,000 vectors and ~8 ms at 50,000 on one thread of this busy 2-core
# machine (25 ms at 100,000), against 6-14 ms to encode the question; above 50,000 vectors
# (about 15,000 articles) IVF answers in well under 1 ms with recall@1 of about 0.99 against
# flat, and builds in seconds where HNSW takes 14 s at 50,000 (every publish rebuilds it).
DEFAULT_ANN = AnnConfig()

# Training every row of the classifier head costs about 2 µs per (training vector,
# article) pair on one BLAS thread here: 0.06 s for the demo's 47 articles and 549 training
# vectors (median of 7, timed once on 2026-11-25; 0.4-0.7 s with two BLAS threads), 27 s
# for 2,000 articles of 4 texts each (python -m bench.editor_publish --large 2000). Above
# HEAD_RETRAIN_MAX_COST pairs, a build that changes at most HEAD_REFIT_MAX_ROWS articles of
# the previous build fits only their rows against the others (ArticleHead.with_row_refitted,
# about 0.5 s a row at 2,000 articles), until the rows refitted since the last full
# training reach HEAD_REFIT_MAX_SHARE of the articles.
HEAD_RETRAIN_MAX_COST = 500_000
HEAD_REFIT_MAX_ROWS = 10
HEAD_REFIT_MAX_SHARE = 0.1


class Manifest(BaseModel):
    """Description of a built index, saved as ``manifest.json``.

    Attributes:
        model: Encoder name; must equal the loading encoder's name.
        dimension: Vector length; must equal the loading encoder's dimension.
        article_count: Number of articles.
        vector_count: Number of vectors.
        content_hash: sha256 over the articles' canonical content (plus the index
            format and chunk size), used to skip rebuilding unchanged content.
        built_at: When the index was built (UTC).
        article_ids: The ids of the indexed articles, sorted.
        query_encoder: The query encoder the build carries (``None``: queries are
            encoded with the model itself, through torch).
        head: The classifier head's settings (``None``: nearest-neighbour only).
        head_refits: Head rows fitted alone (:data:`HEAD_RETRAIN_MAX_COST`) since the
            head was last trained in full; ``0``: trained in full by this build.
        lexical: BM25 re-ranking settings (``None``: none).
        passages: Whether body passages got vectors (titles and questions always do).
        encoder_dir: The folder of the model that built the index, relative to the index
            root, when it is not the packaged model (``kb tune``'s ``encoders/<name>``,
            see :mod:`knowledge.tuning`); ``None``: the packaged all-MiniLM-L6-v2.
        encoder_identity: The building encoder's :func:`encoder_identity` (``None`` in
            older builds: their vectors are never reused).
        max_chars: Longest body passage.
        chunker: Chunker version (:data:`CHUNKER_VERSION`) that made the passages.
        index_type: ``flat``, ``ivf`` or ``hnsw`` (see :class:`AnnConfig`).
        index_params: The approximate index's parameters (``nlist``/``nprobe``, or
            ``m``/``ef_construction``/``ef_search``).
        format_version: Layout version of the saved files.
    """

    model_config = ConfigDict(frozen=True)

    model: str
    dimension: int
    article_count: int
    vector_count: int
    content_hash: str
    built_at: datetime.datetime
    article_ids: list[str]
    query_encoder: QueryEncoderRef | None = None
    head: HeadConfig | None = None
    head_refits: int = 0
    lexical: LexicalConfig | None = None
    passages: bool = True
    encoder_dir: str | None = None
    encoder_identity: str | None = None
    max_chars: int = DEFAULT_MAX_CHARS
    chunker: int = 1
    index_type: IndexType = "flat"
    index_params: dict[str, int] = Field(default_factory=dict)
    format_version: int = FORMAT_VERSION


class VectorSource(BaseModel):
    """What one vector of the index encodes.

    Attributes:
        article_id: The article the vector belongs to.
        kind: ``title``, ``question`` or ``chunk``.
        text: The encoded text.
        section: A passage's section heading (``None``: none, or not a passage).
        anchor: That section's anchor on the article page.
        body_start: Where a passage's sentences start in ``text`` (after the heading).
    """

    model_config = ConfigDict(frozen=True)

    article_id: str
    kind: VectorKind
    text: str
    section: str | None = None
    anchor: str | None = None
    body_start: int = 0


def content_hash(articles: Sequence[Article], *, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """Return a sha256 hex digest of the articles' content (independent of file paths).

    Args:
        articles: The articles, in any order.
        max_chars: Passage size used for chunking; changing it changes the hash.

    Returns:
        The hex digest.
    """
    payload = {
        "format_version": FORMAT_VERSION,
        "chunker": CHUNKER_VERSION,
        "max_chars": max_chars,
        "articles": [a.canonical_content() for a in sorted(articles, key=lambda a: a.id)],
    }
    data = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def read_build_articles(directory: Path) -> list[Article]:
    """The articles of a saved index folder, without loading its vectors.

    Raises:
        KnowledgeIndexError: If the folder's articles cannot be read.
    """
    return _read_articles(Path(directory) / ARTICLES_FILE)[0]


def read_manifest(directory: Path) -> Manifest:
    """Read ``manifest.json`` from a saved index folder without loading the index.

    Args:
        directory: The saved index folder.

    Returns:
        The manifest.

    Raises:
        IndexNotBuiltError: If the folder has no manifest.
        IndexCorruptError: If the manifest cannot be parsed.
    """
    path = Path(directory) / MANIFEST_FILE
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise IndexNotBuiltError(f"no knowledge index in {directory}") from exc
    except OSError as exc:
        raise IndexCorruptError(f"cannot read {path}: {exc}") from exc
    try:
        return Manifest.model_validate_json(raw)
    except ValidationError as exc:
        raise IndexCorruptError(f"{path} is not a valid manifest: {exc}") from exc


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss is a hard dependency
        raise ImportError(_FAISS_HINT) from exc
    return faiss


def encoder_identity(encoder: Encoder) -> str:
    """Return what identifies an encoder's vectors: name, dimension and weights.

    The weights' fingerprint is the encoder's ``fingerprint`` attribute if it has one,
    else the sha256 over the files of its ``model_path`` (sentence-transformers models,
    computed once per process and folder), else nothing (fakes in tests: name only).

    Args:
        encoder: The encoder.

    Returns:
        ``name|dimension|fingerprint``; vectors are reused only between equal identities.
    """
    fingerprint = getattr(encoder, "fingerprint", None)
    if fingerprint is None:
        try:
            model_path = getattr(encoder, "model_path", None)
        except Exception:  # a missing model package: no fingerprint
            model_path = None
        if model_path is not None and Path(model_path).is_dir():
            fingerprint = _folder_fingerprint(str(model_path), _newest_mtime(Path(model_path)))
    return f"{encoder.name}|{encoder.dimension}|{fingerprint or ''}"


def _newest_mtime(folder: Path) -> float:
    return max((path.stat().st_mtime for path in folder.rglob("*") if path.is_file()), default=0)


@lru_cache(maxsize=8)
def _folder_fingerprint(folder: str, newest_mtime: float) -> str | None:
    from knowledge.encoder import EncoderUnavailableError
    from knowledge.onnx_encoder import source_fingerprint

    try:
        return source_fingerprint(Path(folder))
    except (EncoderUnavailableError, OSError):
        return None


def _article_sources(
    article: Article, max_chars: int, *, passages: bool = True
) -> list[VectorSource]:
    seen: set[str] = set()
    sources: list[VectorSource] = []
    candidates: list[VectorSource] = [
        VectorSource(article_id=article.id, kind="title", text=article.title)
    ]
    candidates += [
        VectorSource(article_id=article.id, kind="question", text=question)
        for question in article.questions
    ]
    if passages or not article.questions:  # an article needs more than its title
        candidates += [
            VectorSource(
                article_id=article.id,
                kind="chunk",
                text=passage.text,
                section=passage.section,
                anchor=passage.anchor,
                body_start=passage.body_start,
            )
            for passage in chunk_article_passages(article, max_chars)
        ]
    for source in candidates:
        key = " ".join(source.text.lower().split())
        if key and key not in seen:
            seen.add(key)
            sources.append(source)
    return sources


def _vector_sources(
    articles: Sequence[Article],
    max_chars: int,
    *,
    passages: bool = True,
    previous: KnowledgeIndex | None = None,
    digests: Mapping[str, str] | None = None,
) -> list[VectorSource]:
    """What each article's vectors encode; unchanged articles keep the previous build's.

    An article is unchanged if its file's source digest equals the previous build's (the
    same bytes parse to the same article), else if its content compares equal.
    """
    reusable: dict[str, list[VectorSource]] = {}
    if previous is not None:
        reusable = previous._sources_by_article(max_chars=max_chars, passages=passages)
    old_digests = previous._source_digests if previous is not None else {}
    sources: list[VectorSource] = []
    for article in articles:
        kept = reusable.get(article.id)
        digest = (digests or {}).get(article.id)
        same_file = digest is not None and old_digests.get(article.id) == digest
        if (
            kept is not None
            and previous is not None
            and (same_file or previous.same_content(article))
        ):
            sources.extend(kept)
        else:
            sources.extend(_article_sources(article, max_chars, passages=passages))
    return sources


def _head_rows(sources: Sequence[VectorSource]) -> np.ndarray:
    """Rows the head trains on: every title and question, passages evenly thinned."""
    passages: dict[str, list[int]] = {}
    rows: list[int] = []
    for row, source in enumerate(sources):
        if source.kind == "chunk":
            passages.setdefault(source.article_id, []).append(row)
        else:
            rows.append(row)
    for article_rows in passages.values():
        if len(article_rows) > HEAD_PASSAGES_PER_ARTICLE:
            picks = np.linspace(0, len(article_rows) - 1, HEAD_PASSAGES_PER_ARTICLE)
            article_rows = [article_rows[int(pick + 0.5)] for pick in picks]
        rows.extend(article_rows)
    return np.array(sorted(rows), dtype=np.int64)


def _reuse_vectors(
    texts: list[str], previous: KnowledgeIndex | None, identity: str
) -> tuple[np.ndarray | None, list[int]]:
    """Take the vectors of texts the previous build encoded with the same encoder.

    Returns:
        The previous build's vectors (``None`` if nothing can be reused) and, for each
        text, its row there or ``-1`` if it must be encoded.
    """
    if previous is None or previous.manifest.encoder_identity != identity:
        return None, [-1] * len(texts)
    rows: dict[str, int] = {}
    for row, source in enumerate(previous._sources):
        rows.setdefault(source.text, row)
    found = [rows.get(text, -1) for text in texts]
    if not any(row >= 0 for row in found):
        return None, found
    return previous._all_vectors(), found


def _head_for_build(
    vectors: np.ndarray,
    sources: Sequence[VectorSource],
    ids: Sequence[str],
    config: HeadConfig,
    previous: KnowledgeIndex | None,
    *,
    refit_share: float,
    retrain_max_cost: int,
) -> tuple[ArticleHead | None, int]:
    """Train the head in full, or fit only the changed articles' rows of the previous one.

    Training every row grows with vectors x articles (27 s at 2,000 articles), so a
    publish that changes a few articles of a large knowledge base keeps the previous
    head's other rows and fits each changed article's row against them
    (:meth:`ArticleHead.with_row_refitted`; removed articles' rows are dropped). That
    needs the previous build's vectors (``previous``, same encoder) and head settings,
    more than ``retrain_max_cost`` pairs, at most :data:`HEAD_REFIT_MAX_ROWS` changed
    articles, and the rows fitted alone since the last full training (the manifest's
    ``head_refits``) within ``refit_share`` of the articles; else every row is trained.

    Returns:
        The head (``None`` when too few or too many articles for one) and the manifest's
        ``head_refits``.
    """
    position = {article_id: number for number, article_id in enumerate(ids)}
    rows = _head_rows(sources)
    labels = np.array([position[sources[row].article_id] for row in rows])
    training = vectors[rows]
    refit = (
        previous is not None
        and previous.head is not None
        and previous.manifest.head == config
        and config.applies_to(len(ids))
        and len(rows) * len(ids) > retrain_max_cost
    )
    changed, removed = _changed_articles(sources, previous) if refit else ([], [])
    refits = len(changed) + len(removed) + (previous.manifest.head_refits if previous else 0)
    if not refit or len(changed) > HEAD_REFIT_MAX_ROWS or refits > refit_share * len(ids):
        with blas_threads(1):  # many small products: one thread is far faster
            return ArticleHead.train(training, labels, len(ids), config), 0
    assert previous is not None
    started = time.perf_counter()
    head = previous.head_for(ids)
    for article_id in changed:
        head = head.with_row_refitted(training, labels, position[article_id])
    logger.info(
        "Fitted the classifier head's rows of %d changed article(s) alone (%d removed, "
        "%d articles, %d refits since the last full training) in %.1fs",
        len(changed),
        len(removed),
        len(ids),
        refits,
        time.perf_counter() - started,
    )
    return head, refits


def _changed_articles(
    sources: Sequence[VectorSource], previous: KnowledgeIndex | None
) -> tuple[list[str], list[str]]:
    """Articles whose texts differ from the previous build's (or are new), and removed ones."""
    if previous is None:
        return [], []
    now: dict[str, list[str]] = {}
    for source in sources:
        now.setdefault(source.article_id, []).append(source.text)
    before: dict[str, list[str]] = {}
    for source in previous.sources:
        before.setdefault(source.article_id, []).append(source.text)
    changed = [article_id for article_id, texts in now.items() if before.get(article_id) != texts]
    return changed, [article_id for article_id in before if article_id not in now]


def make_faiss_index(
    vectors: np.ndarray, dimension: int, kind: IndexType, ann: AnnConfig
) -> tuple[Any, dict[str, int]]:
    """Build the faiss index of ``kind`` over the vectors (ids are their rows).

    Args:
        vectors: L2-normalised float32 rows.
        dimension: Their length.
        kind: ``flat``, ``ivf`` or ``hnsw``.
        ann: The approximate index's parameters.

    Returns:
        The ``IndexIDMap``-wrapped index and the parameters to record in the manifest.
    """
    faiss = _faiss()
    count = len(vectors)
    params: dict[str, int] = {}
    if kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dimension, ann.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = ann.hnsw_ef_construction
        inner.hnsw.efSearch = ann.hnsw_ef_search
        params = {
            "m": ann.hnsw_m,
            "ef_construction": ann.hnsw_ef_construction,
            "ef_search": ann.hnsw_ef_search,
        }
    elif kind == "ivf":
        lists = ann.ivf_lists or int(np.sqrt(max(count, 1)))
        lists = max(1, min(lists, count // 39 if count >= 39 else 1))  # >= 39 points a cell
        quantizer = faiss.IndexFlatIP(dimension)
        inner = faiss.IndexIVFFlat(quantizer, dimension, lists, faiss.METRIC_INNER_PRODUCT)
        if count:
            sample = min(count, lists * 64)
            rows = np.random.default_rng(0).choice(count, size=sample, replace=False)
            inner.train(vectors[np.sort(rows)])
        inner.nprobe = min(ann.ivf_probe, lists)
        params = {"nlist": lists, "nprobe": int(inner.nprobe)}
    else:
        inner = faiss.IndexFlatIP(dimension)
    index = faiss.IndexIDMap(inner)
    if count:
        index.add_with_ids(vectors, np.arange(count, dtype=np.int64))
    return index, params


def _apply_search_params(faiss_index: Any, manifest: Manifest) -> None:
    """Set a loaded approximate index's search parameters from its manifest."""
    if manifest.index_type == "flat" or not hasattr(faiss_index, "index"):
        return
    inner = _faiss().downcast_index(faiss_index.index)
    params = manifest.index_params
    if manifest.index_type == "ivf" and "nprobe" in params:
        inner.nprobe = params["nprobe"]
    elif manifest.index_type == "hnsw" and "ef_search" in params:
        inner.hnsw.efSearch = params["ef_search"]


def _encode_all(encoder: Encoder, texts: list[str], *, progress: bool) -> np.ndarray:
    """Encode texts in batches of similar length (less padding: about 2x faster on CPU)."""
    order = sorted(range(len(texts)), key=lambda position: len(texts[position]))
    batches = [
        order[start : start + _ENCODE_BATCH] for start in range(0, len(order), _ENCODE_BATCH)
    ]
    vectors = np.zeros((len(texts), encoder.dimension), dtype=np.float32)
    if progress and batches:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        columns = (
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, transient=True) as bar:
            task = bar.add_task("Encoding", total=len(texts))
            for batch in batches:
                vectors[batch] = _encode_batch(encoder, [texts[i] for i in batch])
                bar.advance(task, len(batch))
    else:
        for batch in batches:
            vectors[batch] = _encode_batch(encoder, [texts[i] for i in batch])
    return vectors


def _encode_batch(encoder: Encoder, batch: list[str]) -> np.ndarray:
    vectors = np.asarray(encoder.encode(batch), dtype=np.float32)
    if vectors.shape != (len(batch), encoder.dimension):
        raise ValueError(
            f"encoder {encoder.name!r} returned shape {vectors.shape}, "
            f"expected {(len(batch), encoder.dimension)}"
        )
    return normalize_rows(vectors)


class KnowledgeIndex:
    """An immutable, searchable index of articles.

    Build one with :meth:`build` or :meth:`load`; the constructor is internal.
    """

    def __init__(
        self,
        *,
        articles: Sequence[Article],
        sources: Sequence[VectorSource],
        faiss_index: Any,
        manifest: Manifest,
        encoder: Encoder,
        query_encoder_source: Path | None = None,
        head: ArticleHead | None = None,
        lexical: LexicalScorer | None = None,
        source_digests: Mapping[str, str] | None = None,
    ) -> None:
        self._articles = {article.id: article for article in articles}
        # Articles listing questions to decline (knowledge.articles.OUT_OF_SCOPE_TAG)
        self._out_of_scope = frozenset(a.id for a in articles if a.out_of_scope)
        # article id -> knowledge.articles.source_digest of the file it was read from
        self._source_digests = dict(source_digests or {})
        self._summaries = {article.id: article.summary for article in articles}
        self._sources = list(sources)
        self._index = faiss_index
        self._manifest = manifest
        self._encoder = encoder
        self._query_encoder_source = query_encoder_source
        self._last_query: tuple[str, np.ndarray] | None = None
        self._head = head
        self._order = list(self._articles)  # article positions, as the head's rows
        if lexical is None and manifest.lexical is not None:
            lexical = LexicalScorer(self._documents(), manifest.lexical)
        self._lexical = lexical
        self._starts: np.ndarray | None = None
        self._vectors: np.ndarray | None = None
        # Texts sent to the encoder by build() (the rest was reused); None when loaded.
        self.encoded_count: int | None = None
        if head is not None or lexical is not None:
            self._starts, self._vectors = self._segments()

    @classmethod
    def build(
        cls,
        articles: Sequence[Article],
        encoder: Encoder,
        *,
        progress: bool = False,
        max_chars: int = DEFAULT_MAX_CHARS,
        query_encoder_dir: Path | None = None,
        head: HeadConfig | None = None,
        lexical: LexicalConfig | None = None,
        passages: bool = True,
        encoder_dir: str | None = None,
        previous: KnowledgeIndex | None = None,
        ann: AnnConfig | None = None,
        source_digests: Mapping[str, str] | None = None,
        reuse_any_encoder: bool = False,
        head_refit_share: float = HEAD_REFIT_MAX_SHARE,
        head_retrain_max_cost: int = HEAD_RETRAIN_MAX_COST,
    ) -> KnowledgeIndex:
        """Encode articles and build an index.

        Args:
            articles: The articles; ids must be unique.
            encoder: Embeds the title, each alternate question and each body passage.
            progress: Show a rich progress bar while encoding.
            max_chars: Longest body passage.
            query_encoder_dir: An ONNX query encoder exported from ``encoder``'s model
                (see :mod:`knowledge.onnx_encoder`); saved builds carry a copy and name
                it in their manifest. An export from another model, or a missing or
                damaged one, is left out with a warning (queries then use ``encoder``'s
                model through torch).
            head: Train a classifier head on the vectors (see :mod:`knowledge.head`).
            lexical: Re-rank with BM25 scores too (see :mod:`knowledge.lexical`).
            passages: Give body passages vectors (an article without alternate
                questions always gets them).
            encoder_dir: Where ``encoder``'s model lives, relative to the index root, for
                the manifest (``None``: the packaged model).
            previous: The live build: its vectors are reused for every text it encoded
                with an encoder of the same :func:`encoder_identity`, and its passages for
                every unchanged article; only the rest is encoded.
            ann: Which faiss index to build (``None``: :data:`DEFAULT_ANN`).
            source_digests: Each article's source digest (from ``load_articles``), saved
                so that the next publish need not parse unchanged files again.
            reuse_any_encoder: Reuse ``previous``'s vectors even though ``encoder`` did
                not make them (:meth:`with_article`: the build model's ONNX query encoder
                stands in for it; such an index is for searching, not for saving).
            head_refit_share: Share of the articles whose head rows may be fitted alone
                (see :func:`_head_for_build`) before the head is trained in full again.
            head_retrain_max_cost: Most (training vector, article) pairs the head is
                always trained in full on.

        Returns:
            The index, not yet saved.

        Raises:
            ValueError: If article ids repeat or the encoder returns bad shapes.
        """
        ordered = sorted(articles, key=lambda article: article.id)
        ids = [article.id for article in ordered]
        if len(set(ids)) != len(ids):
            raise ValueError("article ids must be unique")
        started = time.perf_counter()
        identity = encoder_identity(encoder)
        sources = _vector_sources(
            ordered, max_chars, passages=passages, previous=previous, digests=source_digests
        )
        texts = [source.text for source in sources]
        reused_identity = (
            previous.manifest.encoder_identity if reuse_any_encoder and previous else identity
        )
        old_vectors, rows = _reuse_vectors(texts, previous, reused_identity or identity)
        missing = [number for number, row in enumerate(rows) if row < 0]
        vectors = np.zeros((len(texts), encoder.dimension), dtype=np.float32)
        if old_vectors is not None:
            kept = [number for number, row in enumerate(rows) if row >= 0]
            vectors[kept] = old_vectors[[rows[number] for number in kept]]
        if missing:
            vectors[missing] = _encode_all(
                encoder, [texts[number] for number in missing], progress=progress
            )
        ann = ann or DEFAULT_ANN
        index_type = ann.choose(len(sources))
        index, index_params = make_faiss_index(vectors, encoder.dimension, index_type, ann)
        query_encoder = query_encoder_ref(query_encoder_dir, encoder)
        trained, refits = None, 0
        if head is not None:
            trained, refits = _head_for_build(
                vectors,
                sources,
                ids,
                head,
                previous if old_vectors is not None else None,
                refit_share=head_refit_share,
                retrain_max_cost=head_retrain_max_cost,
            )
        manifest = Manifest(
            model=encoder.name,
            dimension=encoder.dimension,
            article_count=len(ordered),
            vector_count=len(sources),
            content_hash=content_hash(ordered, max_chars=max_chars),
            built_at=datetime.datetime.now(datetime.UTC),
            article_ids=ids,
            query_encoder=query_encoder,
            head=None if trained is None else head,
            head_refits=refits,
            lexical=lexical,
            passages=passages,
            encoder_dir=encoder_dir,
            encoder_identity=identity,
            max_chars=max_chars,
            chunker=CHUNKER_VERSION,
            index_type=index_type,
            index_params=index_params,
        )
        logger.info(
            "Built knowledge index: %d articles, %d vectors (%d encoded, %d reused), %s, in %.2fs",
            len(ordered),
            len(sources),
            len(missing),
            len(sources) - len(missing),
            index_type,
            time.perf_counter() - started,
        )
        indexed = set(ids)
        built = cls(
            articles=ordered,
            sources=sources,
            faiss_index=index,
            manifest=manifest,
            encoder=encoder,
            query_encoder_source=query_encoder_dir if query_encoder else None,
            head=trained,
            source_digests={
                key: value for key, value in (source_digests or {}).items() if key in indexed
            },
        )
        built.encoded_count = len(missing)
        return built

    @property
    def manifest(self) -> Manifest:
        """The index's manifest."""
        return self._manifest

    @property
    def encoder(self) -> Encoder:
        """The encoder that embeds queries."""
        return self._encoder

    @property
    def head(self) -> ArticleHead | None:
        """The classifier head, if the index has one."""
        return self._head

    def head_for(self, article_ids: Sequence[str]) -> ArticleHead:
        """This index's head laid out for other articles: rows kept by id, new ones untrained.

        Raises:
            ValueError: If the index has no head.
        """
        if self._head is None:
            raise ValueError("this index has no classifier head")
        rows = {article_id: number for number, article_id in enumerate(self._order)}
        weights = np.zeros((len(article_ids), self._head.weights.shape[1]), dtype=np.float32)
        bias = np.full(len(article_ids), UNTRAINED_BIAS, dtype=np.float32)
        for number, article_id in enumerate(article_ids):
            if article_id in rows:
                weights[number] = self._head.weights[rows[article_id]]
                bias[number] = self._head.bias[rows[article_id]]
        return ArticleHead(weights, bias, self._head.config)

    def with_ranking(
        self, *, head: HeadConfig | None = None, lexical: LexicalConfig | None = None
    ) -> KnowledgeIndex:
        """Return this index ranked differently, without retraining or re-encoding.

        Args:
            head: New ``weight``/``mode`` for the trained head (``None``: keep).
            lexical: New BM25 weight (``None``: keep). An index built without lexical
                scores gets them here, over the same texts a build with them would use
                (no re-encoding: BM25 needs only the texts).

        Raises:
            ValueError: If head settings are given and the index has no trained head.
        """
        if head is not None and self._head is None:
            raise ValueError("this index has no classifier head")
        new_head = self._head.with_config(head) if head and self._head else self._head
        # None with lexical settings in the manifest: the constructor scores the texts.
        new_lexical = (
            self._lexical.with_config(lexical) if lexical and self._lexical else self._lexical
        )
        update: dict[str, Any] = {}
        if head is not None:
            update["head"] = head
        if lexical is not None:
            update["lexical"] = lexical
        return KnowledgeIndex(
            articles=list(self._articles.values()),
            sources=self._sources,
            faiss_index=self._index,
            manifest=self._manifest.model_copy(update=update),
            encoder=self._encoder,
            query_encoder_source=self._query_encoder_source,
            head=new_head,
            lexical=new_lexical,
            source_digests=self._source_digests,
        )

    def with_article(
        self,
        article: Article,
        encoder: Encoder | None = None,
        *,
        head_retrain_max_cost: int = HEAD_RETRAIN_MAX_COST,
    ) -> KnowledgeIndex:
        """This index as publishing it with ``article`` added or replaced would rank.

        For the editor's preview: the draft is searched as the bot will search it once
        published. The other articles keep their vectors, and so do the draft's texts
        this build already holds; the rest are encoded with ``encoder``. BM25, if this
        build ranks with it, scores the draft's texts. The head, if this build has one,
        is trained again as a publish trains it (in ``rerank`` mode it decides the
        order): in full up to ``head_retrain_max_cost`` (vector, article) pairs, above
        that only the draft's row (see :func:`_head_for_build`). Searched exactly
        (flat); kept in memory.

        Args:
            article: The draft.
            encoder: Encodes the draft's new texts (``None``: this index's query encoder,
                the build model's ONNX export: probe cosine above 0.99 to the torch model
                that a publish encodes with).
            head_retrain_max_cost: See :meth:`build`.

        Returns:
            A new index; this one is unchanged. Not for saving: some of its vectors come
            from another encoder than the one its manifest names.
        """
        articles = [*(kept for kept in self._articles.values() if kept.id != article.id), article]
        digests = {key: value for key, value in self._source_digests.items() if key != article.id}
        manifest = self._manifest
        return KnowledgeIndex.build(
            articles,
            encoder or self._encoder,
            max_chars=manifest.max_chars,
            head=manifest.head,
            lexical=manifest.lexical,
            passages=manifest.passages,
            encoder_dir=manifest.encoder_dir,
            previous=self,
            ann=AnnConfig(kind="flat"),
            source_digests=digests,
            reuse_any_encoder=True,
            head_refit_share=1.0,  # a preview never waits for a full retrain
            head_retrain_max_cost=head_retrain_max_cost,
        )

    def with_head_config(self, config: HeadConfig) -> KnowledgeIndex:
        """Return this index with its head blended differently (see :meth:`with_ranking`)."""
        return self.with_ranking(head=config)

    def known_sources(self) -> dict[str, Article]:
        """This build's articles by the source digest of their files (for ``load_articles``)."""
        return {
            digest: self._articles[article_id]
            for article_id, digest in self._source_digests.items()
            if article_id in self._articles and digest
        }

    def same_content(self, article: Article) -> bool:
        """Return whether this index holds ``article`` with exactly the same content."""
        mine = self._articles.get(article.id)
        return mine is not None and mine.canonical_content() == article.canonical_content()

    def _sources_by_article(
        self, *, max_chars: int, passages: bool
    ) -> dict[str, list[VectorSource]]:
        """Each article's sources, if they were made the way a new build would make them."""
        manifest = self._manifest
        if (
            manifest.chunker != CHUNKER_VERSION
            or manifest.max_chars != max_chars
            or manifest.passages != passages
        ):
            return {}
        grouped: dict[str, list[VectorSource]] = {}
        for source in self._sources:
            grouped.setdefault(source.article_id, []).append(source)
        return grouped

    def _all_vectors(self) -> np.ndarray:
        """Every vector, in id order (reconstructed from the faiss index)."""
        if self._vectors is not None:
            return self._vectors
        inner = _faiss().downcast_index(self._index.index)
        if inner.ntotal == 0:
            return np.zeros((0, self._manifest.dimension), dtype=np.float32)
        return np.asarray(inner.reconstruct_n(0, inner.ntotal), dtype=np.float32)

    def _documents(self) -> list[str]:
        """One text per article (everything the index embeds for it), in article order."""
        texts: dict[str, list[str]] = {article_id: [] for article_id in self._order}
        for source in self._sources:
            texts[source.article_id].append(source.text)
        return [" ".join(texts[article_id]) for article_id in self._order]

    def _segments(self) -> tuple[np.ndarray, np.ndarray]:
        """Each article's first vector row (rows are grouped by article) and all vectors."""
        starts = [
            row
            for row, source in enumerate(self._sources)
            if row == 0 or source.article_id != self._sources[row - 1].article_id
        ]
        if [self._sources[row].article_id for row in starts] != self._order:
            raise IndexCorruptError("vectors are not grouped by article in article order")
        return np.array(starts, dtype=np.int64), self._all_vectors()

    @property
    def articles(self) -> list[Article]:
        """The indexed articles, sorted by id."""
        return list(self._articles.values())

    @property
    def out_of_scope_articles(self) -> list[Article]:
        """The articles listing questions to decline (see :meth:`search`), sorted by id."""
        return [self._articles[article_id] for article_id in sorted(self._out_of_scope)]

    @property
    def sources(self) -> list[VectorSource]:
        """What each vector encodes, in vector-id order."""
        return list(self._sources)

    def __len__(self) -> int:
        """Return the number of indexed articles."""
        return len(self._articles)

    def __iter__(self) -> Iterator[Article]:
        """Iterate over the indexed articles, sorted by id."""
        return iter(self.articles)

    def __contains__(self, article_id: object) -> bool:
        """Return whether an article id is indexed."""
        return article_id in self._articles

    def article(self, article_id: str) -> Article | None:
        """Return an indexed article by id, or ``None``."""
        return self._articles.get(article_id)

    def search(
        self,
        query: str,
        limit: int = 3,
        *,
        audience: str | None = None,
        raw: bool = False,
    ) -> list[Hit]:
        """Find the articles that best answer a question.

        Args:
            query: The customer's question.
            limit: Most articles returned.
            audience: If given (``b2c`` or ``b2b``), only articles for that audience or
                ``all`` are returned.
            raw: Return the first ``limit`` articles of the ranking, out-of-scope ones
                included (marked ``Hit.out_of_scope``), for a caller that merges in
                other hits and then applies :func:`answerable_hits` itself.

        Returns:
            Up to ``limit`` hits, one per article, best score first (ties by id). An
            empty or blank query, or ``limit < 1``, gives ``[]``. So does a question whose
            first-ranked article is an out-of-scope article (one tagged
            :data:`~knowledge.articles.OUT_OF_SCOPE_TAG`, listing questions to decline);
            such articles are never among the hits.
        """
        if not query or not query.strip() or limit < 1 or not self._sources:
            return []
        vector = self._query_vector(query.strip())
        wanted = limit if raw else limit + len(self._out_of_scope)
        if self._head is not None or self._lexical is not None:
            ranked = self._search_ranked(query.strip(), vector, wanted, audience)
            return ranked if raw else answerable_hits(ranked, limit)
        total = len(self._sources)
        k = min(total, max(wanted * 16, 64))
        while True:
            best = self._best_per_article(vector, k, audience)
            if len(best) >= wanted or k >= total:
                break
            k = min(total, k * 4)
        ordered = sorted(best.items(), key=lambda item: (-item[1][0], item[0]))[:wanted]
        hits = [self._hit(article_id, score, position) for article_id, (score, position) in ordered]
        return hits if raw else answerable_hits(hits, limit)

    def best_hit_in(self, article_id: str, query: str) -> Hit | None:
        """The hit one article gives for a question: its best-matching text, scored.

        For a customer who picked the article from suggestions: a long article answers
        with the passage (and cites the section) that matched their question, as it would
        have had it been answered directly.

        Returns:
            The hit, or ``None`` for an unknown article, an out-of-scope article (it is
            never answered with) or a blank question.
        """
        if article_id in self._out_of_scope:
            return None
        rows = [row for row, source in enumerate(self._sources) if source.article_id == article_id]
        if not rows or not query.strip():
            return None
        if self._vectors is not None:
            vectors = self._vectors[rows]
        elif rows == list(range(rows[0], rows[-1] + 1)):  # an article's rows are contiguous
            inner = _faiss().downcast_index(self._index.index)
            vectors = np.asarray(inner.reconstruct_n(rows[0], len(rows)), dtype=np.float32)
        else:
            vectors = self._all_vectors()[rows]
        scores = vectors @ self._query_vector(query.strip())[0]
        best = int(np.argmax(scores))
        return self._hit(article_id, float(scores[best]), rows[best])

    def _query_vector(self, text: str) -> np.ndarray:
        """Embed a query, reusing the previous one when the text is the same.

        The bot often searches one question twice in a row (the customer's own audience
        first, then every article); this saves the second encoding (~13 ms on the CPU).
        """
        cached = self._last_query
        if cached is not None and cached[0] == text:
            return cached[1]
        with timed("encode"):  # knowledge.timing: callers may ask how long this took
            vector = _encode_batch(self._encoder, [text])
        self._last_query = (text, vector)
        return vector

    def _search_ranked(
        self, text: str, vector: np.ndarray, limit: int, audience: str | None
    ) -> list[Hit]:
        """Rank every article by its best cosine blended with the head and BM25 scores."""
        assert self._vectors is not None and self._starts is not None
        cosines = self._vectors @ vector[0]
        best = np.maximum.reduceat(cosines, self._starts)
        rank = best
        blend_scores = False
        if self._head is not None:
            config = self._head.config
            rank = (1.0 - config.weight) * best + config.weight * self._head.probabilities(vector)
            blend_scores = config.mode == "blend"
        scored = rank
        if self._lexical is not None:
            rank = rank + self._lexical.config.weight * self._lexical.scores(text)
        hits: list[Hit] = []
        for number in np.lexsort((np.arange(len(rank)), -rank)):
            article_id = self._order[int(number)]
            if audience and self._articles[article_id].audience not in (audience, "all"):
                continue
            start = int(self._starts[number])
            end = int(self._starts[number + 1]) if number + 1 < len(self._starts) else None
            position = start + int(np.argmax(cosines[start:end]))
            score = float(scored[number]) if blend_scores else float(best[number])
            hits.append(self._hit(article_id, score, position))
            if len(hits) >= limit:
                break
        return hits

    def _best_per_article(
        self, vector: np.ndarray, k: int, audience: str | None
    ) -> dict[str, tuple[float, int]]:
        apply_in_this_thread()  # OpenMP thread counts are per calling thread
        scores, ids = self._index.search(vector, k)
        best: dict[str, tuple[float, int]] = {}
        for score, position in zip(scores[0], ids[0], strict=True):
            if position < 0:
                continue
            article_id = self._sources[int(position)].article_id
            if audience and self._articles[article_id].audience not in (audience, "all"):
                continue
            if article_id not in best or float(score) > best[article_id][0]:
                best[article_id] = (float(score), int(position))
        return best

    def _hit(self, article_id: str, score: float, position: int) -> Hit:
        article = self._articles[article_id]
        source = self._sources[position]
        long_passage = source.kind == "chunk" and len(article.body) >= LONG_ARTICLE_CHARS
        return Hit(
            article_id=article_id,
            title=article.title,
            score=min(1.0, max(-1.0, score)),
            summary=self._summaries[article_id],
            audience=article.audience,
            matched_text=source.text,
            passage=source.text[source.body_start :] if long_passage else None,
            section=source.section if long_passage else None,
            section_anchor=source.anchor if long_passage else None,
            out_of_scope=article.out_of_scope,
        )

    def save(self, directory: Path) -> None:
        """Write the index to a folder (created if needed); the manifest is written last.

        Args:
            directory: Target folder; existing index files in it are replaced.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        _faiss().write_index(self._index, str(directory / INDEX_FILE))
        payload = {
            "format_version": FORMAT_VERSION,
            "articles": [
                {
                    **article.model_dump(mode="json"),
                    "summary": self._summaries[article.id],
                }
                for article in self._articles.values()
            ],
            "vectors": [
                source.model_dump(mode="json", exclude_defaults=True) for source in self._sources
            ],
            "source_sha256": self._source_digests,
        }
        _write_json(directory / ARTICLES_FILE, payload, compact=True)
        if self._query_encoder_source is not None:
            from knowledge.onnx_encoder import copy_export

            target = directory / QUERY_ENCODER_DIR
            if target.exists():
                shutil.rmtree(target)
            copy_export(self._query_encoder_source, target)
        if self._head is not None:
            self._head.save(directory / HEAD_FILE)
        _write_json(directory / MANIFEST_FILE, self._manifest.model_dump(mode="json"))

    @staticmethod
    def exists(directory: Path) -> bool:
        """Return whether a folder holds a complete saved index."""
        directory = Path(directory)
        return all(
            (directory / name).is_file() for name in (MANIFEST_FILE, INDEX_FILE, ARTICLES_FILE)
        )

    @classmethod
    def load(cls, directory: Path, encoder: Encoder | None = None) -> KnowledgeIndex:
        """Load a saved index and check it fits the encoder.

        Args:
            directory: A folder written by :meth:`save`.
            encoder: Used to embed queries; must be the model the index was built with.
                ``None``: the build's own query encoder (ONNX, no torch) when its
                manifest names one, else the model itself (``default_encoder()``).

        Returns:
            The index.

        Raises:
            IndexNotBuiltError: If the folder holds no index.
            IndexMismatchError: If the index was built with another model or dimension.
            IndexCorruptError: If the files are unreadable or inconsistent.
        """
        directory = Path(directory)
        manifest = read_manifest(directory)
        if manifest.format_version != FORMAT_VERSION:
            raise IndexMismatchError(
                f"index in {directory} has format {manifest.format_version}, this code reads "
                f"format {FORMAT_VERSION}; rebuild it with `python -m bot kb build --force`"
            )
        if encoder is None:
            encoder = query_encoder_for(directory, manifest)
        if manifest.model != encoder.name or manifest.dimension != encoder.dimension:
            raise IndexMismatchError(
                f"index in {directory} was built with {manifest.model} "
                f"({manifest.dimension}-d) but the encoder is {encoder.name} "
                f"({encoder.dimension}-d); rebuild it with `python -m bot kb build --force`"
            )
        faiss_index = _read_faiss(directory / INDEX_FILE)
        _apply_search_params(faiss_index, manifest)
        articles, sources, digests = _read_articles(directory / ARTICLES_FILE)
        _check_consistent(directory, manifest, faiss_index, articles, sources)
        head = None  # lexical scores are rebuilt from the articles by the constructor
        if manifest.head is not None:
            try:
                head = ArticleHead.load(directory / HEAD_FILE, manifest.head)
            except (OSError, ValueError) as exc:
                raise IndexCorruptError(f"cannot read the classifier head: {exc}") from exc
        return cls(
            articles=articles,
            sources=sources,
            faiss_index=faiss_index,
            manifest=manifest,
            encoder=encoder,
            head=head,
            source_digests=digests,
        )


def query_encoder_for(directory: Path, manifest: Manifest) -> Encoder:
    """Return the encoder a saved build's queries should use.

    Args:
        directory: The build folder.
        manifest: Its manifest.

    Returns:
        The build's ONNX query encoder (shared by builds that carry the same one) if the
        manifest names one, else the process-wide torch encoder for the model.

    Raises:
        IndexCorruptError: If the manifest names a query encoder the build does not hold.
    """
    ref = manifest.query_encoder
    if ref is None:
        from knowledge.encoder import default_encoder

        logger.warning(
            "Knowledge build %s names no ONNX query encoder; queries are encoded with torch "
            "(run `python -m bot setup`, then rebuild)",
            Path(directory).name,
        )
        return default_encoder()
    from knowledge.encoder import EncoderUnavailableError
    from knowledge.onnx_encoder import load_onnx_encoder

    try:
        return load_onnx_encoder(Path(directory) / ref.path)
    except EncoderUnavailableError as exc:
        raise IndexCorruptError(f"query encoder of {directory}: {exc.message}") from exc


def query_encoder_ref(
    directory: Path | None, encoder: Encoder, *, warn: bool = True
) -> QueryEncoderRef | None:
    """Describe the ONNX export a build made with ``encoder`` would carry.

    Args:
        directory: The export folder (``None``: no export).
        encoder: The encoder that builds the index; the export must come from its model.
        warn: Log why an export is left out.

    Returns:
        The reference for the build's manifest, or ``None`` if the export is missing,
        incomplete or from another model.
    """
    if directory is None:
        return None
    ref, problem = _inspect_export(Path(directory), encoder)
    if problem and warn:
        logger.warning("ONNX query encoder left out of the build: %s", problem)
    return ref


def _inspect_export(directory: Path, encoder: Encoder) -> tuple[QueryEncoderRef | None, str]:
    from knowledge.encoder import EncoderUnavailableError
    from knowledge.onnx_encoder import MODEL_FILE, TOKENIZER_FILE, read_onnx_manifest

    try:
        export = read_onnx_manifest(directory)
    except EncoderUnavailableError as exc:
        return None, exc.message
    missing = [name for name in (MODEL_FILE, TOKENIZER_FILE) if not (directory / name).is_file()]
    if missing:
        return None, f"{directory} lacks {', '.join(missing)}"
    if export.name != encoder.name or export.dimension != encoder.dimension:
        return None, (
            f"{directory} was exported from {export.name} ({export.dimension}-d), "
            f"not {encoder.name} ({encoder.dimension}-d)"
        )
    ref = QueryEncoderRef(
        kind=export.kind,
        model=export.name,
        sha256=export.model_sha256,
        source_sha256=export.source_sha256,
    )
    return ref, ""


def _write_json(path: Path, data: Any, *, compact: bool = False) -> None:
    # compact: json's C encoder (indent forces the pure-Python one: 10x slower at 10k articles)
    text = json.dumps(data, ensure_ascii=False, indent=None if compact else 2)
    path.write_text(text + "\n", encoding="utf-8")


def _read_faiss(path: Path) -> Any:
    if not path.is_file():
        raise IndexCorruptError(f"{path} is missing")
    try:
        return _faiss().read_index(str(path))
    except RuntimeError as exc:
        raise IndexCorruptError(f"cannot read {path}: {exc}") from exc


def _read_articles(path: Path) -> tuple[list[Article], list[VectorSource], dict[str, str]]:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        articles = [
            Article.model_validate({k: v for k, v in item.items() if k != "summary"})
            for item in payload["articles"]
        ]
        sources = [VectorSource.model_validate(item) for item in payload["vectors"]]
        digests = payload.get("source_sha256") or {}
        if not isinstance(digests, dict):
            raise TypeError("source_sha256 must be an object")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IndexCorruptError(f"cannot read {path}: {exc}") from exc
    return articles, sources, {str(key): str(value) for key, value in digests.items()}


def _check_consistent(
    directory: Path,
    manifest: Manifest,
    faiss_index: Any,
    articles: list[Article],
    sources: list[VectorSource],
) -> None:
    problems = []
    if faiss_index.d != manifest.dimension:
        problems.append(f"faiss dimension {faiss_index.d} != manifest {manifest.dimension}")
    if faiss_index.ntotal != manifest.vector_count or len(sources) != manifest.vector_count:
        problems.append(
            f"{faiss_index.ntotal} vectors in faiss, {len(sources)} in {ARTICLES_FILE}, "
            f"{manifest.vector_count} in the manifest"
        )
    ids = [article.id for article in articles]
    if ids != manifest.article_ids:
        problems.append(f"articles in {ARTICLES_FILE} differ from the manifest's article_ids")
    known = set(ids)
    if any(source.article_id not in known for source in sources):
        problems.append("some vectors point to unknown articles")
    if problems:
        raise IndexCorruptError(f"index in {directory} is inconsistent: " + "; ".join(problems))
