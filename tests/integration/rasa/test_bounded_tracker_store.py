"""BoundedSQLTrackerStore in Rasa's own environment, beside Rasa's SQLTrackerStore.

The probe (``tests/helpers/rasa_tracker_store_probe.py``) runs in ``.venv-rasa`` and
drives both stores through the same 40-turn conversation, saving twice per turn as
Rasa does.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bot.config import get_settings

PROJECT_ROOT = Path(__file__).resolve().parents[3]
PROBE = PROJECT_ROOT / "tests" / "helpers" / "rasa_tracker_store_probe.py"
MAX_EVENTS = 30
TURNS = 40


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    python = get_settings().rasa_venv / "bin" / "python"
    if not python.exists():
        pytest.fail("no Rasa environment: run `python -m bot setup` first")
    result = subprocess.run(
        [
            str(python),
            str(PROBE),
            str(tmp_path_factory.mktemp("stores")),
            str(MAX_EVENTS),
            str(TURNS),
        ],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_rasa_gets_a_bounded_tracker_however_long_the_conversation(probe: dict[str, Any]) -> None:
    turns = probe["turns"]
    assert turns[-1]["reference_events"] >= 6 * TURNS  # Rasa's own store: everything
    # Bounded: at least MAX_EVENTS events, at most one turn and a session start more.
    assert all(turn["events"] <= MAX_EVENTS + 8 + 12 for turn in turns)
    assert turns[-1]["events"] >= MAX_EVENTS


def test_the_bounded_tracker_has_the_same_state_as_the_whole_one(probe: dict[str, Any]) -> None:
    for turn in probe["turns"]:
        assert turn["slots_equal"], turn
        assert turn["paused_equal"], turn
        assert turn["last_turn_equal"], turn
        assert turn["latest_message_equal"], turn
    paused = [turn["turn"] for turn in probe["turns"] if turn["paused"]]
    assert paused == [20, 21, 22, 23]
    # Identity set at turn 3 survives many snapshots; the e-mail cleared at turn 30 is gone.
    assert probe["slots"]["customer_segment"] == "b2b"
    assert probe["slots"]["customer_email"] is None
    assert probe["slots"]["kb_attempts"] == TURNS - 1


def test_every_event_is_stored_once(probe: dict[str, Any]) -> None:
    assert probe["full_equal"]


def test_a_conversation_keeps_only_the_snapshots_it_can_still_use(probe: dict[str, Any]) -> None:
    rows = [turn["snapshot_rows"] for turn in probe["turns"]]
    assert rows[:4] == [1, 2, 3, 4]  # one per turn while the session is short
    # Then bounded: about MAX_EVENTS / (events per turn) + 2, however long it goes on.
    assert max(rows) <= MAX_EVENTS // 6 + 3
    assert rows[-1] == rows[-10]
    assert probe["turns"][-1]["events"] <= MAX_EVENTS + 8 + 12  # and still used


def test_old_snapshots_are_pruned_by_age(probe: dict[str, Any]) -> None:
    age = probe["age"]
    assert age["rows_before"] == 3  # a row from before created_at existed, an old, a recent
    assert age["senders_after"] == ["new", "recent"]
    assert age["senders_later"] == ["new", "new", "old-2", "recent"]  # not looked at again yet
