"""Process groups and restarts: a killed service leaves no worker on its port and comes back."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from bot.ops import supervisor as supervisor_module
from bot.ops.stack import free_port
from bot.ops.supervisor import (
    RestartPolicy,
    RunningService,
    ServiceSpec,
    Supervisor,
    group_members,
    port_is_free,
)

# A service shaped like Sanic's: the main process starts a worker process that listens on
# the port, and only waits. Killing the main process alone orphans the worker.
FORKING_SERVICE = """
import subprocess, sys, time
worker = subprocess.Popen(
    [sys.executable, "-m", "http.server", sys.argv[1], "--bind", "127.0.0.1"]
)
print(f"main waiting, worker pid={worker.pid}", flush=True)
while True:
    time.sleep(1)
"""

FAST_RESTARTS = RestartPolicy(
    max_crashes=3, window_seconds=60, initial_backoff=0.1, max_backoff=0.5
)


def forking_spec(tmp_path: Path, port: int) -> ServiceSpec:
    (tmp_path / "health").write_text("ok")
    script = tmp_path / "forking_service.py"
    script.write_text(FORKING_SERVICE)
    return ServiceSpec(
        name="forker",
        argv=[sys.executable, str(script), str(port)],
        health_url=f"http://127.0.0.1:{port}/health",
        cwd=tmp_path,
        log_path=tmp_path / "forker.log",
        start_timeout=30,
    )


def until(condition: Callable[[], bool], timeout: float, step: Callable[[], None]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        step()
        time.sleep(0.1)


def is_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def worker_pids(service: RunningService) -> list[int]:
    return [pid for pid in group_members(service.pid) if pid != service.pid]


def test_stopping_a_service_whose_main_process_was_killed_frees_its_port(tmp_path: Path) -> None:
    port = free_port()
    supervisor = Supervisor(Console(stderr=True))
    with supervisor:
        service = supervisor.start(forking_spec(tmp_path, port))
        supervisor.wait_until_healthy(show_progress=False)
        orphans = worker_pids(service)
        assert orphans, "the service should have a worker process"

        os.kill(service.pid, signal.SIGKILL)
        service.process.wait(timeout=10)
        # The worker outlives its parent and still answers on the port...
        assert httpx.get(service.spec.health_url, timeout=5).status_code == 200
    # ...until the supervisor stops the whole group.
    assert group_members(service.pid) == []
    assert port_is_free("127.0.0.1", port)


def test_a_killed_service_is_restarted_on_its_freed_port(tmp_path: Path) -> None:
    port = free_port()
    supervisor = Supervisor(Console(stderr=True))
    with supervisor:
        service = supervisor.start(forking_spec(tmp_path, port))
        supervisor.wait_until_healthy(show_progress=False)
        first_pid, first_workers = service.pid, worker_pids(service)

        os.kill(first_pid, signal.SIGKILL)
        service.process.wait(timeout=10)
        assert supervisor.check(FAST_RESTARTS, stop_timeout=5) is None
        # The crash was noticed: the old group is gone and the port is free again.
        assert service.crashes and service.restart_at is not None
        assert group_members(first_pid) == []
        assert not any(is_alive(pid) for pid in first_workers)
        assert port_is_free("127.0.0.1", port)

        def step() -> None:
            assert supervisor.check(FAST_RESTARTS, stop_timeout=5) is None

        until(lambda: service.restarts == 1 and service.ready_after is not None, 30, step)
        assert service.pid != first_pid
        assert httpx.get(service.spec.health_url, timeout=5).status_code == 200
        assert service.last_exit_code == -signal.SIGKILL
    assert port_is_free("127.0.0.1", port)


def test_watch_gives_up_on_a_service_that_keeps_crashing(tmp_path: Path) -> None:
    code = "import sys; print('boom: missing model file', flush=True); sys.exit(3)"
    spec = ServiceSpec(
        name="crasher",
        argv=[sys.executable, "-c", code],
        health_url=f"http://127.0.0.1:{free_port()}/",
        cwd=tmp_path,
        log_path=tmp_path / "crasher.log",
        start_timeout=30,
    )
    started = time.monotonic()
    with Supervisor(Console(stderr=True)) as supervisor:
        supervisor.start(spec)
        lost = supervisor.watch(poll_seconds=0.05, restart=FAST_RESTARTS, stop_timeout=5)
    assert lost.spec.name == "crasher"
    assert len(lost.crashes) == FAST_RESTARTS.max_crashes
    assert lost.restarts == FAST_RESTARTS.max_crashes - 1
    assert lost.last_exit_code == 3
    # Backoff doubled between restarts: 0.1 s, then 0.2 s.
    assert time.monotonic() - started >= 0.3
    log_lines = (tmp_path / "crasher.log").read_text().splitlines()
    assert log_lines.count("boom: missing model file") == 3


def test_a_service_that_recovers_is_not_given_up(tmp_path: Path) -> None:
    """Crashes older than the policy's window are forgotten."""
    port = free_port()
    policy = RestartPolicy(max_crashes=2, window_seconds=0.5, initial_backoff=0.1)
    with Supervisor(Console(stderr=True)) as supervisor:
        service = supervisor.start(forking_spec(tmp_path, port))
        supervisor.wait_until_healthy(show_progress=False)
        for expected_restarts in (1, 2):
            time.sleep(0.6)  # the previous crash falls out of the window
            os.kill(service.pid, signal.SIGKILL)

            def step() -> None:
                assert supervisor.check(policy, stop_timeout=5) is None

            until(
                lambda n=expected_restarts: (
                    service.restarts == n and service.ready_after is not None
                ),
                30,
                step,
            )
    assert port_is_free("127.0.0.1", port)


def test_stop_waits_for_the_port_and_warns_when_it_stays_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Something outside the service's group holds its port: stop() waits (here 0.3 s,
    # PORT_RELEASE_TIMEOUT_SECONDS), then says so instead of returning as if it were free.
    monkeypatch.setattr(supervisor_module, "PORT_RELEASE_TIMEOUT_SECONDS", 0.3)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        spec = ServiceSpec(
            name="sleeper",
            argv=[sys.executable, "-c", "import time; time.sleep(60)"],
            health_url=f"http://127.0.0.1:{port}/health",
            cwd=tmp_path,
            log_path=tmp_path / "sleeper.log",
            health_check=lambda: True,
        )
        supervisor = Supervisor(Console(stderr=True))
        supervisor.start(spec)
        started = time.monotonic()
        with caplog.at_level("WARNING", logger="bot.ops.supervisor"):
            supervisor.stop()

    assert time.monotonic() - started >= 0.3
    assert f"sleeper: port 127.0.0.1:{port} still taken after stop" in caplog.text
