"""Publish the knowledge base from the database: one publisher at a time, atomic swap.

:func:`publish` runs in a worker thread (the web route) or at the command line:

1. **Lock.** A publication row is inserted as ``running`` and the single
   ``kb_publish_lock`` row is taken with a conditional ``UPDATE ... WHERE publication_id
   IS NULL`` in the same transaction. The database serialises the two UPDATEs (SQLite's
   write lock, PostgreSQL's row lock), so of two editors clicking at the same moment, on
   any replica, one gets the lock and the other :class:`PublishBusyError` ("try again in
   a few seconds"). A lock older than :data:`STALE_LOCK_SECONDS` (two hours: a crashed
   process) is taken over and its publication marked failed.
2. **Set.** The articles that would go live (:func:`bot.editor.service.live_set`) are
   written as Markdown into a temporary folder and validated by the knowledge library.
3. **Build.** :func:`knowledge.store.publish_articles` encodes, indexes and swaps the
   ``current`` link atomically: running action servers pick the new build up within
   about a second, and a failed build leaves the live one untouched.
4. **Record.** The revisions put live become ``published`` (the ones they replace
   ``superseded``), the publication ``succeeded`` with its build id, and an audit event
   ``kb.published`` is written (``kb.publish_failed`` on failure); then the lock is
   released, also on failure.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.audit.service import record_event
from bot.db.base import utcnow
from bot.editor.errors import EditorError, PublishBusyError, PublishFailedError
from bot.editor.markdown import article_markdown
from bot.editor.models import (
    KbArticle,
    KbPublication,
    KbPublishLock,
    KbRevision,
    PublicationStatus,
    RevisionState,
)
from bot.editor.service import Actor, LiveEntry, live_set, pending_changes, published_set

if TYPE_CHECKING:
    from bot.config import Settings
    from knowledge.build_encoding import BuildEncoding
    from knowledge.encoder import Encoder
    from knowledge.head import HeadConfig
    from knowledge.lexical import LexicalConfig
    from knowledge.store import HeadSetting, LexicalSetting
    from knowledge.tuning import TunedEncoder, TunedPublisher

logger = logging.getLogger(__name__)

# A tune that finds an editor publishing waits for the lock (a publish takes seconds).
TUNE_PUBLISH_ATTEMPTS = 20
TUNE_PUBLISH_WAIT_SECONDS = 3.0
LOCK_ROW_ID = 1
# Longer than any build (a full 10,000-article build is minutes); only a crashed process's
# lock is this old.
STALE_LOCK_SECONDS = 2 * 60 * 60
BUSY_MESSAGE = "Another publish is running right now; try again in a few seconds."


@dataclass(frozen=True)
class PublishTarget:
    """Where builds go and what they are built with.

    Attributes:
        index_dir: The index root (``builds/`` and ``current``).
        query_encoder_dir: The ONNX query encoder each build carries (``None``: none).
        encoder: Returns the document encoder (the torch MiniLM, loaded on first use).
    """

    index_dir: Path
    query_encoder_dir: Path | None
    encoder: Callable[[], Encoder]


@dataclass(frozen=True)
class PublishResult:
    """What a publish did.

    Attributes:
        publication_id: The publication's sequence number.
        build_id: The live build afterwards.
        skipped: The live build already had exactly this content.
        articles: How many articles are live.
        changes: ``(article_id, kind)`` that this publish put live.
        seconds: Time from lock to record.
        encoded: Texts the build encoded (the others reused the live build's vectors).
    """

    publication_id: int
    build_id: str
    skipped: bool
    articles: int
    changes: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    encoded: int = 0


def acquire_lock(factory: sessionmaker[Session], *, actor: Actor) -> int:
    """Insert a running publication and take the publisher row for it.

    Returns:
        The publication id holding the lock.

    Raises:
        PublishBusyError: Another publication holds the lock.
    """
    now = utcnow()
    stale_before = now - dt.timedelta(seconds=STALE_LOCK_SECONDS)
    with factory() as session:
        publication = KbPublication(
            actor=actor.audit,
            agent_id=actor.agent_id,
            status=PublicationStatus.RUNNING.value,
            revisions={},
            error="",
        )
        session.add(publication)
        session.flush()
        holder = session.scalar(
            select(KbPublishLock.publication_id).where(KbPublishLock.id == LOCK_ROW_ID)
        )
        taken = session.execute(
            update(KbPublishLock)
            .where(
                KbPublishLock.id == LOCK_ROW_ID,
                (KbPublishLock.publication_id.is_(None))
                | (KbPublishLock.acquired_at < stale_before),
            )
            .values(publication_id=publication.id, acquired_at=now)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            session.rollback()
            logger.info("kb publish refused: lock held by publication=%s", holder)
            raise PublishBusyError(BUSY_MESSAGE)
        if holder is not None and holder != publication.id:
            old = session.get(KbPublication, holder)
            if old is not None and old.status == PublicationStatus.RUNNING.value:
                old.status = PublicationStatus.FAILED.value
                old.error = "abandoned: the process publishing it stopped"
                old.finished_at = now
        session.commit()
        return publication.id


def release_lock(factory: sessionmaker[Session], publication_id: int) -> None:
    """Free the publisher row if this publication holds it."""
    with factory() as session:
        session.execute(
            update(KbPublishLock)
            .where(KbPublishLock.id == LOCK_ROW_ID, KbPublishLock.publication_id == publication_id)
            .values(publication_id=None, acquired_at=None)
            .execution_options(synchronize_session=False)
        )
        session.commit()


def write_articles(entries: list[LiveEntry], directory: Path) -> None:
    """Write the live set as Markdown files, the format ``kb build`` reads."""
    for entry in entries:
        (directory / f"{entry.article.id}.md").write_text(
            article_markdown(entry.article), encoding="utf-8"
        )


def publish(
    factory: sessionmaker[Session],
    target: PublishTarget,
    *,
    actor: Actor,
    require_review: bool,
    progress: bool = False,
    force: bool = False,
    before_build: Callable[[], None] | None = None,
    lexical: LexicalSetting = "live",
    head: HeadSetting = "live",
    use_tuned: bool = True,
    encoding: BuildEncoding | None = None,
    live_only: bool = False,
    note: str | None = None,
) -> PublishResult:
    """Publish the knowledge base from the database (see the module docstring).

    Args:
        factory: Session factory of the app database.
        target: Index root, query encoder and document encoder.
        actor: Who publishes.
        require_review: Whether only approved revisions go live.
        progress: Show the encoder's progress bar (command line).
        force: Rebuild even if the live build already has this content.
        before_build: Called with the lock held, before building (tests use it to
            hold the lock while a second publish tries).
        lexical: BM25 re-ranking (``kb publish --bm25``); default: as the live build has
            it (see :func:`knowledge.store.publish_articles`).
        head: The classifier head (``kb publish --no-head``: none; ``--head``:
            :data:`knowledge.head.DEFAULT_HEAD`); default: as the live build has it (see
            :func:`knowledge.store.head_for_next_build`), so an editor's publish keeps an
            operator's ``--no-head``.
        use_tuned: Encode with the live build's tuned model if it has one (``kb publish
            --base-model``: back to the packaged model).
        encoding: Encode with this instead (a freshly tuned model; ``use_tuned`` is
            then ignored).
        live_only: Rebuild the articles that are live now, each at its published
            revision; saved changes wait for an editor's publish (``kb tune``).
        note: Recorded with the publication's audit event (e.g. the tuned encoder).

    Returns:
        What was published.

    Raises:
        PublishBusyError: Another publish is running.
        PublishFailedError: Validation or the build failed; the live index is unchanged.
    """
    from knowledge.articles import ArticleError
    from knowledge.build_encoding import encoding_for_next_build
    from knowledge.store import publish_articles

    started = time.perf_counter()
    publication_id = acquire_lock(factory, actor=actor)
    try:
        with factory() as session:
            if live_only:
                entries, changes = published_set(session), []
            else:
                entries = live_set(session, require_review=require_review)
                changes = pending_changes(session, require_review=require_review)
        if not entries:
            raise PublishFailedError("Nothing would be live: publish at least one article first.")
        if before_build is not None:
            before_build()
        # A tuned knowledge base (kb tune) stays tuned: the live build's model encodes.
        encoding = encoding or encoding_for_next_build(
            target.index_dir,
            default=target.encoder,
            default_query_encoder_dir=target.query_encoder_dir,
            use_tuned=use_tuned,
        )
        with tempfile.TemporaryDirectory(prefix="kb-publish-") as folder:
            write_articles(entries, Path(folder))
            result = publish_articles(
                Path(folder),
                target.index_dir,
                encoding.encoder,
                progress=progress,
                force=force,
                query_encoder_dir=encoding.query_encoder_dir,
                encoder_dir=encoding.encoder_dir,
                lexical=lexical,
                head=head,
            )
        seconds = time.perf_counter() - started
        _record_success(
            factory,
            publication_id,
            entries,
            build_id=result.build_id,
            actor=actor,
            changes=changes,
            seconds=seconds,
            note=note,
        )
    except ArticleError as exc:
        problems = "; ".join(str(problem).split(": ", 1)[-1] for problem in exc.problems[:5])
        _record_failure(factory, publication_id, f"invalid articles: {problems}", actor)
        raise PublishFailedError(
            f"Nothing was published: some articles are invalid ({problems})."
        ) from exc
    except PublishFailedError as exc:
        _record_failure(factory, publication_id, exc.message, actor)
        raise
    except Exception as exc:
        logger.exception("kb publish failed publication=%s", publication_id)
        _record_failure(factory, publication_id, f"{type(exc).__name__}: {exc}", actor)
        raise PublishFailedError(
            "The build failed, so nothing was published; the bot keeps answering from the "
            f"previous version. (publication {publication_id})"
        ) from exc
    finally:
        release_lock(factory, publication_id)
    logger.info(
        "kb published publication=%s build=%s articles=%d changes=%d in %.2fs",
        publication_id,
        result.build_id,
        len(entries),
        len(changes),
        seconds,
    )
    return PublishResult(
        publication_id,
        result.build_id,
        result.skipped,
        len(entries),
        changes,
        seconds,
        int(getattr(result, "encoded", 0)),
    )


def _record_success(
    factory: sessionmaker[Session],
    publication_id: int,
    entries: list[LiveEntry],
    *,
    build_id: str,
    actor: Actor,
    changes: list[tuple[str, str]],
    seconds: float,
    note: str | None = None,
) -> None:
    now = utcnow()
    live = {entry.article.id: entry for entry in entries}
    with factory() as session:
        for article in session.scalars(select(KbArticle)):
            entry = live.get(article.id)
            if entry is None:
                article.in_live_build = False
                continue
            previous = article.published_revision_id
            if previous is not None and previous != entry.revision_id:
                old = session.get(KbRevision, previous)
                if old is not None and old.state == RevisionState.PUBLISHED.value:
                    old.state = RevisionState.SUPERSEDED.value
            revision = session.get(KbRevision, entry.revision_id)
            if revision is not None:
                revision.state = RevisionState.PUBLISHED.value
                revision.published_at = revision.published_at or now
            article.published_revision_id = entry.revision_id
            article.in_live_build = True
        publication = session.get(KbPublication, publication_id)
        assert publication is not None
        publication.status = PublicationStatus.SUCCEEDED.value
        publication.finished_at = now
        publication.build_id = build_id
        publication.seconds = round(seconds, 3)
        publication.revisions = {
            "live": {article_id: entry.revision_id for article_id, entry in live.items()},
            "changes": [list(change) for change in changes],
        }
        record_event(
            session,
            actor=actor.audit,
            action="kb.published",
            details={
                "publication": publication_id,
                "build": build_id,
                "changes": [f"{kind}:{article_id}" for article_id, kind in changes][:200],
                **({"note": note} if note else {}),
            },
        )
        session.commit()


def _record_failure(
    factory: sessionmaker[Session], publication_id: int, error: str, actor: Actor
) -> None:
    with factory() as session:
        publication = session.get(KbPublication, publication_id)
        if publication is not None:
            publication.status = PublicationStatus.FAILED.value
            publication.finished_at = utcnow()
            publication.error = error[:4000]
        record_event(
            session,
            actor=actor.audit,
            action="kb.publish_failed",
            details={"publication": publication_id, "error": error[:500]},
        )
        session.commit()


def recent_publications(session: Session, limit: int = 10) -> list[KbPublication]:
    """The latest publish attempts, newest first."""
    return list(
        session.scalars(select(KbPublication).order_by(KbPublication.id.desc()).limit(limit))
    )


# -- for the command line and tune jobs ------------------------------------------------------


def publish_target(settings: Settings) -> PublishTarget:
    """The deployment's index root, ONNX query encoder and the torch document encoder."""
    from knowledge import encoder as encoder_module
    from knowledge.onnx_encoder import EXPORT_DIRNAME

    return PublishTarget(
        settings.index_dir,
        settings.models_dir / EXPORT_DIRNAME,
        lambda: encoder_module.default_encoder(),
    )


def tuned_publisher(
    factory: sessionmaker[Session],
    target: PublishTarget,
    *,
    actor: Actor,
    require_review: bool,
    sleep: Callable[[float], None] = time.sleep,
) -> TunedPublisher:
    """How a tune publishes once the database holds the articles (``kb tune``, tune jobs).

    A tune takes minutes, and editors may publish meanwhile. So the tuned model is put
    live like any publish: under the publish lock (waiting up to a minute for an
    editor's publish to finish), with the articles live *at that moment* at their
    published revisions (saved changes still wait for an editor's Publish), recorded as
    a publication and audited with the encoder's name, as ``actor``.
    """

    def publish_tuned(
        tuned: TunedEncoder, head: HeadConfig | None, lexical: LexicalConfig | None
    ) -> Path:
        from knowledge.build_encoding import BuildEncoding
        from knowledge.tuning import TuningError

        encoding = BuildEncoding(tuned.encoder(), tuned.query_encoder_dir, tuned.encoder_dir)
        for attempt in range(1, TUNE_PUBLISH_ATTEMPTS + 1):
            try:
                result = publish(
                    factory,
                    target,
                    actor=actor,
                    require_review=require_review,
                    progress=True,
                    force=True,
                    head=head,
                    lexical=lexical,
                    encoding=encoding,
                    live_only=True,
                    note=f"kb tune: {tuned.name}",
                )
            except PublishBusyError as exc:
                if attempt == TUNE_PUBLISH_ATTEMPTS:
                    raise TuningError(_not_published(tuned, exc.message)) from exc
                sleep(TUNE_PUBLISH_WAIT_SECONDS)
            except EditorError as exc:
                raise TuningError(_not_published(tuned, exc.message)) from exc
            else:
                from knowledge.store import BUILDS_DIR

                return Path(target.index_dir) / BUILDS_DIR / result.build_id
        raise AssertionError("unreachable")

    return publish_tuned


def _not_published(tuned: TunedEncoder, reason: str) -> str:
    return (
        f"the encoder was tuned ({tuned.encoder_dir}) but nothing was published: {reason} "
        "The bot keeps answering from the live build; run kb tune again."
    )
