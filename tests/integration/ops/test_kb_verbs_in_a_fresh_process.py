"""The database verbs of ``python -m bot kb`` in a fresh interpreter, as an operator runs them.

In-process tests import every model first; a fresh ``python -m bot kb import`` once
failed writing its audit row (the audit table's foreign keys could not be resolved because
the tables they point at had not been imported).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.db.session import upgrade_database
from tests.unit.knowledge.conftest import write_samples

pytestmark = pytest.mark.integration


def _kb(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "kb", *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_import_history_and_rollback_in_a_fresh_process(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CONCIERGE_VAR_DIR": str(tmp_path / "var"),
        "CONCIERGE_ARTICLES_DIR": str(write_samples(tmp_path / "articles")),
        "CONCIERGE_INDEX_DIR": str(tmp_path / "index"),
        "COLUMNS": "200",
    }
    upgrade_database(f"sqlite:///{tmp_path / 'var' / 'concierge.db'}")

    imported = _kb(env, "import")
    assert imported.returncode == 0, imported.stderr
    assert "Imported 4 articles" in imported.stdout
    rolled = _kb(env, "rollback", "returns-start-a-return", "1")
    assert rolled.returncode == 0, rolled.stderr
    history = _kb(env, "history", "returns-start-a-return")
    assert history.returncode == 0, history.stderr
    assert "rollback to revision 1" in history.stdout and "Traceback" not in history.stderr
