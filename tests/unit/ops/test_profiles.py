"""Run profiles and the endpoints file Rasa gets from them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from bot.config import Settings
from bot.ops.profiles import apply_profile
from bot.ops.stack import (
    TRACKER_STORE_CLASS,
    action_server_spec,
    rasa_spec,
    redis_spec,
    stack_specs,
    write_runtime_endpoints,
)


def _settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(var_dir=tmp_path, rasa_token=SecretStr("a-real-token-123"), **values)


def test_the_default_profile_is_one_process_each_with_rasas_own_lock_store(
    tmp_path: Path,
) -> None:
    settings = apply_profile(_settings(tmp_path), "default")
    endpoints = yaml.safe_load(write_runtime_endpoints(settings).read_text())

    assert endpoints["tracker_store"]["type"] == TRACKER_STORE_CLASS
    assert endpoints["tracker_store"]["max_events"] == settings.rasa_tracker_max_events
    assert "lock_store" not in endpoints
    assert [spec.name for spec in stack_specs(settings)] == ["rasa", "action server", "bot service"]
    assert rasa_spec(settings).env["SANIC_WORKERS"] == "1"
    assert rasa_spec(settings).argv[1:4] == ["-m", "rasa_addons", "run"]


def test_the_best_profile_runs_redis_locks_and_two_rasa_workers(tmp_path: Path) -> None:
    settings = apply_profile(_settings(tmp_path), "best")
    endpoints = yaml.safe_load(write_runtime_endpoints(settings).read_text())

    lock_store = endpoints["lock_store"]
    assert lock_store["type"] == "redis"
    assert lock_store["url"] == "127.0.0.1"
    assert f"redis://127.0.0.1:{lock_store['port']}/0" == settings.rasa_lock_store_url
    assert stack_specs(settings)[0].name == "redis"
    assert rasa_spec(settings).env["SANIC_WORKERS"] == "2"
    assert action_server_spec(settings).env["ACTION_SERVER_SANIC_WORKERS"] == "1"
    assert settings.redis_url == ""  # the bot service keeps its in-process broker
    argv = redis_spec(settings).argv
    assert argv[argv.index("--bind") + 1] == "127.0.0.1"
    assert argv[argv.index("--save") + 1] == ""


def test_several_rasa_workers_need_a_lock_store(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="RASA_LOCK_STORE_URL"):
        _settings(tmp_path, rasa_workers=2)
    with pytest.raises(ValueError, match="RASA_LOCK_STORE_URL"):
        _settings(tmp_path, manage_redis=True)


def test_a_managed_redis_is_loopback_only(tmp_path: Path) -> None:
    settings = _settings(tmp_path, manage_redis=True, rasa_lock_store_url="redis://10.0.0.5:6379/0")
    with pytest.raises(ValueError, match="loopback"):
        redis_spec(settings)


def test_unknown_profiles_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown profile"):
        apply_profile(_settings(tmp_path), "fastest")
