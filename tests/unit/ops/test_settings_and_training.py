from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from bot.cli import main
from bot.config import Settings
from bot.ops.stack import settings_environment, with_run_token
from bot.ops.training import model_is_current, training_digest


def make_project(root: Path) -> Path:
    (root / "data" / "nlu").mkdir(parents=True)
    (root / "data" / "nlu" / "chitchat.yml").write_text("version: '3.1'\n")
    (root / "domain.yml").write_text("version: '3.1'\n")
    (root / "config.yml").write_text("language: en\n")
    return root


def test_paths_derive_from_the_var_dir(tmp_path: Path) -> None:
    settings = Settings(project_root=tmp_path, var_dir=tmp_path / "state")
    assert settings.index_dir == tmp_path / "state" / "index"
    assert settings.models_dir == tmp_path / "state" / "models"
    assert settings.database_url == f"sqlite:///{tmp_path / 'state' / 'concierge.db'}"
    assert settings.articles_dir == tmp_path / "knowledge" / "articles"


@pytest.mark.parametrize("placeholder", ["changethis", "CHANGEME", "secret"])
def test_placeholder_tokens_are_rejected(placeholder: str) -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(rasa_token=SecretStr(placeholder))


def test_suggest_threshold_may_not_exceed_answer_threshold() -> None:
    with pytest.raises(ValidationError, match="kb_suggest_threshold"):
        Settings(kb_answer_threshold=0.4, kb_suggest_threshold=0.6)


def test_settings_round_trip_through_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = with_run_token(Settings(var_dir=tmp_path, web_port=9123, kb_top_k=5))
    for name, value in settings_environment(original).items():
        monkeypatch.setenv(name, value)
    restored = Settings()
    assert restored.model_dump() == original.model_dump()
    assert restored.rasa_token is not None and original.rasa_token is not None
    assert restored.rasa_token.get_secret_value() == original.rasa_token.get_secret_value()


def test_configured_tokens_are_kept_and_missing_ones_are_generated() -> None:
    configured = Settings(
        rasa_token=SecretStr("a-real-random-token-123"),
        service_token=SecretStr("another-real-token-456"),
    )
    assert with_run_token(configured) is configured
    half = with_run_token(Settings(rasa_token=SecretStr("a-real-random-token-123")))
    assert half.rasa_token is not None
    assert half.rasa_token.get_secret_value() == "a-real-random-token-123"
    fresh = with_run_token(Settings())
    for token in (fresh.rasa_token, fresh.service_token):
        assert token is not None and len(token.get_secret_value()) >= 24
    assert fresh.rasa_token != fresh.service_token


def test_training_digest_changes_with_any_training_input(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    before = training_digest(project)
    assert training_digest(project) == before
    (project / "data" / "nlu" / "chitchat.yml").write_text("version: '3.1'\nnlu: []\n")
    after_data = training_digest(project)
    assert after_data != before
    shutil.move(project / "data" / "nlu" / "chitchat.yml", project / "data" / "nlu" / "other.yml")
    assert training_digest(project) != after_data  # a renamed file counts too
    (project / "articles.md").write_text("not a training input")
    assert training_digest(project) == training_digest(project)


def test_model_is_current_only_with_a_matching_stamp(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    settings = Settings(project_root=project, var_dir=project / "var")
    assert not model_is_current(settings)
    settings.models_dir.mkdir(parents=True)
    (settings.models_dir / "concierge.tar.gz").write_bytes(b"model")
    (settings.models_dir / "concierge.sha256").write_text(training_digest(project))
    assert model_is_current(settings)
    (project / "domain.yml").write_text("version: '3.1'\nintents: [greet]\n")
    assert not model_is_current(settings)


def test_cli_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("setup", "run", "train", "doctor", "kb", "web"):
        assert command in out


def test_kb_help_reaches_the_editor(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kb", "--help"]) == 0
    assert "validate" in capsys.readouterr().out


def test_run_without_a_trained_model_says_how_to_fix_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CONCIERGE_VAR_DIR", str(tmp_path))
    from bot.config import get_settings

    get_settings.cache_clear()
    try:
        assert main(["run"]) == 1
    finally:
        get_settings.cache_clear()
    out = capsys.readouterr().out
    assert "not trained" in out and "python -m bot train" in out


def test_rasa_gets_a_token_that_starts_with_a_dash_as_one_argument(tmp_path: Path) -> None:
    from bot.ops.stack import rasa_spec

    settings = Settings(var_dir=tmp_path, rasa_token=SecretStr("-starts-with-a-dash"))
    argv = rasa_spec(settings).argv
    assert "--auth-token=-starts-with-a-dash" in argv
    assert argv[argv.index("--interface") + 1] == "127.0.0.1"
