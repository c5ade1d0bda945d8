"""``python -m bot kb`` forwards to the knowledge editor with the settings as its defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import get_settings
from knowledge import editor
from knowledge import encoder as encoder_module
from tests.helpers.fake_encoder import FakeEncoder
from tests.unit.knowledge.conftest import write_samples


@pytest.fixture
def settings_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    write_samples(tmp_path / "articles")
    monkeypatch.setenv("CONCIERGE_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("CONCIERGE_ARTICLES_DIR", str(tmp_path / "articles"))
    monkeypatch.setenv("CONCIERGE_INDEX_DIR", str(tmp_path / "kb-index"))
    monkeypatch.setenv("CONCIERGE_KB_ANSWER_THRESHOLD", "0.97")
    monkeypatch.setenv("CONCIERGE_KB_SUGGEST_THRESHOLD", "0.96")
    monkeypatch.setenv("CONCIERGE_KB_TOP_K", "2")
    fake = FakeEncoder()
    monkeypatch.setattr(editor, "default_encoder", lambda: fake)  # builds
    monkeypatch.setattr(encoder_module, "default_encoder", lambda: fake)  # queries, no ONNX
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_kb_build_and_search_use_the_settings(
    settings_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["kb", "build"]) == 0
    assert (settings_env / "kb-index" / "current").exists()
    capsys.readouterr()

    assert main(["kb", "search", "I forgot my password", "--json"]) == 0

    data = json.loads(capsys.readouterr().out)
    assert (data["answer_threshold"], data["suggest_threshold"]) == (0.97, 0.96)
    assert len(data["hits"]) == 2


def test_kb_usage_names_the_bot_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kb", "search", "--help"]) == 0
    assert "python -m bot kb search" in capsys.readouterr().out
