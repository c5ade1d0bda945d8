"""Command-line tool for knowledge-base editors: check, build, try and create articles.

Usage:
    python -m knowledge.editor validate            # check every article, exit 1 on problems
    python -m knowledge.editor build [--force]     # validate, encode and publish the index
    python -m knowledge.editor search "how do I return an item?" [--limit 5] [--json]
    python -m knowledge.editor search "can we pay by invoice?" --segment b2b
    python -m knowledge.editor new --id returns-label-lost --title "I lost my return label"
    python -m knowledge.editor list                # id, audience, updated, title
    python -m knowledge.editor eval questions.jsonl  # top-1, recall@3, wrong answers, misses

``python -m knowledge`` and ``python -m bot kb ...`` run the same commands. This library
reads no settings of its own: ``python -m bot kb`` passes the deployment's folders and
answer bands (``CONCIERGE_*``) as defaults through :class:`EditorDefaults`; run on its own,
the articles folder defaults to ``knowledge/articles`` and the index root to ``var/index``
under the current folder. Override them with ``--articles-dir`` and ``--index-dir``.

``search`` shows what the bot would do with the question (answer, suggestions, or "I
don't know"), through :func:`knowledge.answering.answer_question`, the code the action
server runs; ``--json`` prints the same as one JSON object.

A failed build never touches the live index: running services keep answering from the
last good build and pick up a new one within a second of it being published.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from knowledge.answering import (
    BAND_ANSWER,
    BAND_SUGGEST,
    SEGMENTS,
    Answer,
    AnswerPolicy,
    answer_question,
    declined_by,
)
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
from knowledge.build_encoding import encoding_for_next_build
from knowledge.encoder import (
    EMBEDDING_MODEL_NAME,
    Encoder,
    EncoderUnavailableError,
    default_encoder,
    find_model_folder,
)
from knowledge.evaluation import EvalFileError, evaluate, load_jsonl
from knowledge.head import DEFAULT_HEAD
from knowledge.index import KnowledgeIndexError, Manifest, read_manifest
from knowledge.lexical import LexicalConfig
from knowledge.onnx_encoder import EXPORT_DIRNAME
from knowledge.store import (
    LIVE_SETTING,
    HeadSetting,
    LexicalSetting,
    load_current,
    publish_articles,
)
from knowledge.tuning import StepCallback, TunedPublisher

__all__ = [
    "DEFAULT_ARTICLES_DIR",
    "DEFAULT_INDEX_DIR",
    "DEFAULT_QUERY_ENCODER_DIR",
    "EditorDefaults",
    "add_bm25_options",
    "add_head_options",
    "add_ranking_options",
    "create_argument_parser",
    "head_setting",
    "lexical_setting",
    "main",
]

logger = logging.getLogger(__name__)

DEFAULT_PROG = "python -m knowledge.editor"
DEFAULT_ARTICLES_DIR = Path(__file__).resolve().parent / "articles"
DEFAULT_INDEX_DIR = Path("var") / "index"
DEFAULT_QUERY_ENCODER_DIR = Path("var") / "models" / EXPORT_DIRNAME
DEFAULT_OWNER = "support-team"
DEFAULT_AUDIENCE = "all"
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


@dataclass(frozen=True)
class EditorDefaults:
    """Folders and answer bands used when the command line does not give them.

    ``python -m bot kb`` fills these from the deployment's settings.

    Attributes:
        articles_dir: Folder of article ``.md`` files.
        index_dir: Index root holding ``builds/`` and ``current``.
        query_encoder_dir: The ONNX int8 query encoder exported at set-up, which ``build``
            puts into each build (``None``: builds carry none and queries use torch).
        policy: The answer bands and number of hits ``search`` applies, as the bot does.
        models_dir: Where ``tune --start-from NAME`` looks for a model folder named NAME
            (``None``: only paths are accepted).
        models_hint: Said when ``--start-from`` names no model folder (how to install one).
    """

    articles_dir: Path = DEFAULT_ARTICLES_DIR
    index_dir: Path = DEFAULT_INDEX_DIR
    query_encoder_dir: Path | None = DEFAULT_QUERY_ENCODER_DIR
    policy: AnswerPolicy = field(default_factory=AnswerPolicy)
    models_dir: Path | None = None
    models_hint: str = ""


def threshold(value: str) -> float:
    """Argparse type for a score threshold between 0 and 1.

    Raises:
        argparse.ArgumentTypeError: If the value is not a number between 0 and 1.
    """
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {value!r}")
    return number


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


def _whole_number_of_at_least(value: str, least: int) -> int:
    try:
        number = int(value)
    except ValueError:
        number = least - 1
    if number < least:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of at least {least}, got {value!r}"
        )
    return number


def positive_int(value: str) -> int:
    """Argparse type for a count of at least 1.

    Raises:
        argparse.ArgumentTypeError: If the value is not a whole number of at least 1.
    """
    return _whole_number_of_at_least(value, 1)


def non_negative_int(value: str) -> int:
    """Argparse type for a count of at least 0.

    Raises:
        argparse.ArgumentTypeError: If the value is not a whole number of at least 0.
    """
    return _whole_number_of_at_least(value, 0)


def add_bm25_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--bm25 WEIGHT`` and ``--no-bm25`` (read back with :func:`lexical_setting`)."""
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument(
        "--bm25",
        type=threshold,
        default=None,
        metavar="WEIGHT",
        help="also rank articles by BM25 word overlap, added at this weight (0 to 1; 0.1 "
        "was chosen on the public data, see docs/benchmarks.md); later builds and "
        "publishes keep it (default: as the live build)",
    )
    choice.add_argument("--no-bm25", action="store_true", help="stop ranking by BM25 word overlap")


def add_head_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--head`` and ``--no-head`` (kept by later builds, as ``--bm25`` is)."""
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument(
        "--no-head",
        action="store_true",
        help="build without the classifier head (nearest-neighbour ranking only); later "
        "builds and publishes keep it that way until --head",
    )
    choice.add_argument(
        "--head",
        action="store_true",
        help="train the classifier head again after --no-head (default: as the live build)",
    )


def head_setting(args: argparse.Namespace) -> HeadSetting:
    """What ``--head``/``--no-head`` ask for; neither: as the live build has it."""
    if args.no_head:
        return None
    if args.head:
        return DEFAULT_HEAD
    return LIVE_SETTING


def add_ranking_options(parser: argparse.ArgumentParser) -> None:
    """Add the options a build from articles takes (``kb build``, the database's ``kb publish``).

    ``--base-model``, ``--head``/``--no-head`` and ``--bm25 WEIGHT``/``--no-bm25``.
    """
    parser.add_argument(
        "--base-model",
        action="store_true",
        help="build with the packaged model even if the live build was tuned (kb tune); "
        "by default a tuned knowledge base stays tuned",
    )
    add_head_options(parser)
    add_bm25_options(parser)


def lexical_setting(args: argparse.Namespace) -> LexicalSetting:
    """What ``--bm25``/``--no-bm25`` ask for; neither: as the live build has it."""
    if args.no_bm25:
        return None
    if args.bm25 is not None:
        return LexicalConfig(weight=args.bm25)
    return LIVE_SETTING


def create_argument_parser(
    prog: str | None = None, defaults: EditorDefaults | None = None
) -> argparse.ArgumentParser:
    """Build the parser for the editor's subcommands.

    Args:
        prog: Program name shown in usage messages (``python -m bot kb`` when embedded).
        defaults: Folders and bands shown as defaults in the help.

    Returns:
        The parser.
    """
    defaults = defaults or EditorDefaults()
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--articles-dir",
        type=Path,
        default=None,
        help=f"folder of article .md files (default: {defaults.articles_dir})",
    )
    common.add_argument(
        "--index-dir",
        type=Path,
        default=None,
        help=f"index root holding builds/ and current (default: {defaults.index_dir})",
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
        "--force",
        action="store_true",
        help="rebuild even if the articles have not changed, training every row of the "
        "classifier head again",
    )
    build.add_argument(
        "--no-reuse",
        action="store_true",
        help="encode every text again instead of reusing the live build's vectors",
    )
    add_ranking_options(build)
    build.add_argument(
        "--query-encoder-dir",
        type=Path,
        default=None,
        help="ONNX int8 query encoder exported at set-up, carried by the build "
        f"(default: {defaults.query_encoder_dir})",
    )

    policy = defaults.policy
    search = commands.add_parser(
        "search", parents=[common], help="show what the bot would answer to a question"
    )
    search.add_argument("query", type=non_empty, help="the question, in quotes")
    search.add_argument(
        "--limit",
        type=positive_int,
        default=None,
        help=f"how many articles to search for and offer (default: {policy.limit})",
    )
    search.add_argument(
        "--segment",
        "--audience",
        dest="segment",
        choices=SEGMENTS,
        default=None,
        help="answer as for this kind of customer: b2b = verified business contact "
        "(default: a customer who has not identified themselves)",
    )
    search.add_argument(
        "--answer-threshold",
        type=threshold,
        default=None,
        help=f"score from which the bot answers (default: {policy.answer_threshold})",
    )
    search.add_argument(
        "--suggest-threshold",
        type=threshold,
        default=None,
        help=f"score from which the bot suggests (default: {policy.suggest_threshold})",
    )
    search.add_argument(
        "--json", action="store_true", help="print the hits and the band as one JSON object"
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

    evaluate = commands.add_parser(
        "eval",
        parents=[common],
        help="score the live index on labelled questions, as the bot would answer them",
        description='QUESTIONS is JSON Lines: {"question": "...", "expected": ARTICLE_ID '
        'or null (the bot should not answer), "audience": "b2c" or "b2b" (optional)}.',
    )
    evaluate.add_argument("questions", type=Path, help="JSON Lines file of labelled questions")
    evaluate.add_argument(
        "--answer-threshold",
        type=threshold,
        default=None,
        help=f"score from which the bot answers (default: {policy.answer_threshold})",
    )
    evaluate.add_argument(
        "--suggest-threshold",
        type=threshold,
        default=None,
        help=f"score from which the bot suggests (default: {policy.suggest_threshold})",
    )
    _add_tune_parser(commands, common)
    return parser


def _add_tune_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    tune = commands.add_parser(
        "tune",
        parents=[common],
        help="fine-tune the encoder on the articles, rebuild and publish (minutes)",
        description="Fine-tune the encoder (the packaged all-MiniLM-L6-v2, or --start-from "
        "another) on the articles' titles and alternate "
        "questions (contrastive, SetFit-style), export its ONNX query encoder, rebuild the "
        "index with it and publish it. The tuned model is kept under INDEX_DIR/encoders/. "
        "An interrupted tune leaves the live index as it was. Operators only: this takes "
        "minutes of CPU (see docs/operations.md, 'Tuning the encoder').",
    )
    tune.add_argument(
        "--max-minutes",
        type=float,
        default=25.0,
        help="time cap for the whole tune; training stops early to keep it (default: 25)",
    )
    tune.add_argument(
        "--epochs", type=positive_int, default=1, help="passes over the pairs (default: 1)"
    )
    tune.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    tune.add_argument(
        "--loss",
        choices=("mnrl", "cosine"),
        default="mnrl",
        help="mnrl: in-batch negatives (default); cosine: SetFit pairs",
    )
    tune.add_argument(
        "--learning-rate", type=float, default=2e-5, help="peak learning rate (default: 2e-5)"
    )
    tune.add_argument(
        "--val",
        type=Path,
        default=None,
        metavar="QUESTIONS.jsonl",
        help='{"question": ..., "expected": ARTICLE_ID} per line: top-1 before and after',
    )
    tune.add_argument(
        "--freeze-layers",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="keep the embeddings and the lowest N transformer layers fixed: cheaper steps, "
        "so a capped tune of a large model covers more pairs (default: 0, train all)",
    )
    tune.add_argument(
        "--pairs-per-text",
        type=positive_int,
        default=1,
        metavar="N",
        help="distinct positive pairs drawn for each title and question (SetFit-style; "
        "on the public data no better than more --epochs, see docs/benchmarks.md; "
        "default: 1)",
    )
    tune.add_argument(
        "--batching",
        choices=("random", "topic"),
        default="random",
        help="topic: each batch is an article and its nearest articles, so the loss "
        "contrasts the ones most easily confused (mnrl only; on the public data no "
        "better than random, see docs/benchmarks.md; default: random)",
    )
    add_head_options(tune)
    add_bm25_options(tune)
    tune.add_argument(
        "--start-from",
        default=None,
        metavar="MODEL",
        help="a sentence-transformers model folder (or the name of one in the models folder, "
        "e.g. all-mpnet-base-v2) to tune instead of the packaged all-MiniLM-L6-v2: better "
        "answers, about 5x the tune time and query time (default: the packaged model)",
    )


def main(
    argv: Sequence[str] | None = None,
    *,
    prog: str | None = None,
    encoder: Encoder | None = None,
    defaults: EditorDefaults | None = None,
    tuned_publisher: TunedPublisher | None = None,
    tune_progress: StepCallback | None = None,
) -> int:
    """Run the editor CLI.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).
        prog: Program name for usage messages.
        encoder: Encoder for ``build`` and ``search`` (default: the real model).
        defaults: Folders and answer bands when the arguments do not give them.
        tuned_publisher: How ``tune`` publishes with the tuned model (see
            :func:`knowledge.tuning.tune_and_publish`; default: build the articles
            folder and swap it in).
        tune_progress: Called after every ``tune`` step (``on_step`` of
            :func:`knowledge.tuning.tune_encoder`), e.g. to report it elsewhere.

    Returns:
        0 on success, 1 on problems or failures, 2 on usage errors.
    """
    defaults = defaults or EditorDefaults()
    parser = create_argument_parser(prog, defaults)
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
    try:
        _fill_defaults(args, defaults)
    except ValueError as exc:  # e.g. a suggest threshold above the answer threshold
        parser.print_usage(sys.stderr)
        err.print(f"[red]error:[/red] {_escape(exc)}")
        return EXIT_USAGE
    handlers = {
        "validate": _validate,
        "build": _build,
        "search": _search,
        "new": _new,
        "list": _list,
        "eval": _eval,
        "tune": _tune,
    }
    args.tuned_publisher, args.tune_progress = tuned_publisher, tune_progress
    try:
        return handlers[args.command](args, out, err, encoder)
    except (KnowledgeIndexError, EncoderUnavailableError) as exc:
        err.print(f"[red]error:[/red] {_escape(exc.message)}")
        return EXIT_FAILURE


def _fill_defaults(args: argparse.Namespace, defaults: EditorDefaults) -> None:
    if args.articles_dir is None:
        args.articles_dir = defaults.articles_dir
    if args.index_dir is None:
        args.index_dir = defaults.index_dir
    if args.command == "build" and args.query_encoder_dir is None:
        args.query_encoder_dir = defaults.query_encoder_dir
    if args.command == "tune":
        args.start_from = _model_folder(args.start_from, defaults)
    if args.command in ("search", "eval"):
        base = defaults.policy
        answer_at = args.answer_threshold
        if answer_at is None:
            answer_at = base.answer_threshold
        suggest_at = args.suggest_threshold
        if suggest_at is None:  # a lower answer threshold alone lowers the suggest one with it
            suggest_at = min(base.suggest_threshold, answer_at)
        args.policy = AnswerPolicy(
            answer_threshold=answer_at,
            suggest_threshold=suggest_at,
            limit=getattr(args, "limit", None) or base.limit,
            b2b_preference_margin=base.b2b_preference_margin,
            answer_margin=base.answer_margin,
        )


def _model_folder(given: str | None, defaults: EditorDefaults) -> Path | None:
    """Resolve ``--start-from``: a folder path, or a folder name in the models folder.

    Raises:
        ValueError: If neither is a sentence-transformers model folder.
    """
    if given is None:
        return None
    if (folder := find_model_folder(given, defaults.models_dir)) is not None:
        return folder
    hint = f" ({defaults.models_hint})" if defaults.models_hint else ""
    raise ValueError(f"--start-from {given}: no sentence-transformers model folder there{hint}")


def _escape(text: object) -> str:
    from rich.markup import escape

    return escape(str(text))


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _problem_line(problem: ArticleProblem) -> str:
    where = _display(problem.path) + (f":{problem.line}" if problem.line else "")
    return f"{where}: {problem.field or '-'}: {problem.message}"


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


def _refused_as_invalid(articles_dir: Path, out: Console, done: str) -> bool:
    """Print the articles' problems, if any, and that nothing was ``done``."""
    problems = validate_articles(articles_dir)
    if problems:
        _print_problems(out, problems)
        out.print(f"[yellow]Nothing was {done}: the live index was left unchanged.[/yellow]")
    return bool(problems)


def _build(args: argparse.Namespace, out: Console, err: Console, encoder: Encoder | None) -> int:
    if _refused_as_invalid(args.articles_dir, out, "built"):
        return EXIT_FAILURE
    given = encoder
    encoding = encoding_for_next_build(
        args.index_dir,
        default=lambda: given or default_encoder(),
        default_query_encoder_dir=args.query_encoder_dir,
        use_tuned=not args.base_model,
    )
    if encoding.tuned:
        out.print(f"Building with the tuned encoder of the live build ({encoding.encoder_dir}).")
    load = getattr(encoding.encoder, "load", None)
    if callable(load):
        with out.status("Loading the embedding model…"):
            load()
    try:
        result = publish_articles(
            args.articles_dir,
            args.index_dir,
            encoding.encoder,
            progress=out.is_terminal,
            force=args.force,
            query_encoder_dir=encoding.query_encoder_dir,
            head=head_setting(args),
            reuse=not args.no_reuse,
            encoder_dir=encoding.encoder_dir,
            lexical=lexical_setting(args),
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
        _print_ranking_and_encoder(out, manifest, encoding.query_encoder_dir)
        return EXIT_OK
    out.print(
        f"[green]✓ Built {manifest.article_count} articles, {manifest.vector_count} vectors[/green]"
        f" ({result.encoded} encoded, {manifest.vector_count - result.encoded} reused)"
        f" as build {result.build_id} in {result.seconds:.1f}s; it is now live."
    )
    out.print(f"Index: {_escape(_display(result.build_dir))}")
    _print_ranking_and_encoder(out, manifest, encoding.query_encoder_dir)
    return EXIT_OK


def _print_ranking_and_encoder(out: Console, manifest: Manifest, export: Path | None) -> None:
    if manifest.head is not None:
        out.print(
            f"Articles are ranked with a classifier head ({manifest.head.kind}, "
            f"weight {manifest.head.weight}, {manifest.head.mode})."
        )
    if manifest.lexical is not None:
        out.print(
            f"Articles are also ranked by BM25 word overlap (weight {manifest.lexical.weight})."
        )
    ref = manifest.query_encoder
    if ref is not None:
        out.print(f"Queries are encoded with the build's {ref.kind} encoder (no torch).")
        return
    where = f" at {_escape(_display(export))}" if export is not None else ""
    out.print(
        f"[yellow]No usable ONNX query encoder{where}: queries will be encoded with torch. "
        "Run `python -m bot setup` to export one, then build again.[/yellow]"
    )


def _search(args: argparse.Namespace, out: Console, err: Console, encoder: Encoder | None) -> int:
    try:
        # Without an injected encoder: the build's own query encoder, as in the bot.
        index = load_current(args.index_dir, encoder)
    except KnowledgeIndexError as exc:
        err.print(f"[red]error:[/red] {_escape(exc.message)}")
        return EXIT_FAILURE
    answer = answer_question(index, args.query, segment=args.segment, policy=args.policy)
    declining = declined_by(index, answer)
    declined = declining.article_id if declining is not None else None
    if args.json:
        data = {**answer.to_dict(), "declined_by": declined}
        out.file.write(json.dumps(data, ensure_ascii=False) + "\n")
        return EXIT_OK
    _print_answer(out, answer, declined=declined)
    return EXIT_OK


def _print_answer(out: Console, answer: Answer, *, declined: str | None = None) -> None:
    policy = answer.policy
    who = "a verified business contact" if answer.segment == "b2b" else "a consumer"
    if answer.segment is None:
        who = "a customer who has not identified themselves"
    if declined is not None:
        out.print(f"Declined: the out-of-scope article {declined} ranked first.")
    elif not answer.hits:
        out.print("No articles found.")
    else:
        table = Table(title=f"Results for {answer.query!r}", title_justify="left")
        table.add_column("rank", justify="right")
        table.add_column("score", justify="right")
        table.add_column("id", no_wrap=True)
        table.add_column("title")
        table.add_column("audience")
        for rank, hit in enumerate(answer.hits, start=1):
            table.add_row(
                str(rank), f"{hit.score:.3f}", hit.article_id, _escape(hit.title), hit.audience
            )
        out.print(table)
    top = answer.top
    if answer.band == BAND_ANSWER and top is not None:
        out.print(
            f"For {who}, the bot would [green]answer[/green] with {top.article_id} "
            f"(score {top.score:.3f} ≥ answer threshold {policy.answer_threshold:.2f})."
        )
        out.print(f"Matched: {_escape(top.matched_text)}")
        out.print(f"Answer: {_escape(top.summary)}")
    elif answer.band == BAND_SUGGEST and top is not None:
        ids = ", ".join(hit.article_id for hit in answer.suggestions)
        out.print(
            f"For {who}, the bot would [yellow]suggest[/yellow] {ids} and offer a person "
            f"(best score {top.score:.3f} ≥ suggest threshold {policy.suggest_threshold:.2f}, "
            f"< answer threshold {policy.answer_threshold:.2f})."
        )
    else:
        best = f"best score {top.score:.3f}" if top is not None else "no match"
        out.print(
            f"For {who}, the bot would say it [red]does not know[/red] and offer a person "
            f"({best} < suggest threshold {policy.suggest_threshold:.2f})."
        )


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


def _eval(args: argparse.Namespace, out: Console, err: Console, encoder: Encoder | None) -> int:
    """Score the live index on a question file (``knowledge.evaluation``) and list the misses."""
    try:
        index = load_current(args.index_dir, encoder)
    except KnowledgeIndexError as exc:
        err.print(f"[red]error:[/red] {_escape(exc.message)}")
        return EXIT_FAILURE
    try:
        questions = load_jsonl(args.questions, known_ids=index.manifest.article_ids)
    except EvalFileError as exc:
        err.print(f"[red]error:[/red] {_escape(exc)}")
        return EXIT_FAILURE
    figures, _ = evaluate(index, questions, args.policy)
    if figures.misses:
        table = Table(title=f"{len(figures.misses)} misses", title_justify="left")
        table.add_column("line", justify="right")
        table.add_column("question")
        table.add_column("expected", no_wrap=True)
        table.add_column("bot", no_wrap=True)
        table.add_column("shown / ranked")
        for miss in figures.misses:
            shown = ", ".join(miss.shown) or "-"
            ranked = ", ".join(miss.ranked) or "-"
            table.add_row(
                str(miss.question.line),
                _escape(miss.question.question),
                miss.question.expected or "(none)",
                miss.band if miss.answered is None else f"answer {miss.answered}",
                _escape(f"{shown} / {ranked}"),
            )
        out.print(table)
    out.print(
        f"{figures.in_domain} in-domain questions: top-1 {figures.top1 or 0.0:.3f}, recall@3 "
        f"{figures.top3 or 0.0:.3f}, answered right {figures.answered_right:.3f}, answered wrong "
        f"{figures.answered_wrong:.3f} ({figures.answered_wrong_count}); "
        f"{figures.out_of_domain} out-of-scope: {figures.ood_answered} answered, "
        f"{figures.ood_suggested} got suggestions."
    )
    out.file.write(json.dumps({"kb_eval": str(args.questions), **figures.to_dict()}) + "\n")
    return EXIT_OK


def _tune(args: argparse.Namespace, out: Console, err: Console, encoder: Encoder | None) -> int:
    from knowledge.tuning import TuneConfig, TuningError, tune_and_publish

    if _refused_as_invalid(args.articles_dir, out, "tuned"):
        return EXIT_FAILURE
    val: list[tuple[str, str]] = []
    if args.val is not None:
        try:
            lines = args.val.read_text(encoding="utf-8").splitlines()
            rows = [json.loads(line) for line in lines if line.strip()]
            val = [(r["question"], r["expected"]) for r in rows if r.get("expected")]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            err.print(f"[red]error:[/red] cannot read {_escape(args.val)}: {_escape(exc)}")
            return EXIT_USAGE
    if args.start_from is not None:
        out.print(f"Tuning from {_escape(_display(args.start_from))}, not the packaged model.")
    config = TuneConfig(
        loss=args.loss,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        max_minutes=args.max_minutes,
        seed=args.seed,
        freeze_layers=args.freeze_layers,
        pairs_per_text=args.pairs_per_text,
        batching=args.batching,
    )
    try:
        done = tune_and_publish(
            args.articles_dir,
            args.index_dir,
            config,
            head=head_setting(args),
            progress=out.is_terminal,
            val_questions=val,
            source_dir=args.start_from,
            base_name=args.start_from.name if args.start_from else EMBEDDING_MODEL_NAME,
            lexical=lexical_setting(args),
            publisher=args.tuned_publisher,
            on_step=args.tune_progress,
        )
    except TuningError as exc:
        err.print(f"[red]error:[/red] {_escape(exc.message)}")
        return EXIT_FAILURE
    tune = done.tune
    cut = " (stopped by --max-minutes)" if tune.stopped_by_budget else ""
    out.print(
        f"[green]✓ Tuned[/green] on {tune.pairs} pairs: {tune.steps} of {tune.planned_steps} "
        f"steps{cut}, loss {tune.first_loss:.3f} → {tune.last_loss:.3f}; total "
        f"{done.seconds:.0f}s (training {tune.seconds:.0f}s, export {done.export_seconds:.0f}s, "
        f"rebuild {done.build_seconds:.0f}s)."
    )
    out.print(f"Encoder: {_escape(done.name)} in {_escape(_display(done.encoder_dir))}")
    out.print(f"Build {done.build_dir.name} is now live.")
    _print_ranking_and_encoder(out, read_manifest(done.build_dir), None)
    if args.start_from is not None:
        out.print(
            "[yellow]![/yellow] Its scores are on another scale than the packaged model's: "
            "check the answer and suggest thresholds with `kb eval QUESTIONS "
            "--answer-threshold T --suggest-threshold S` on your own questions."
        )
    if done.val_top1 is not None:
        before = "" if done.val_top1_before is None else f"{done.val_top1_before:.3f} → "
        out.print(f"Validation top-1 ({len(val)} questions): {before}{done.val_top1:.3f}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
