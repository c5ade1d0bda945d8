"""Atomic publishing of knowledge indexes and live reloading in running services.

Layout under the index root (``settings.index_dir``)::

    builds/<build-id>/   one saved index per build (the last few are kept)
    current -> builds/<build-id>   symlink to the live build

:func:`publish` saves into a temporary folder inside ``builds/``, renames it to its
final name and then swaps the ``current`` symlink with ``os.replace``, so readers see
either the old build or the new one, never a half-written folder.
:class:`LiveKnowledgeBase` follows ``current`` from inside the action server: a new
build is loaded completely before it replaces the old one, and a build that fails to
load is logged and ignored while the old one keeps serving.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from knowledge.articles import Article, load_articles
from knowledge.encoder import Encoder
from knowledge.head import DEFAULT_HEAD, HeadConfig
from knowledge.index import (
    HEAD_REFIT_MAX_SHARE,
    AnnConfig,
    Hit,
    IndexCorruptError,
    IndexNotBuiltError,
    KnowledgeIndex,
    KnowledgeIndexError,
    Manifest,
    content_hash,
    query_encoder_ref,
    read_manifest,
)
from knowledge.lexical import LexicalConfig
from knowledge.threads import native_thread_report

__all__ = [
    "BUILDS_DIR",
    "CURRENT_LINK",
    "KEEP_BUILDS",
    "LIVE_SETTING",
    "BuildResult",
    "HeadSetting",
    "IndexNotBuiltError",
    "LexicalSetting",
    "LiveKnowledgeBase",
    "build_and_publish",
    "current_build",
    "current_manifest",
    "head_for_next_build",
    "lexical_for_next_build",
    "list_builds",
    "load_current",
    "publish",
    "publish_articles",
]

logger = logging.getLogger(__name__)

LIVE_SETTING: Final = "live"
"""A build setting that carries over from the live build (see :func:`publish_articles`)."""
LexicalSetting = LexicalConfig | None | Literal["live"]
HeadSetting = HeadConfig | None | Literal["live"]

BUILDS_DIR = "builds"
CURRENT_LINK = "current"
KEEP_BUILDS = 3
BUILD_HINT = "run `python -m bot kb build`"
_TEMP_PREFIX = ".tmp-"
_STALE_TEMP_SECONDS = 3600.0


def current_build(root: Path) -> Path | None:
    """Return the build folder ``current`` points to, or ``None`` if there is none.

    Args:
        root: The index root.

    Returns:
        The live build folder, if the link exists and its target is a folder.
    """
    link = Path(root) / CURRENT_LINK
    try:
        target = Path(os.readlink(link))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:  # not a symlink: a plain folder saved by hand still works
        return link if link.is_dir() else None
    resolved = target if target.is_absolute() else Path(root) / target
    return resolved if resolved.is_dir() else None


def current_manifest(root: Path) -> Manifest | None:
    """Return the live build's manifest, or ``None`` if nothing usable is published."""
    build = current_build(root)
    if build is None:
        return None
    try:
        return read_manifest(build)
    except KnowledgeIndexError:
        logger.warning("The live knowledge build %s has no readable manifest", build)
        return None


def list_builds(root: Path) -> list[Path]:
    """Return the finished build folders, oldest first."""
    builds = Path(root) / BUILDS_DIR
    if not builds.is_dir():
        return []
    return sorted(
        path for path in builds.iterdir() if path.is_dir() and not path.name.startswith(".")
    )


def _new_build_id(index: KnowledgeIndex) -> str:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{index.manifest.content_hash[:8]}"


def publish(index: KnowledgeIndex, root: Path, *, keep: int = KEEP_BUILDS) -> Path:
    """Save an index as a new build and make it the live one, atomically.

    Args:
        index: The index to publish.
        root: The index root (created if needed).
        keep: How many builds to keep, including the new one (at least 1).

    Returns:
        The new build folder.

    Raises:
        OSError: If the files cannot be written; the previous build stays live.
        FileExistsError: If ``current`` exists and is not a symlink.
    """
    root = Path(root)
    builds = root / BUILDS_DIR
    builds.mkdir(parents=True, exist_ok=True)
    link = root / CURRENT_LINK
    if link.exists() and not link.is_symlink():
        raise FileExistsError(f"{link} exists and is not a symlink; move it away first")
    temp = builds / f"{_TEMP_PREFIX}{uuid.uuid4().hex}"
    try:
        index.save(temp)
        final = builds / _new_build_id(index)
        while final.exists():
            final = builds / f"{final.name}-{uuid.uuid4().hex[:4]}"
        os.rename(temp, final)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    _fsync_dir(builds)
    _point_current(root, final)
    logger.info("Published knowledge build %s", final.name)
    _prune(root, keep=max(1, keep), live=final)
    return final


def _point_current(root: Path, build: Path) -> None:
    temp_link = root / f"{_TEMP_PREFIX}link-{uuid.uuid4().hex}"
    os.symlink(Path(BUILDS_DIR) / build.name, temp_link)
    try:
        os.replace(temp_link, root / CURRENT_LINK)
    except BaseException:
        temp_link.unlink(missing_ok=True)
        raise
    _fsync_dir(root)


def _fsync_dir(directory: Path) -> None:
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - not supported on every platform
        return
    try:
        os.fsync(descriptor)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(descriptor)


def _prune(root: Path, *, keep: int, live: Path) -> None:
    builds = list_builds(root)
    live_name = (current_build(root) or live).name
    for old in builds[: max(0, len(builds) - keep)]:
        if old.name in (live_name, live.name):
            continue
        logger.info("Removing old knowledge build %s", old.name)
        shutil.rmtree(old, ignore_errors=True)
    now = time.time()
    for temp in (root / BUILDS_DIR).glob(f"{_TEMP_PREFIX}*"):
        try:
            stale = now - temp.stat().st_mtime > _STALE_TEMP_SECONDS
        except OSError:
            continue
        if stale:
            logger.info("Removing abandoned temporary build %s", temp.name)
            shutil.rmtree(temp, ignore_errors=True)


def load_current(root: Path, encoder: Encoder | None = None) -> KnowledgeIndex:
    """Load the live build.

    Args:
        root: The index root.
        encoder: The query encoder (must match the build's model); ``None``: the build's
            own ONNX query encoder, or the torch model if it names none.

    Returns:
        The live index.

    Raises:
        IndexNotBuiltError: If nothing has been published yet.
        IndexMismatchError: If the build was made with another model.
        IndexCorruptError: If the build's files are broken.
    """
    build = current_build(root)
    if build is None:
        raise IndexNotBuiltError(f"no knowledge index has been built in {root}; {BUILD_HINT}")
    return KnowledgeIndex.load(build, encoder)


@dataclass(frozen=True)
class BuildResult:
    """Outcome of :func:`publish_articles`.

    Attributes:
        manifest: The live manifest afterwards.
        build_dir: The live build folder.
        skipped: True if the content was unchanged and nothing was rebuilt.
        seconds: Time spent, including encoding.
        encoded: Texts encoded (the other vectors were reused from the live build).
    """

    manifest: Manifest
    build_dir: Path
    skipped: bool
    seconds: float
    encoded: int = 0

    @property
    def build_id(self) -> str:
        """The live build's id (its folder name)."""
        return self.build_dir.name


def head_for_next_build(live: Manifest | None, setting: HeadSetting) -> HeadConfig | None:
    """The classifier head a new build gets: ``setting``, or the live build's for ``"live"``.

    A live build without a head keeps none only if it could have had one (between 2 and
    ``DEFAULT_HEAD.max_articles`` articles: it was built with ``--no-head``). A knowledge
    base too small or too large for a head, or not built yet, gets
    :data:`~knowledge.head.DEFAULT_HEAD`, which trains once the article count allows.

    Args:
        live: The live build's manifest (:func:`current_manifest`), ``None`` if none.
        setting: What was asked for.
    """
    if setting != LIVE_SETTING:
        return setting
    if live is None:
        return DEFAULT_HEAD
    if live.head is not None or not DEFAULT_HEAD.applies_to(live.article_count):
        return live.head or DEFAULT_HEAD
    return None


def lexical_for_next_build(live: Manifest | None, setting: LexicalSetting) -> LexicalConfig | None:
    """The BM25 setting a new build gets: ``setting``, or ``live``'s for ``"live"``."""
    if setting != LIVE_SETTING:
        return setting
    return live.lexical if live is not None else None


def _is_unchanged(
    root: Path,
    articles: list[Article],
    encoder: Encoder,
    query_encoder_dir: Path | None,
    head: HeadConfig | None,
    lexical: LexicalConfig | None,
) -> Manifest | None:
    manifest = current_manifest(root)
    if manifest is None:
        return None
    expected_head = head if head is not None and head.applies_to(len(articles)) else None
    same = (
        manifest.model == encoder.name
        and manifest.dimension == encoder.dimension
        and manifest.content_hash == content_hash(articles)
        and manifest.query_encoder == query_encoder_ref(query_encoder_dir, encoder, warn=False)
        and manifest.head == expected_head
        and manifest.lexical == lexical
        and manifest.passages
    )
    return manifest if same else None


def publish_articles(
    articles_dir: Path,
    root: Path,
    encoder: Encoder,
    *,
    progress: bool = False,
    force: bool = False,
    query_encoder_dir: Path | None = None,
    head: HeadSetting = LIVE_SETTING,
    reuse: bool = True,
    ann: AnnConfig | None = None,
    encoder_dir: str | None = None,
    lexical: LexicalSetting = LIVE_SETTING,
) -> BuildResult:
    """Load, index and publish the articles, unless the live build already has them.

    Only new or changed texts are encoded: the live build's vectors are reused for the
    rest (see :meth:`KnowledgeIndex.build`'s ``previous``), so publishing one edited
    article costs one article's encoding plus writing the build.

    Args:
        articles_dir: The articles folder.
        root: The index root.
        encoder: Embeds the articles.
        progress: Show a progress bar while encoding.
        force: Rebuild even if the content, model and query encoder are unchanged, and
            train every row of the classifier head again.
        query_encoder_dir: The ONNX query encoder exported from ``encoder``'s model
            (see :meth:`KnowledgeIndex.build`); a different one than the live build's
            means a rebuild.
        head: The classifier head to train; ``None``: none; :data:`LIVE_SETTING` (the
            default): as the live build has it (see :func:`head_for_next_build`), so a
            knowledge base built with ``--no-head`` stays without; a different one than
            the live build's means a rebuild.
        reuse: Reuse the live build's vectors (``False``: encode everything again).
        ann: Which faiss index to build (``None``: :data:`knowledge.index.DEFAULT_ANN`).
        encoder_dir: Where ``encoder``'s model lives relative to ``root`` when it is a
            ``kb tune`` model (recorded in the manifest; see
            :mod:`knowledge.build_encoding`).
        lexical: BM25 re-ranking (:mod:`knowledge.lexical`); ``None``: none;
            :data:`LIVE_SETTING` (the default): as the live build has it, so a knowledge
            base that ranks with BM25 keeps doing so; a different one than the live
            build's means a rebuild (the vectors are reused).

    Returns:
        What happened.

    Raises:
        ArticleError: If any article is invalid; nothing is published and the previous
            build stays live.
    """
    started = time.perf_counter()
    live = current_manifest(root)
    lexical = lexical_for_next_build(live, lexical)
    head = head_for_next_build(live, head)
    previous = _load_previous(root, encoder) if reuse else None
    digests: dict[str, str] = {}
    known = previous.known_sources() if previous is not None else None
    articles = load_articles(articles_dir, known=known, digests=digests)
    if not force:
        existing = _is_unchanged(root, articles, encoder, query_encoder_dir, head, lexical)
        build = current_build(root)
        if existing is not None and build is not None:
            logger.info("Knowledge articles unchanged; keeping build %s", build.name)
            return BuildResult(existing, build, True, time.perf_counter() - started)
    index = KnowledgeIndex.build(
        articles,
        encoder,
        progress=progress,
        query_encoder_dir=query_encoder_dir,
        head=head,
        previous=previous,
        ann=ann,
        source_digests=digests,
        encoder_dir=encoder_dir,
        lexical=lexical,
        # --force: every head row trained again (a large knowledge base's publishes
        # otherwise fit only the changed articles' rows, see KnowledgeIndex.build).
        head_refit_share=0.0 if force else HEAD_REFIT_MAX_SHARE,
    )
    build = publish(index, root)
    seconds = time.perf_counter() - started
    return BuildResult(index.manifest, build, False, seconds, index.encoded_count or 0)


def _load_previous(root: Path, encoder: Encoder) -> KnowledgeIndex | None:
    """Load the live build to reuse its vectors, or ``None`` if there is none usable."""
    build = current_build(root)
    if build is None:
        return None
    try:
        return KnowledgeIndex.load(build, encoder)
    except KnowledgeIndexError as exc:
        logger.info("Not reusing vectors of build %s: %s", build.name, exc.message)
        return None


def build_and_publish(
    articles_dir: Path,
    root: Path,
    encoder: Encoder,
    *,
    progress: bool = False,
    force: bool = False,
    query_encoder_dir: Path | None = None,
    head: HeadSetting = LIVE_SETTING,
    reuse: bool = True,
    ann: AnnConfig | None = None,
    lexical: LexicalSetting = LIVE_SETTING,
) -> Manifest:
    """Load, index and publish the articles; see :func:`publish_articles`.

    Returns:
        The live manifest (the existing one if nothing changed).

    Raises:
        ArticleError: If any article is invalid; the previous build stays live.
    """
    return publish_articles(
        articles_dir,
        root,
        encoder,
        progress=progress,
        force=force,
        query_encoder_dir=query_encoder_dir,
        head=head,
        reuse=reuse,
        ann=ann,
        lexical=lexical,
    ).manifest


class LiveKnowledgeBase:
    """The live index, reloaded when a new build is published.

    Safe to share between threads. Nothing is read until the first search. The first
    search in each thread logs the native thread settings in force there
    (``native threads {...}``, see :mod:`knowledge.threads`).

    Args:
        root: The index root.
        encoder: The query encoder for every build; ``None`` (what the action server
            uses): each build's own ONNX query encoder, so a process that only answers
            questions never loads torch (the torch model for builds that name none).
        check_interval: Minimum seconds between checks of the ``current`` link
            (0 checks on every call).
    """

    def __init__(
        self, root: Path, encoder: Encoder | None = None, *, check_interval: float = 1.0
    ) -> None:
        self._root = Path(root)
        self._encoder = encoder
        self._check_interval = check_interval
        self._index: KnowledgeIndex | None = None
        self._target: str | None = None
        self._failed_target: str | None = None
        self._last_check: float | None = None
        self._lock = threading.Lock()
        self._threads_reported = threading.local()

    @property
    def root(self) -> Path:
        """The index root being followed."""
        return self._root

    @property
    def build_id(self) -> str | None:
        """Name of the loaded build, or ``None`` before the first load."""
        return Path(self._target).name if self._target else None

    def search(
        self, query: str, limit: int = 3, *, audience: str | None = None, raw: bool = False
    ) -> list[Hit]:
        """Search the live index; see :meth:`KnowledgeIndex.search`.

        Raises:
            IndexNotBuiltError: If no build has been published yet.
            KnowledgeIndexError: If there is no loaded build and the live one is broken.
        """
        hits = self._current().search(query, limit, audience=audience, raw=raw)
        if not getattr(self._threads_reported, "done", False):
            # Once per searching thread, read back there: OpenMP settings are per thread.
            self._threads_reported.done = True
            logger.info("native threads %s", json.dumps(self.runtime_report(), sort_keys=True))
        return hits

    def runtime_report(self) -> dict[str, Any]:
        """Describe what serves searches in the calling thread (see :mod:`knowledge.threads`).

        Returns:
            :func:`knowledge.threads.native_thread_report` for the query encoder, plus
            ``thread`` (this thread's name), ``build`` (the loaded build or ``None``) and
            ``encoder`` (the query encoder's class and name).
        """
        index = self._index
        encoder = index.encoder if index is not None else self._encoder
        report = native_thread_report(encoder)
        report["thread"] = threading.current_thread().name
        report["build"] = self.build_id
        report["encoder"] = None if encoder is None else f"{type(encoder).__name__}:{encoder.name}"
        return report

    def article(self, article_id: str) -> Article | None:
        """Return an article of the live index by id, or ``None``."""
        return self._current().article(article_id)

    def out_of_scope_articles(self) -> list[Article]:
        """The live index's out-of-scope articles (:attr:`KnowledgeIndex.out_of_scope_articles`)."""
        return self._current().out_of_scope_articles

    def best_hit_in(self, article_id: str, query: str) -> Hit | None:
        """One article's hit for a question; see :meth:`KnowledgeIndex.best_hit_in`."""
        return self._current().best_hit_in(article_id, query)

    @property
    def manifest(self) -> Manifest:
        """The live index's manifest (loads the index if needed)."""
        return self._current().manifest

    def is_ready(self) -> bool:
        """Return whether a build is loaded or can be loaded now, without raising."""
        try:
            self._current()
        except KnowledgeIndexError:
            return False
        return True

    def refresh(self) -> bool:
        """Check the ``current`` link now and load a new build if it changed.

        Returns:
            True if a new build was swapped in.
        """
        with self._lock:
            return self._reload_if_changed()

    def _current(self) -> KnowledgeIndex:
        index = self._index
        if index is not None and not self._due():
            return index
        if index is None:
            with self._lock:  # first load: wait for whoever is loading
                if self._index is None or self._due():
                    self._reload_if_changed()
        elif self._lock.acquire(blocking=False):  # others keep serving the old build
            try:
                if self._due():
                    self._reload_if_changed()
            finally:
                self._lock.release()
        if self._index is None:
            return self._load_first()
        return self._index

    def _due(self) -> bool:
        if self._last_check is None:
            return True
        return time.monotonic() - self._last_check >= self._check_interval

    def _resolve_target(self) -> str | None:
        link = self._root / CURRENT_LINK
        try:
            return os.readlink(link)
        except FileNotFoundError:
            return None
        except OSError:
            return str(link) if link.is_dir() else None

    def _reload_if_changed(self) -> bool:
        """Load the build ``current`` points to if it is new; call with the lock held."""
        self._last_check = time.monotonic()
        target = self._resolve_target()
        if target is None:
            if self._index is not None:
                logger.warning(
                    "%s/%s disappeared; serving the loaded build", self._root, CURRENT_LINK
                )
            return False
        if target == self._target or (target == self._failed_target and self._index is not None):
            return False
        build = Path(target) if Path(target).is_absolute() else self._root / target
        try:
            new_index = KnowledgeIndex.load(build, self._encoder)
        except Exception as exc:
            self._failed_target = target
            if self._index is None:
                if isinstance(exc, KnowledgeIndexError):
                    raise
                raise IndexCorruptError(f"cannot load knowledge build {build}: {exc}") from exc
            logger.exception(
                "Could not load knowledge build %s; still serving %s", build, self.build_id
            )
            return False
        self._index, self._target, self._failed_target = new_index, target, None
        logger.info(
            "Loaded knowledge build %s (%d articles)", build.name, new_index.manifest.article_count
        )
        return True

    def _load_first(self) -> KnowledgeIndex:
        raise IndexNotBuiltError(f"no knowledge index has been built in {self._root}; {BUILD_HINT}")
