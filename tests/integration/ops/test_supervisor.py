"""The process supervisor against real child processes on 127.0.0.1."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from rich.console import Console

from bot.ops.stack import free_port
from bot.ops.supervisor import ServiceFailedError, ServiceSpec, Supervisor


def http_server_spec(tmp_path: Path, name: str = "web") -> ServiceSpec:
    port = free_port()
    (tmp_path / "health").write_text("ok")
    return ServiceSpec(
        name=name,
        argv=[sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        health_url=f"http://127.0.0.1:{port}/health",
        cwd=tmp_path,
        log_path=tmp_path / f"{name}.log",
        start_timeout=30,
    )


def crashing_spec(tmp_path: Path) -> ServiceSpec:
    code = "import sys; print('boom: missing model file', flush=True); sys.exit(3)"
    return ServiceSpec(
        name="crasher",
        argv=[sys.executable, "-c", code],
        health_url=f"http://127.0.0.1:{free_port()}/",
        cwd=tmp_path,
        log_path=tmp_path / "crasher.log",
    )


def test_services_become_healthy_and_stop_cleanly(tmp_path: Path) -> None:
    supervisor = Supervisor(Console(stderr=True))
    with supervisor:
        service = supervisor.start(http_server_spec(tmp_path))
        supervisor.wait_until_healthy(show_progress=False)
        assert service.ready_after is not None
        assert service.process.poll() is None
    assert service.process.poll() is not None
    assert supervisor.services == []


def test_a_service_that_dies_while_starting_is_named_with_its_log(tmp_path: Path) -> None:
    with Supervisor(Console(stderr=True)) as supervisor:
        supervisor.start(crashing_spec(tmp_path))
        with pytest.raises(ServiceFailedError) as failure:
            supervisor.wait_until_healthy(show_progress=False)
    assert failure.value.service_name == "crasher"
    assert "exited with code 3" in str(failure.value)
    assert "boom: missing model file" in failure.value.log_tail


def test_watch_returns_the_service_that_died(tmp_path: Path) -> None:
    with Supervisor(Console(stderr=True)) as supervisor:
        healthy = supervisor.start(http_server_spec(tmp_path, "steady"))
        doomed = supervisor.start(http_server_spec(tmp_path, "doomed"))
        supervisor.wait_until_healthy(show_progress=False)
        doomed.process.kill()
        assert supervisor.watch(poll_seconds=0.1) is doomed
        assert healthy.process.poll() is None
