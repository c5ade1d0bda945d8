"""``python -m bot setup``: everything a fresh clone needs, each step skipped when already done."""

from __future__ import annotations

import os
import sys
import time

from rich.console import Console

from bot.config import Settings
from bot.ops import environments, frontend, training
from bot.ops.errors import OperationError


def prepare_directories(settings: Settings) -> None:
    """Create ``var/`` and its sub-folders for databases, the index, models and logs."""
    for folder in (settings.var_dir, settings.index_dir, settings.models_dir, settings.log_dir):
        folder.mkdir(parents=True, exist_ok=True)


def check_embedding_model(console: Console) -> int:
    """Load the packaged MiniLM model offline and embed one sentence; return its dimension."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from knowledge.encoder import default_encoder

    started = time.monotonic()
    with console.status("Loading the embedding model (offline)…"):
        vectors = default_encoder().encode(["Where is my order?"])
    console.print(
        f"[green]✓[/] Embedding model loads offline: {vectors.shape[1]} dimensions "
        f"({time.monotonic() - started:.1f} s)"
    )
    return int(vectors.shape[1])


# --- ONNX int8 query encoder (knowledge.onnx_encoder) -------------------------------------
def export_query_encoder(settings: Settings, console: Console) -> None:
    """Export the index's model to ONNX int8 for queries, unless a sound export exists.

    The action server then encodes questions with onnxruntime and never loads torch;
    each index build carries the export. A failed export is reported, not fatal: queries
    fall back to torch and ``python -m bot doctor`` shows the problem.
    """
    from knowledge.encoder import EncoderUnavailableError, default_encoder
    from knowledge.onnx_encoder import EXPORT_DIRNAME, ensure_onnx_export

    started = time.monotonic()
    encoder = default_encoder()
    try:
        with console.status("Exporting the query encoder to ONNX int8…"):
            manifest, exported = ensure_onnx_export(
                encoder.model_path,
                settings.models_dir / EXPORT_DIRNAME,
                name=encoder.name,
                dimension=encoder.dimension,
            )
    except EncoderUnavailableError as error:
        console.print(f"[yellow]! ONNX query encoder not exported: {error.message}[/]")
        return
    state = f"exported ({time.monotonic() - started:.1f} s)" if exported else "up to date"
    console.print(
        f"[green]✓[/] ONNX int8 query encoder {state}: probe cosine "
        f"{manifest.probe_min_cosine:.3f} to {manifest.name}"
    )


# -------------------------------------------------------------------------------------------
def migrate_and_seed(settings: Settings, console: Console, *, demo_data: bool) -> None:
    """Apply database migrations and load the demo accounts, contacts and teams."""
    from bot.accounts.demo import seed_demo_database
    from bot.agents.demo import seed_demo_agents
    from bot.db.session import upgrade_database

    upgrade_database(settings.database_url)
    console.print(f"[green]✓[/] Database is migrated ({_redact(settings.database_url)})")
    if not demo_data:
        return
    added = seed_demo_database(settings.database_url)
    console.print(f"[green]✓[/] Demo accounts loaded ({added} new rows)")
    seed_demo_agents(settings, console)  # desk accounts; credentials printed once


def build_knowledge_index(settings: Settings, console: Console) -> None:
    """Import the seed articles into empty editor tables, then publish from the database.

    The app database is the articles' truth (docs/architecture.md); publishing skips the
    build when the live index already has exactly this content.
    """
    from bot.editor.cli import seed_and_publish
    from bot.editor.errors import EditorError

    try:
        imported, result = seed_and_publish(settings)
    except EditorError as error:
        details = "".join(f"\n  {field or '-'}: {message}" for field, message in error.problems)
        raise OperationError(
            f"The knowledge base has problems, so no index was built:\n{error.message}{details}",
            hint="run `python -m bot kb validate` (seed files) or fix the articles at /editor",
        ) from error
    if imported:
        console.print(f"[green]✓[/] Imported {imported} seed articles into the editor's tables")
    console.print(
        f"[green]✓[/] Knowledge index is live: {result.articles} articles (build {result.build_id})"
    )


def prepare_state(settings: Settings, console: Console) -> None:
    """Create a stack's runtime state: folders, migrated database with demo data, live index.

    Used for private stacks (end-to-end tests, benchmarks) that share the trained model.
    """
    prepare_directories(settings)
    migrate_and_seed(settings, console, demo_data=True)
    build_knowledge_index(settings, console)


def run_setup(
    settings: Settings,
    console: Console,
    *,
    demo_data: bool = True,
    for_tests: bool = False,
    large_encoder: bool = False,
) -> None:
    """Run every set-up step in order; each is idempotent.

    Raises:
        OperationError: A step failed; the message says which and how to fix it.
    """
    if sys.version_info[:2] != (3, 11):
        raise OperationError(
            f"Concierge's app runs on Python 3.11, not {sys.version.split()[0]}.",
            hint="use the Makefile (`make run`), which creates .venv on Python 3.11",
        )
    started = time.monotonic()
    prepare_directories(settings)
    environments.ensure_rasa_environment(settings, console)
    check_embedding_model(console)
    export_query_encoder(settings, console)
    migrate_and_seed(settings, console, demo_data=demo_data)
    build_knowledge_index(settings, console)
    frontend.ensure_frontend_packages(settings, console)
    training.train(settings, console)
    if for_tests:
        environments.ensure_test_packages(console, log_dir=settings.log_dir)
    if large_encoder:
        from bot.ops.large_encoder import install_large_encoder

        install_large_encoder(settings.models_dir, console)
    console.print(f"[bold green]Set-up complete[/] in {time.monotonic() - started:.0f} s.")


def _redact(url: str) -> str:
    """Hide a password in a database URL before printing it."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
