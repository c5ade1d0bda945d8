"""Train the Rasa model only when its inputs changed (content hash of data, domain and config)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from rich.console import Console

from bot.config import Settings
from bot.ops.commands import run_logged
from bot.ops.environments import RASA_VERSION, rasa_executable
from bot.ops.errors import OperationError

MODEL_NAME = "concierge"
TRAINING_INPUTS = ("data", "domain.yml", "config.yml")


def model_path(settings: Settings) -> Path:
    """Where the trained model archive lives."""
    return settings.models_dir / f"{MODEL_NAME}.tar.gz"


def _stamp_path(settings: Settings) -> Path:
    return settings.models_dir / f"{MODEL_NAME}.sha256"


def training_digest(project_root: Path) -> str:
    """Hash every training input (path and bytes) plus the Rasa version.

    Args:
        project_root: Folder holding ``data/``, ``domain.yml`` and ``config.yml``.

    Returns:
        A hex SHA-256 that changes whenever any training input changes.
    """
    digest = hashlib.sha256(f"rasa=={RASA_VERSION}\n".encode())
    for name in TRAINING_INPUTS:
        root = project_root / name
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in files:
            digest.update(str(path.relative_to(project_root)).encode())
            digest.update(b"\0")
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()


def model_is_current(settings: Settings) -> bool:
    """Whether a trained model exists and was trained from the current inputs."""
    stamp = _stamp_path(settings)
    return (
        model_path(settings).exists()
        and stamp.exists()
        and stamp.read_text().strip() == training_digest(settings.project_root)
    )


def train(settings: Settings, console: Console, *, force: bool = False) -> bool:
    """Train the Rasa model when the inputs changed (or ``force``).

    Returns:
        True when a model was trained, False when the existing one was current.

    Raises:
        OperationError: The Rasa environment is missing or training failed.
    """
    if not force and model_is_current(settings):
        console.print(f"[green]✓[/] Rasa model is up to date ({model_path(settings)})")
        return False
    rasa = rasa_executable(settings)
    if not rasa.exists():
        raise OperationError(
            "The Rasa environment is not installed.", hint="run `python -m bot setup` first"
        )
    digest = training_digest(settings.project_root)
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    run_logged(
        [
            rasa,
            "train",
            "--fixed-model-name",
            MODEL_NAME,
            "--out",
            settings.models_dir,
            "--data",
            "data",
            "--domain",
            "domain.yml",
            "--config",
            "config.yml",
        ],
        console=console,
        title="Training the Rasa model (about 1–2 minutes)",
        log_path=settings.log_dir / "rasa-train.log",
        cwd=settings.project_root,
        env=rasa_environment(settings),
    )
    _stamp_path(settings).write_text(digest)
    return True


def rasa_environment(settings: Settings) -> dict[str, str]:
    """Environment for Rasa processes: quiet TensorFlow, no telemetry, no network look-ups."""
    return {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "RASA_TELEMETRY_ENABLED": "false",
        "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
        "PYTHONWARNINGS": "ignore",
    }
