"""Start services as child processes, wait until they are healthy, watch them, stop them cleanly."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
from rich.console import Console

from bot.ops.commands import tail

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceSpec:
    """How to start one service and how to know it is ready."""

    name: str
    argv: list[str]
    health_url: str
    cwd: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    start_timeout: float = 240.0


@dataclass
class RunningService:
    """A started service: its spec, process and open log file."""

    spec: ServiceSpec
    process: subprocess.Popen[bytes]
    log_file: IO[bytes]
    started_at: float
    ready_after: float | None = None

    @property
    def pid(self) -> int:
        """Process id of the service."""
        return self.process.pid


class ServiceFailedError(RuntimeError):
    """A service exited or never became healthy; carries its name and the end of its log."""

    def __init__(self, service: RunningService, reason: str) -> None:
        self.service_name = service.spec.name
        self.log_path = service.spec.log_path
        self.log_tail = tail(service.spec.log_path, 30)
        self.reason = reason
        super().__init__(f"{self.service_name} {reason}")


class Supervisor:
    """Owns a set of child processes; stops all of them when one dies or on request."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.services: list[RunningService] = []

    def start(self, spec: ServiceSpec) -> RunningService:
        """Start ``spec`` in its own process group, its output going to its log file."""
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = spec.log_path.open("ab")
        log_file.write(f"\n--- starting {spec.name}: {' '.join(spec.argv)}\n".encode())
        log_file.flush()
        process = subprocess.Popen(
            spec.argv,
            cwd=spec.cwd,
            env={**os.environ, **spec.env},
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        service = RunningService(spec, process, log_file, started_at=time.monotonic())
        self.services.append(service)
        logger.info("started %s pid=%s log=%s", spec.name, process.pid, spec.log_path)
        return service

    def wait_until_healthy(self, *, show_progress: bool = True) -> None:
        """Poll every service's health URL until all answer 200.

        Raises:
            ServiceFailedError: A service exited, or did not get healthy within its timeout.
        """
        pending = [s for s in self.services if s.ready_after is None]
        with httpx.Client(timeout=2.0) as client:
            status = self.console.status("Starting services…") if show_progress else None
            if status is not None:
                status.start()
            try:
                while pending:
                    for service in list(pending):
                        self._check_alive(service)
                        if _is_healthy(client, service.spec.health_url):
                            service.ready_after = time.monotonic() - service.started_at
                            pending.remove(service)
                            if show_progress:
                                self.console.print(
                                    f"[green]✓[/] {service.spec.name} is ready "
                                    f"({service.ready_after:.0f} s)"
                                )
                        elif time.monotonic() - service.started_at > service.spec.start_timeout:
                            raise ServiceFailedError(
                                service,
                                f"did not become healthy within {service.spec.start_timeout:.0f} s",
                            )
                    if status is not None and pending:
                        waiting = ", ".join(
                            f"{s.spec.name} {time.monotonic() - s.started_at:.0f} s"
                            for s in pending
                        )
                        status.update(f"Starting services… waiting for {waiting}")
                    if pending:
                        time.sleep(0.5)
            finally:
                if status is not None:
                    status.stop()

    def watch(self, *, poll_seconds: float = 0.5) -> RunningService:
        """Block until a service exits; return it (the caller then stops the others)."""
        while True:
            for service in self.services:
                if service.process.poll() is not None:
                    return service
            time.sleep(poll_seconds)

    def _check_alive(self, service: RunningService) -> None:
        code = service.process.poll()
        if code is not None:
            raise ServiceFailedError(service, f"exited with code {code} while starting")

    def stop(self, *, timeout: float = 15.0) -> None:
        """Stop every service: SIGTERM to its process group, then SIGKILL after ``timeout``."""
        for service in reversed(self.services):
            if service.process.poll() is None:
                _signal_group(service.process, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for service in reversed(self.services):
            remaining = max(0.1, deadline - time.monotonic())
            try:
                service.process.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop in time; killing it", service.spec.name)
                _signal_group(service.process, signal.SIGKILL)
                service.process.wait(timeout=5)
            service.log_file.close()
        self.services.clear()

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def _is_healthy(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url).status_code == 200
    except httpx.HTTPError:
        return False
