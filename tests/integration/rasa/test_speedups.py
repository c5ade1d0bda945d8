"""rasa_addons.speedups answers exactly as Rasa does, only faster (run in .venv-rasa)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from bot.config import get_settings

PROJECT_ROOT = Path(__file__).resolve().parents[3]


def test_validation_and_event_lookup_are_unchanged_and_validation_is_faster() -> None:
    python = get_settings().rasa_venv / "bin" / "python"
    result = subprocess.run(
        [str(python), str(PROJECT_ROOT / "tests" / "helpers" / "rasa_speedups_probe.py")],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    before, after = probe["before"], probe["after"]

    assert after["good"] == before["good"] == "valid"
    assert after["bad"] == before["bad"]
    assert after["more"] == before["more"]  # every other kind of bad (and good) response
    assert sum(o.startswith("invalid: ") for o in before["more"]) == 11
    assert before["bad"].startswith("invalid: ") and "custom-actions" in before["bad"]
    assert after["classes"] == before["classes"]
    assert probe["unknown"] == "ValueError"
    assert after["ms"] < before["ms"] / 5
    assert probe["encoded"] == [True] * 4  # the action server reads what json.dumps wrote
    assert probe["nan"] == "NaN"  # as json.dumps writes it
