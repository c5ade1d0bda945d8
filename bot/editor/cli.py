"""``python -m bot kb publish|history|rollback|import|export``: the editor's verbs.

Usage:
    python -m bot kb publish              # put the saved (or approved) revisions live
    python -m bot kb history ARTICLE_ID   # revisions with author, time and state
    python -m bot kb history ARTICLE_ID --diff 2 3
    python -m bot kb rollback ARTICLE_ID 2   # new revision with revision 2's text
    python -m bot kb import [--articles-dir DIR]   # seed Markdown into empty editor tables
    python -m bot kb export DIR           # the live articles as Markdown (kb build reads them)

The articles live in the app database (see docs/architecture.md, "Where the articles'
truth lives"); these verbs work on it like the browser editor does, and are audited as
``cli``. The other ``kb`` verbs (validate, build, search, new, list, eval, ...) belong to
the knowledge library's own CLI (:mod:`knowledge.editor`).
"""

from __future__ import annotations

import argparse
import getpass
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from bot.config import Settings
from bot.db.session import create_db_engine, create_session_factory
from bot.editor import publishing, service
from bot.editor.diff import diff_text
from bot.editor.errors import EditorError
from bot.editor.models import KbArticle
from bot.editor.publishing import PublishResult, publish, publish_target
from bot.editor.service import Actor
from knowledge.editor import add_ranking_options, head_setting, lexical_setting
from knowledge.store import HeadSetting, LexicalSetting

if TYPE_CHECKING:
    from sqlalchemy.orm import sessionmaker

    from knowledge.tuning import TunedPublisher

logger = logging.getLogger(__name__)

VERBS = ("publish", "history", "rollback", "import", "export")
PROG = "python -m bot kb"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def create_argument_parser(settings: Settings) -> argparse.ArgumentParser:
    """The parser for the database verbs of ``python -m bot kb``."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Work on the knowledge base kept in the app database (the browser "
        "editor's articles).",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    publish_cmd = verbs.add_parser(
        "publish",
        help="validate, build and put live the newest saved revisions",
        description="Build the index from the database and swap it in; running action "
        "servers answer from it within seconds. "
        + (
            "Only revisions a lead approved are published (CONCIERGE_KB_REQUIRE_REVIEW)."
            if settings.kb_require_review
            else "Saved drafts are published (set CONCIERGE_KB_REQUIRE_REVIEW=1 to require "
            "a lead's approval)."
        ),
    )
    publish_cmd.add_argument(
        "--force",
        action="store_true",
        help="rebuild even if the live build has this content, training every row of the "
        "classifier head again",
    )
    add_ranking_options(publish_cmd)
    history = verbs.add_parser("history", help="an article's revisions with author, time and state")
    history.add_argument("article_id", metavar="ARTICLE_ID", help="e.g. returns-start-a-return")
    history.add_argument(
        "--diff",
        nargs=2,
        type=int,
        metavar=("N", "M"),
        help="also print the changes from revision N to revision M",
    )
    rollback = verbs.add_parser(
        "rollback",
        help="save an earlier revision's text as a new revision (then publish)",
        description="History is never rewritten: the old text becomes the newest revision.",
    )
    rollback.add_argument("article_id", metavar="ARTICLE_ID")
    rollback.add_argument("revision", type=int, metavar="REVISION", help="revision number")
    importer = verbs.add_parser(
        "import",
        help="load Markdown articles into the database when it holds none (set-up does this)",
    )
    importer.add_argument(
        "--articles-dir",
        type=Path,
        default=settings.articles_dir,
        help=f"folder of article .md files (default: {settings.articles_dir})",
    )
    exporter = verbs.add_parser(
        "export",
        help="write the live articles as Markdown files (`kb build --articles-dir DIR` reads them)",
    )
    exporter.add_argument("directory", type=Path, metavar="DIR", help="target folder")
    return parser


def command_line_actor() -> Actor:
    """Who acts at the command line: the login name, with every right."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - no login name in some containers
        user = "unknown"
    return Actor(None, f"{user} (command line)", "admin", "cli")


def tuned_publisher(
    settings: Settings,
    factory: sessionmaker[Session],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> TunedPublisher:
    """How ``kb tune`` publishes once the database holds the articles.

    :func:`bot.editor.publishing.tuned_publisher`, audited as the command line's user.
    """
    return publishing.tuned_publisher(
        factory,
        publish_target(settings),
        actor=command_line_actor(),
        require_review=settings.kb_require_review,
        sleep=sleep,
    )


def database_has_articles(settings: Settings) -> bool:
    """Whether the app database exists, is migrated and holds editor articles."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and (
        not url.database or not Path(url.database).expanduser().is_file()
    ):
        return False
    engine = create_db_engine(settings.database_url)
    try:
        if not inspect(engine).has_table(KbArticle.__tablename__):
            return False
        with create_session_factory(engine)() as session:
            return database_has_articles_in(session)
    except Exception as exc:  # no database to talk to: the folder is the truth
        logger.info("editor tables not readable (%s); using the articles folder", exc)
        return False
    finally:
        engine.dispose()


def export_live_articles(settings: Settings, directory: Path) -> int:
    """Write the published articles as Markdown into ``directory``; returns how many."""
    engine = create_db_engine(settings.database_url)
    try:
        with create_session_factory(engine)() as session:
            return len(service.export_articles(session, directory))
    finally:
        engine.dispose()


def database_has_articles_in(session: Session) -> bool:
    """Whether the editor tables of an open (migrated) database hold any article."""
    return session.scalar(select(KbArticle.id).limit(1)) is not None


def main(argv: Sequence[str], settings: Settings) -> int:
    """Run one database verb; returns the exit code."""
    parser = create_argument_parser(settings)
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_FAILURE
    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    engine = create_db_engine(settings.database_url)
    factory = create_session_factory(engine)
    try:
        if args.verb == "publish":
            return run_publish(
                factory,
                settings,
                out,
                force=args.force,
                lexical=lexical_setting(args),
                head=head_setting(args),
                use_tuned=not args.base_model,
            )
        if args.verb == "history":
            return _history(factory, out, args.article_id, args.diff)
        if args.verb == "rollback":
            with factory() as session:
                revision = service.rollback(
                    session,
                    article_id=args.article_id,
                    number=args.revision,
                    actor=command_line_actor(),
                )
            out.print(
                f"Saved revision {revision.number} of {args.article_id} with the text of "
                f"revision {args.revision}. Run `{PROG} publish` to put it live."
            )
            return EXIT_OK
        if args.verb == "import":
            with factory() as session:
                count = service.import_articles(
                    session, args.articles_dir, actor=command_line_actor()
                )
            if count:
                out.print(f"Imported {count} articles from {args.articles_dir}.")
            else:
                out.print("The database already holds articles; nothing imported.")
            return EXIT_OK
        if args.verb == "export":
            with factory() as session:
                files = service.export_articles(session, args.directory)
            out.print(f"Wrote {len(files)} live articles to {args.directory}.")
            return EXIT_OK
    except EditorError as error:
        err.print(f"[red]✗ {escape(error.message)}[/]")
        for field, message in error.problems[:20]:
            err.print(f"  {escape(field or '-')}: {escape(message)}")
        return EXIT_FAILURE
    finally:
        engine.dispose()
    raise AssertionError(f"unhandled verb {args.verb}")


def run_publish(
    factory: object,
    settings: Settings,
    out: Console,
    *,
    force: bool = False,
    lexical: LexicalSetting = "live",
    head: HeadSetting = "live",
    use_tuned: bool = True,
) -> int:
    """Publish from the database with a progress bar; print what changed."""
    from sqlalchemy.orm import sessionmaker

    assert isinstance(factory, sessionmaker)
    with factory() as session:
        pending = service.pending_changes(session, require_review=settings.kb_require_review)
    if pending:
        out.print(f"Publishing {len(pending)} change(s):")
        for article_id, kind in pending:
            out.print(f"  {kind:<8} {article_id}")
    else:
        out.print("No saved changes are waiting; checking the live build matches the database.")
    result = publish(
        factory,
        publish_target(settings),
        actor=command_line_actor(),
        require_review=settings.kb_require_review,
        progress=True,
        force=force,
        lexical=lexical,
        head=head,
        use_tuned=use_tuned,
    )
    state = "already live (unchanged)" if result.skipped else "is live"
    out.print(
        f"[green]✓[/] Build {result.build_id} {state}: {result.articles} articles "
        f"(publication {result.publication_id}, {result.encoded} texts encoded, "
        f"{result.seconds:.1f} s)."
    )
    return EXIT_OK


def _history(factory: object, out: Console, article_id: str, diff: list[int] | None) -> int:
    from sqlalchemy.orm import sessionmaker

    assert isinstance(factory, sessionmaker)
    with factory() as session:
        article = service.get_article(session, article_id)
        revisions = service.revisions_of(session, article_id)
        table = Table(title=f"{article_id}{' (retired)' if article.retired else ''}")
        for column in ("Revision", "Author", "Saved (UTC)", "State", "Note / review"):
            table.add_column(column)
        for revision in revisions:
            remark = revision.note
            if revision.review_comment:
                remark = f"{remark} · review: {revision.review_comment}".strip(" ·")
            table.add_row(
                str(revision.number),
                escape(revision.author_name or "-"),
                revision.created_at.strftime("%Y-%m-%d %H:%M"),
                revision.state.replace("_", " "),
                escape(remark),
            )
        out.print(table)
        if diff:
            old = service.get_revision(session, article_id, diff[0])
            new = service.get_revision(session, article_id, diff[1])
            text = diff_text(
                old.content,
                new.content,
                old_label=f"{article_id} revision {old.number}",
                new_label=f"{article_id} revision {new.number}",
            )
            out.print(escape(text) if text else "No differences.", markup=True)
    return EXIT_OK


def seed_and_publish(settings: Settings, *, progress: bool = True) -> tuple[int, PublishResult]:
    """Set-up's knowledge step: import the seed articles into empty editor tables, publish.

    Args:
        settings: The deployment (database migrated already).
        progress: Show the encoder's progress bar.

    Returns:
        How many articles were imported (0: the database already held them) and the
        publication.

    Raises:
        EditorError: The seed articles or the live set are invalid, or another publish
            is running; the live index is unchanged.
    """
    engine = create_db_engine(settings.database_url)
    factory = create_session_factory(engine)
    try:
        with factory() as session:
            imported = service.import_articles(session, settings.articles_dir, actor=_setup_actor())
        result = publish(
            factory,
            publish_target(settings),
            actor=_setup_actor(),
            require_review=settings.kb_require_review,
            progress=progress,
        )
    finally:
        engine.dispose()
    return imported, result


def _setup_actor() -> Actor:
    return Actor(None, "set-up", "admin", "setup")


def database_content_hash(settings: Settings) -> str | None:
    """The content hash a publish from the database would build now (``None``: no articles).

    ``python -m bot doctor`` compares it with the live build's to tell whether saved
    changes are waiting to be published.
    """
    if not database_has_articles(settings):
        return None
    from knowledge.index import content_hash

    engine = create_db_engine(settings.database_url)
    try:
        with create_session_factory(engine)() as session:
            entries = service.live_set(session, require_review=settings.kb_require_review)
        return content_hash([entry.article for entry in entries])
    finally:
        engine.dispose()
