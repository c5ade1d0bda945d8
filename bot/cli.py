"""Concierge's command-line tool: set up, train, run and check the whole assistant.

Usage:
    python -m bot setup            # venvs, model check, database, demo data, index, Rasa training
    python -m bot setup --large-encoder   # also all-mpnet-base-v2, to `kb tune --start-from`
    python -m bot run              # start Rasa, the action server and the web chat on 127.0.0.1
    python -m bot train [--force]  # retrain Rasa (skipped when data/domain/config are unchanged)
    python -m bot doctor           # check every component and say how to fix what is broken
    python -m bot kb validate|build|search|new|list   # the knowledge-base editor
    python -m bot kb publish|history|rollback|import|export   # articles in the database
    python -m bot agents add|list|deactivate|reset-password|enroll-totp   # desk accounts
    python -m bot web              # serve only the bot service (used by `run`)

Settings come from CONCIERGE_* environment variables (see docs/operations.md).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from rich.console import Console

from bot.agents.cli import add_agents_parser
from bot.config import Settings, get_settings
from bot.ops.commands import tail
from bot.ops.errors import OperationError
from bot.ops.profiles import PROFILES

if TYPE_CHECKING:
    from knowledge.editor import EditorDefaults

logger = logging.getLogger(__name__)


def create_argument_parser() -> argparse.ArgumentParser:
    """Build the parser for ``python -m bot``."""
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="Concierge: a Rasa support assistant with a knowledge base and handoff.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Settings are read from CONCIERGE_* environment variables; see docs/operations.md.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    setup = commands.add_parser("setup", help="install and prepare everything (idempotent)")
    setup.add_argument(
        "--no-demo-data", action="store_true", help="skip demo accounts and contacts"
    )
    setup.add_argument(
        "--for-tests",
        action="store_true",
        help="also install what the tests need (Debian chromium and redis-server)",
    )
    setup.add_argument(
        "--large-encoder",
        action="store_true",
        help="also download all-mpnet-base-v2 (404 MB) to tune from: "
        "`kb tune --start-from all-mpnet-base-v2` (see docs/operations.md)",
    )

    run = commands.add_parser("run", help="start Rasa, the action server and the bot service")
    run.add_argument("--no-browser-hint", action="store_true", help=argparse.SUPPRESS)
    run.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="default",
        help="default: one process each; best: Redis lock store and two Rasa workers "
        "(see docs/operations.md)",
    )

    train = commands.add_parser("train", help="train the Rasa model if its inputs changed")
    train.add_argument("--force", action="store_true", help="train even if nothing changed")

    commands.add_parser("doctor", help="check every component and print how to fix problems")

    kb = commands.add_parser(
        "kb",
        help="knowledge base (validate, build, search, new, list; publish, history, "
        "rollback, import, export)",
        add_help=False,
    )
    kb.add_argument("kb_args", nargs=argparse.REMAINDER, help="arguments for the editor")

    add_agents_parser(commands)

    commands.add_parser("web", help="serve only the bot service (web chat and websocket)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["kb"]:  # the editor owns its own arguments, --help included
        return _run_editor(argv[1:])
    args = create_argument_parser().parse_args(argv)
    console = Console(stderr=False)
    # Long-running services log at INFO to their log files; interactive commands stay quiet
    # and report progress through the console instead.
    level = logging.INFO if args.command == "web" else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = get_settings()
        return _dispatch(args, settings, console)
    except OperationError as error:
        console.print(f"[red]✗ {error.message}[/]")
        if error.hint:
            console.print(f"  [yellow]hint:[/] {error.hint}")
        return 1
    except ValueError as error:  # invalid settings
        console.print(f"[red]✗ Invalid settings:[/] {error}")
        return 2


_DATABASE_VERBS_HELP = """
Articles in the app database (the browser editor at /editor):
  publish                     validate, build and put live the newest saved revisions
  history ARTICLE_ID          revisions with author, time and state (--diff N M)
  rollback ARTICLE_ID REV     save an earlier revision's text as a new revision
  import [--articles-dir DIR] load Markdown articles into empty editor tables
  export DIR                  write the live articles as Markdown files
Once the database holds articles, `kb build` without --articles-dir publishes them."""


def _run_editor(argv: list[str]) -> int:
    """Run a ``kb`` verb: the database verbs here, the others in the knowledge library.

    The knowledge library's editor gets this deployment's folders and answer bands as
    defaults. ``kb build`` without ``--articles-dir`` publishes from the database once it
    holds articles (the database is the truth; see docs/architecture.md).
    """
    from bot.editor import cli as editor_cli
    from knowledge.editor import EditorDefaults
    from knowledge.editor import main as editor_main
    from knowledge.onnx_encoder import EXPORT_DIRNAME

    try:
        settings = get_settings()
    except ValueError as error:  # invalid settings
        Console(stderr=True).print(f"[red]✗ Invalid settings:[/] {error}")
        return 2
    if argv[:1] and argv[0] in editor_cli.VERBS:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        return editor_cli.main(argv, settings)
    defaults = EditorDefaults(
        articles_dir=settings.articles_dir,
        index_dir=settings.index_dir,
        query_encoder_dir=settings.models_dir / EXPORT_DIRNAME,
        policy=settings.kb_answer_policy(),
        models_dir=settings.models_dir,
        models_hint="`python -m bot setup --large-encoder` installs all-mpnet-base-v2",
    )
    if argv[:2] == ["tune", "--job"] and len(argv) == 3 and argv[2].isdigit():
        from bot.editor.tune_jobs import run_job  # a lead's tune from the browser

        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        return run_job(settings, int(argv[2]))
    from_folder = any(argument.startswith("--articles-dir") for argument in argv)
    if argv[:1] == ["build"] and not from_folder and editor_cli.database_has_articles(settings):
        return _publish_from_database(argv, settings, defaults)
    if argv[:1] == ["tune"] and not from_folder and editor_cli.database_has_articles(settings):
        return _tune_on_database_articles(argv, settings, defaults)
    code = editor_main(argv, prog="python -m bot kb", defaults=defaults)
    if not argv or argv[0] in ("-h", "--help"):
        print(_DATABASE_VERBS_HELP)
    return code


def _publish_from_database(argv: list[str], settings: Settings, defaults: EditorDefaults) -> int:
    """``kb build`` once the database holds the articles: ``kb publish`` with its options."""
    from bot.editor import cli as editor_cli
    from knowledge.editor import create_argument_parser

    parser = create_argument_parser(prog="python -m bot kb", defaults=defaults)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse printed the usage error
        return exc.code if isinstance(exc.code, int) else 2
    folder_only = [
        option
        for option, given in (
            ("--no-reuse", args.no_reuse),
            ("--query-encoder-dir", args.query_encoder_dir is not None),
        )
        if given
    ]
    if folder_only:
        Console(stderr=True).print(
            f"[red]✗[/] {' and '.join(folder_only)} only apply to a folder build "
            "(--articles-dir DIR); the database's articles are published with the "
            "deployment's query encoder, reusing the live build's vectors."
        )
        return 2
    Console().print(
        "The articles live in the database (edited at /editor); publishing them. "
        "Pass --articles-dir to build from a folder instead."
    )
    flags = {
        "--force": args.force,
        "--no-head": args.no_head,
        "--head": args.head,
        "--base-model": args.base_model,
    }
    forwarded = ["publish", *(flag for flag, given in flags.items() if given)]
    if args.no_bm25:
        forwarded.append("--no-bm25")
    elif args.bm25 is not None:
        forwarded += ["--bm25", str(args.bm25)]
    return editor_cli.main(forwarded, settings)


def _tune_on_database_articles(
    argv: list[str], settings: Settings, defaults: EditorDefaults
) -> int:
    """``kb tune`` once the database holds the articles: tune on the published ones.

    The folder is only the seed then; tuning on it would publish a build without the
    editors' changes. The tuned model is published through the database
    (:func:`bot.editor.publishing.tuned_publisher`), so editors' publishes during the tune
    are kept. The tune is a job like a lead's from the editor (:mod:`bot.editor.tune_jobs`):
    the editor shows its progress and can cancel it, and a second tune is refused.
    """
    from bot.db.session import create_db_engine, create_session_factory
    from bot.editor import cli as editor_cli
    from bot.editor import tune_jobs
    from bot.editor.models import TuneJobStatus
    from knowledge.editor import create_argument_parser
    from knowledge.editor import main as editor_main

    try:  # --help and usage errors answer before any job is recorded
        create_argument_parser(prog="python -m bot kb", defaults=defaults).parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    engine = create_db_engine(settings.database_url)
    factory = create_session_factory(engine)
    err = Console(stderr=True)
    try:
        with factory() as session:
            try:
                job_id = tune_jobs.start_job(
                    session, actor=editor_cli.command_line_actor(), command=" ".join(argv)
                ).id
            except tune_jobs.TuneBusyError as exc:
                err.print(f"[red]✗[/] {exc.message} (see the editor's article list)")
                return 1
        if tune_jobs.claim(factory, job_id) is None:
            return 1
        with (
            tune_jobs.kept_alive(factory, job_id),
            tempfile.TemporaryDirectory(prefix="kb-tune-") as folder,
        ):
            count = editor_cli.export_live_articles(settings, Path(folder))
            Console().print(
                f"The articles live in the database (edited at /editor); tuning on the {count} "
                "published ones. Pass --articles-dir to tune on a folder instead."
            )
            published: list[Path] = []
            publish = tune_jobs.unless_cancelled(
                editor_cli.tuned_publisher(settings, factory), factory, job_id
            )

            def publish_and_note(*given: Any) -> Path:
                published.append(publish(*given))
                return published[-1]

            code = editor_main(
                [*argv, "--articles-dir", folder],
                prog="python -m bot kb",
                defaults=defaults,
                tuned_publisher=publish_and_note,
                tune_progress=tune_jobs.progress_reporter(factory, job_id),
            )
        with factory() as session:
            cancelled = tune_jobs.get_job(session, job_id).cancel_requested
        if code == 0 and published:
            tune_jobs.finish(
                factory,
                job_id,
                TuneJobStatus.SUCCEEDED,
                f"Tuned at the command line; build {published[-1].name} is live.",
                build_id=published[-1].name,
            )
        else:
            status = TuneJobStatus.CANCELLED if cancelled else TuneJobStatus.FAILED
            tune_jobs.finish(
                factory,
                job_id,
                status,
                "Cancelled from the editor; the bot keeps answering from the live build."
                if cancelled
                else "The command-line tune stopped without publishing (see its output); "
                "the bot keeps answering from the live build.",
            )
        return code
    finally:
        engine.dispose()


def _dispatch(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    if args.command == "setup":
        from bot.ops.setup import run_setup

        run_setup(
            settings,
            console,
            demo_data=not args.no_demo_data,
            for_tests=args.for_tests,
            large_encoder=args.large_encoder,
        )
        return 0
    if args.command == "train":
        from bot.ops.training import train

        train(settings, console, force=args.force)
        return 0
    if args.command == "doctor":
        from bot.ops.doctor import print_report, run_checks

        results = run_checks(settings)
        print_report(results, console)
        return 0 if all(result.ok for result in results) else 1
    if args.command == "web":
        return _serve_web(settings)
    if args.command == "run":
        from bot.ops.profiles import apply_profile

        return _run_stack(apply_profile(settings, args.profile), console)
    if args.command == "agents":
        from bot.agents.cli import run_agents_command

        return run_agents_command(args, settings, console)
    raise AssertionError(f"unhandled command {args.command}")


def _serve_web(settings: Settings) -> int:
    import uvicorn

    from bot.web.app import create_app

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.web_port,
        log_level="info",
        # uvicorn serves TLS itself when both files are set (the production profile).
        ssl_certfile=settings.tls_certfile,
        ssl_keyfile=settings.tls_keyfile,
    )
    return 0


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _run_stack(settings: Settings, console: Console) -> int:
    from bot.ops.doctor import check_index, check_model
    from bot.ops.stack import started_stack, with_run_token
    from bot.ops.supervisor import RestartPolicy, ServiceFailedError

    model, index = check_model(settings), check_index(settings)
    if not model.ok:
        raise OperationError(f"{model.name}: {model.detail}", hint=f"run `{model.fix}`")
    if not index.ok and index.detail == "not built":
        raise OperationError(f"{index.name}: {index.detail}", hint=f"run `{index.fix}`")
    if not index.ok:  # stale but usable: serve it, and say how to refresh it live
        console.print(f"[yellow]! {index.name}: {index.detail}; run `{index.fix}`[/]")
    settings = with_run_token(settings)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    console.print(f"Logs: {settings.log_dir} (rasa.log, actions.log, web.log)")
    try:
        with started_stack(settings, console) as supervisor:
            console.print(
                f"\n[bold green]Concierge is running.[/] Chat at [link]{settings.web_url}/[/link]"
                "\nPress Ctrl-C to stop."
            )
            policy = RestartPolicy()
            died = supervisor.watch(restart=policy)
            console.print(
                f"\n[red]✗ {died.spec.name} crashed {len(died.crashes)} times within "
                f"{policy.window_seconds:.0f} s (last exit code {died.last_exit_code}); "
                f"giving up.[/] Last lines of {died.spec.log_path}:"
            )
            console.print(tail(died.spec.log_path, 30), markup=False, highlight=False)
            console.print("Stopping the other services…")
        return 1
    except ServiceFailedError as error:
        console.print(f"\n[red]✗ {error}[/]. Last lines of {error.log_path}:")
        console.print(error.log_tail, markup=False, highlight=False)
        return 1
    except KeyboardInterrupt:
        console.print("\nStopped all services.")
        return 0


if __name__ == "__main__":
    sys.exit(main())
