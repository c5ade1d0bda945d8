"""Command-line tool for knowledge-base editors: check, build, try and create articles.

Usage:
    python -m knowledge.editor validate            # check every article, exit 1 on problems
    python -m knowledge.editor build [--force]     # validate, encode and publish the index
    python -m knowledge.editor search "how do I return an item?" [--limit 5]
    python -m knowledge.editor new --id returns-label-lost --title "I lost my return label"
    python -m knowledge.editor list                # id, audience, updated, title

``python -m knowledge`` and ``python -m bot kb ...`` run the same commands. The articles
folder and index root default to the settings (``CONCIERGE_ARTICLES_DIR`` and
``CONCIERGE_INDEX_DIR``); override them with ``--articles-dir`` and ``--index-dir``.
A failed build never touches the live index: running services keep answering from the
last good build and pick up a new one within a second of it being published.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from knowledge.articles import (
    AUDIENCES,
    ArticleError,
    ArticleProblem,
    find_article_files,
    is_valid_id,
    render_new_article,
    scan_articles,
    validate_articles,
)
from knowledge.encoder import Encoder, EncoderUnavailableError, default_encoder
from knowledge.index import KnowledgeIndexError
from knowledge.store import load_current, publish_articles

__all__ = ["create_argument_parser", "main"]

logger = logging.getLogger(__name__)

DEFAULT_PROG = "python -m knowledge.editor"
DEFAULT_OWNER = "support-team"
DEFAULT_AUDIENCE = "all"
EXIT_OK = 0
EXIT_FAILURE = 1


def article_id(value: str) -> str:
    """Argparse type for article ids.

    Args:
        value: The command-line value.

    Returns:
        The id, unchanged.

    Raises:
        argparse.ArgumentTypeError: If it is not a lowercase slug.
    """
    if not is_valid_id(value):
        suggestion = "-".join("".join(c if c.isalnum() else " " for c in value.lower()).split())
        hint = f"; try '{suggestion}'" if suggestion and is_valid_id(suggestion) else ""
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a valid article id: use lowercase letters, digits and single "
            f"hyphens, like 'returns-start-a-return'{hint}"
        )
    return value


def non_empty(value: str) -> str:
    """Argparse type for required free text.

    Raises:
        argparse.ArgumentTypeError: If the value is blank.
    """
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return value.strip()


def positive_int(value: str) -> int:
    """Argparse type for a count of at least 1.

    Raises:
        argparse.ArgumentTypeError: If the value is not a whole number of at least 1.
    """
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value!r}")
    return number


def create_argument_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """Build the parser for the editor's subcommands.

    Args:
        prog: Program name shown in usage messages (``python -m bot kb`` when embedded).

    Returns:
        The parser.
    """
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--articles-dir",
        type=Path,
        default=None,
        help="folder of article .md files (default: CONCIERGE_ARTICLES_DIR or knowledge/articles)",
    )
    common.add_argument(
        "--index-dir",
        type=Path,
        default=None,
        help="index root holding builds/ and current (default: CONCIERGE_INDEX_DIR or var/index)",
    )
    common.add_argument("-v", "--verbose", action="store_true", help="show log messages")

    parser = argparse.ArgumentParser(
        prog=prog or DEFAULT_PROG,
        description="Check, build, search and create knowledge-base articles.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser(
        "validate", parents=[common], help="check every article and report problems"
    )

    build = commands.add_parser(
        "build", parents=[common], help="validate, encode and publish a new live index"
    )
    build.add_argument(
        "--force", action="store_true", help="rebuild even if the articles have not changed"
    )

    search = commands.add_parser("search", parents=[common], help="ask the live index a question")
    search.add_argument("query", type=non_empty, help="the question, in quotes")
    search.add_argument(
        "--limit", type=positive_int, default=None, help="how many articles to show"
    )
    search.add_argument(
        "--audience", choices=("b2c", "b2b"), default=None, help="only articles for this audience"
    )

    new = commands.add_parser(
        "new", parents=[common], help="create a new article from the template"
    )
    new.add_argument(
        "--id",
        dest="article_id",
        metavar="ID",
        type=article_id,
        required=True,
        help="slug, e.g. returns-label-lost",
    )
    new.add_argument(
        "--title", type=non_empty, required=True, help="the question the article answers"
    )
    new.add_argument(
        "--audience", choices=AUDIENCES, default=DEFAULT_AUDIENCE, help="who may see it"
    )
    new.add_argument(
        "--owner", type=non_empty, default=DEFAULT_OWNER, help="team that owns the content"
    )

    commands.add_parser("list", parents=[common], help="list the articles")
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    prog: str | None = None,
    encoder: Encoder | None = None,
) -> int:
    """Run the editor CLI.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).
        prog: Program name for usage messages.
        encoder: Encoder for ``build`` and ``search`` (default: the real model).

    Returns:
        0 on success, 1 on problems or failures, 2 on usage errors.
    """
    parser = create_argument_parser(prog)
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:  # --help or a usage error: hand the code back to the caller
        return exc.code if isinstance(exc.code, int) else EXIT_FAILURE
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    _fill_defaults(args)
    handlers = {
        "validate": _validate,
        "build": _build,
        "search": _search,
        "new": _new,
        "list": _list,
    }
    try:
        return handlers[args.command](args, out, err, encoder)
    except (KnowledgeIndexError, EncoderUnavailableError) as exc:
        err.print(f"[red]error:[/red] {_escape(exc.message)}")
        return EXIT_FAILURE


def _fill_defaults(args: argparse.Namespace) -> None:
    if args.articles_dir is not None and args.index_dir is not None:
        return
    from bot.config import get_settings

    settings = get_settings()
    if args.articles_dir is None:
        args.articles_dir = settings.articles_dir
    if args.index_dir is None:
        args.index_dir = settings.index_dir


def _escape(text: object) -> str:
    from rich.markup import escape

    return escape(str(text))


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _problem_line(problem: ArticleProblem) -> str:
    return f"{_display(problem.path)}: {problem.field or '-'}: {problem.message}"


def _print_problems(out: Console, problems: list[ArticleProblem]) -> None:
    for problem in problems:
        out.print(_problem_line(problem), markup=False)
    files = len({problem.path for problem in problems})
    noun = "problem" if len(problems) == 1 else "problems"
    where = "file" if files == 1 else "files"
    out.print(f"[red]✗ {len(problems)} {noun} in {files} {where}[/red]")


def _validate(args: argparse.Namespace, out: Console, err: Console, encoder: Encoder | None) -> int:
    problems = validate_articles(args.articles_dir)
    checked = len(find_article_files(args.articles_dir)) if args.articles_dir.is_dir() else 0
    if problems:
        _print_problems(out, problems)
        out.print(f"{checked} article files checked in {_escape(_display(args.articles_dir))}")
        return EXIT_FAILURE
    out.print(
        f"[green]✓ {checked} articles are valid[/green] in {_escape(_display(args.articles_dir))}"
    )
    return EXIT_OK


def _build(args: argparse.Namespace, out: Console, err: Console, encoder: Encoder | None) -> int:
    problems = validate_articles(args.articles_dir)
    if problems:
        _print_problems(out, problems)
        out.print("[yellow]Nothing was built: the live index was left unchanged.[/yellow]")
        return EXIT_FAILURE
    encoder = encoder or default_encoder()
    load = getattr(encoder, "load", None)
    if callable(load):
        with out.status("Loading the embedding model…"):
            load()
    try:
        result = publish_articles(
            args.articles_dir,
            args.index_dir,
            encoder,
            progress=out.is_terminal,
            force=args.force,
        )
    except ArticleError as exc:  # an article changed between validation and build
        _print_problems(out, exc.problems)
        out.print("[yellow]Nothing was built: the live index was left unchanged.[/yellow]")
        return EXIT_FAILURE
    manifest = result.manifest
    if result.skipped:
        out.print(
            f"Articles unchanged since build {result.build_id} "
            f"({manifest.article_count} articles, {manifest.vector_count} vectors); "
            "nothing to do. Use --force to rebuild."
        )
        return EXIT_OK
    out.print(
        f"[green]✓ Built {manifest.article_count} articles, {manifest.vector_count} vectors[/green]"
        f" as build {result.build_id} in {result.seconds:.1f}s; it is now live."
    )
    out.print(f"Index: {_escape(_display(result.build_dir))}")
    return EXIT_OK


def _search(args: argparse.Namespace, out: Console, err: Console, encoder: Encoder | None) -> int:
    from bot.config import get_settings

    settings = get_settings()
    limit = args.limit or settings.kb_top_k
    try:
        index = load_current(args.index_dir, encoder or default_encoder())
    except KnowledgeIndexError as exc:
        err.print(f"[red]error:[/red] {_escape(exc.message)}")
        return EXIT_FAILURE
    hits = index.search(args.query, limit, audience=args.audience)
    if not hits:
        out.print("No articles found.")
        return EXIT_OK
    table = Table(title=f"Results for {args.query!r}", title_justify="left")
    table.add_column("rank", justify="right")
    table.add_column("score", justify="right")
    table.add_column("id", no_wrap=True)
    table.add_column("title")
    table.add_column("audience")
    for rank, hit in enumerate(hits, start=1):
        table.add_row(
            str(rank), f"{hit.score:.3f}", hit.article_id, _escape(hit.title), hit.audience
        )
    out.print(table)
    top = hits[0]
    if top.score >= settings.kb_answer_threshold:
        band = f"answered directly (score ≥ {settings.kb_answer_threshold:.2f})"
    elif top.score >= settings.kb_suggest_threshold:
        band = f"offered as a suggestion (score ≥ {settings.kb_suggest_threshold:.2f})"
    else:
        band = f"below the suggestion threshold {settings.kb_suggest_threshold:.2f}: no answer"
    out.print(f"Top article would be {band}.")
    out.print(f"Matched: {_escape(top.matched_text)}")
    out.print(f"Answer: {_escape(top.summary)}")
    return EXIT_OK


def _new(args: argparse.Namespace, out: Console, err: Console, encoder: Encoder | None) -> int:
    directory: Path = args.articles_dir
    existing = list(directory.rglob(f"{args.article_id}.md")) if directory.is_dir() else []
    if existing:
        err.print(
            f"[red]error:[/red] article {args.article_id!r} already exists: "
            f"{_escape(_display(existing[0]))}; pick another id or edit that file"
        )
        return EXIT_FAILURE
    text = render_new_article(
        id=args.article_id,
        title=args.title,
        audience=args.audience,
        owner=args.owner,
        today=datetime.date.today(),
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{args.article_id}.md"
    try:
        with path.open("x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        err.print(f"[red]error:[/red] {_escape(_display(path))} already exists")
        return EXIT_FAILURE
    out.print(f"[green]✓ Created[/green] {_escape(_display(path))}")
    out.print("Next steps:")
    out.print("  1. Write the short chat answer as the first paragraph, details below it.")
    out.print("  2. Add other ways customers ask it under 'questions:' and some 'tags:'.")
    out.print("  3. Run `python -m bot kb validate`, then `python -m bot kb build`.")
    out.print('  4. Try it: `python -m bot kb search "your question"`.')
    return EXIT_OK


def _list(args: argparse.Namespace, out: Console, err: Console, encoder: Encoder | None) -> int:
    articles, problems = scan_articles(args.articles_dir)
    table = Table(title=f"{len(articles)} articles", title_justify="left")
    table.add_column("id", no_wrap=True)
    table.add_column("audience")
    table.add_column("updated", no_wrap=True)
    table.add_column("title")
    for article in articles:
        table.add_row(
            article.id, article.audience, article.updated.isoformat(), _escape(article.title)
        )
    out.print(table)
    if problems:
        count = len(problems)
        err.print(
            f"[yellow]{count} problems hide some articles; run `validate` for details.[/yellow]"
        )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
