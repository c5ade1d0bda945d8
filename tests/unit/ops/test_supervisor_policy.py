"""Restart backoff and what the supervisor writes into service logs."""

from __future__ import annotations

from pathlib import Path

from bot.ops.supervisor import RestartPolicy, ServiceSpec, _redacted


def test_backoff_doubles_up_to_its_ceiling() -> None:
    policy = RestartPolicy(initial_backoff=1.0, max_backoff=5.0)
    assert [policy.backoff(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_the_logged_command_line_hides_tokens() -> None:
    argv = ["rasa", "run", "--auth-token=s3cret-value", "--port", "5005"]
    assert _redacted(argv) == ["rasa", "run", "--auth-token=***", "--port", "5005"]


def test_a_spec_knows_its_port_from_the_health_url() -> None:
    spec = ServiceSpec(
        name="x",
        argv=["x"],
        health_url="http://127.0.0.1:5055/health",
        cwd=Path("."),
        log_path=Path("x.log"),
    )
    assert spec.port == ("127.0.0.1", 5055)
