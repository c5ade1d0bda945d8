"""Conversation tests (tests/test_stories.yml) run by ``rasa test`` against the trained model."""

from __future__ import annotations

import subprocess
from pathlib import Path

from bot.config import get_settings
from bot.ops.environments import rasa_executable
from bot.ops.training import model_path, rasa_environment


def test_conversation_stories_pass_without_prediction_errors(tmp_path: Path) -> None:
    settings = get_settings()
    result = subprocess.run(
        [
            str(rasa_executable(settings)),
            "test",
            "core",
            "--stories",
            "tests/test_stories.yml",
            "--model",
            str(model_path(settings)),
            "--fail-on-prediction-errors",
            "--out",
            str(tmp_path / "results"),
        ],
        cwd=settings.project_root,
        env=rasa_environment(settings),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    failed = tmp_path / "results" / "failed_test_stories.yml"
    assert not failed.exists() or "steps:" not in failed.read_text()
