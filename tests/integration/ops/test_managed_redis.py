"""The best profile's Redis, started and stopped by the supervisor like any service."""

from __future__ import annotations

from pathlib import Path

import redis
from pydantic import SecretStr
from rich.console import Console

from bot.config import Settings
from bot.ops.environments import REDIS_SERVER_PATH
from bot.ops.profiles import apply_profile
from bot.ops.stack import redis_spec
from bot.ops.supervisor import Supervisor, port_is_free


def test_the_supervisor_runs_redis_until_it_stops(tmp_path: Path) -> None:
    assert REDIS_SERVER_PATH.exists(), "run `python -m bot setup --for-tests`"
    settings = apply_profile(
        Settings(var_dir=tmp_path, rasa_token=SecretStr("a-real-token-123")), "best"
    )
    spec = redis_spec(settings)
    assert spec.port is not None
    host, port = spec.port
    with Supervisor(Console(stderr=True)) as supervisor:
        supervisor.start(spec)
        supervisor.wait_until_healthy(show_progress=False)
        client = redis.Redis(host=host, port=port)
        try:
            assert client.set("concierge:probe", "1")
        finally:
            client.close()
    assert port_is_free(host, port)
