"""A conversation handed back after a long wait keeps who the customer is.

Rasa starts a new session when the customer writes again after
``session_expiration_time``; ``carry_over_slots_to_new_session`` carries the identity and
segment slots into it, through the bounded tracker store. Slow: it loads the trained
model in Rasa's environment (``tests/helpers/rasa_session_probe.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from bot.config import get_settings
from bot.ops.training import model_path

pytestmark = pytest.mark.e2e  # slow: loads the trained Rasa model

PROJECT_ROOT = Path(__file__).resolve().parents[3]
PROBE = PROJECT_ROOT / "tests" / "helpers" / "rasa_session_probe.py"


def test_identity_and_segment_survive_a_hand_back_after_a_long_wait(tmp_path: Path) -> None:
    settings = get_settings()
    model = model_path(settings)
    if not model.exists():
        pytest.fail("no trained Rasa model: run `python -m bot setup` first")
    result = subprocess.run(
        [str(settings.rasa_venv / "bin" / "python"), str(PROBE), str(model), str(tmp_path)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads(result.stdout.strip().splitlines()[-1])

    assert state["carry_over_slots"] is True
    assert state["session_expiration_minutes"] < 120  # the wait outlasts the session
    assert state["sessions"] == 2  # the answer after the wait opened a new session
    assert state["slots"] == {
        "customer_email": "emma.clarke@example.com",
        "customer_name": "Emma Clarke",
        "customer_segment": "b2b",
        "account_name": "Clarke Interiors GmbH",
        "handoff_requested": False,
    }
    assert state["paused"] is False
    assert state["replies"] and state["replies"][0]  # the bot answers again
