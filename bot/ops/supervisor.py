"""Start services as child processes, wait until they are healthy, watch them, stop them cleanly.

Each service runs in its own process group (a new session), so everything it starts
(Sanic's worker processes, for example) belongs to that group and is stopped with it:
SIGTERM to the group, SIGKILL after a timeout. A service whose main process was killed
therefore never leaves a worker behind that still holds its port.

:meth:`Supervisor.watch` can restart a crashed service with exponential backoff
(:class:`RestartPolicy`) and gives up, returning the service, after repeated crashes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import httpx
from rich.console import Console

from bot.ops.commands import tail

logger = logging.getLogger(__name__)

PORT_RELEASE_TIMEOUT_SECONDS = 10.0
_GROUP_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class ServiceSpec:
    """How to start one service and how to know it is ready.

    Attributes:
        after_ready: Called once the service is healthy again after a restart (for
            example to load the action server's index before the next customer turn).
        health_check: Says whether the service is ready, for services that do not speak
            HTTP; ``health_url`` then only names the service's host and port.
    """

    name: str
    argv: list[str]
    health_url: str
    cwd: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    start_timeout: float = 240.0
    after_ready: Callable[[], None] | None = field(default=None, compare=False)
    # Readiness for services that do not speak HTTP (Redis): called instead of a GET.
    health_check: Callable[[], bool] | None = field(default=None, compare=False)

    @property
    def port(self) -> tuple[str, int] | None:
        """The host and port the health URL points at (the service's own listening port)."""
        parts = urlsplit(self.health_url)
        if parts.hostname is None or parts.port is None:
            return None
        return parts.hostname, parts.port


@dataclass(frozen=True)
class RestartPolicy:
    """When ``watch`` restarts a crashed service, and when it gives up.

    Attributes:
        max_crashes: Give up at this many crashes within ``window_seconds``.
        window_seconds: How far back crashes count.
        initial_backoff: Seconds before the first restart; doubled for each further
            crash in the window.
        max_backoff: Longest wait before a restart.
    """

    max_crashes: int = 5
    window_seconds: float = 300.0
    initial_backoff: float = 1.0
    max_backoff: float = 30.0

    def backoff(self, recent_crashes: int) -> float:
        """Seconds to wait before restarting after ``recent_crashes`` crashes in the window."""
        exponent = max(0, recent_crashes - 1)
        return float(min(self.max_backoff, self.initial_backoff * 2**exponent))


@dataclass
class RunningService:
    """A started service: its spec, process and open log file, and its crash record."""

    spec: ServiceSpec
    process: subprocess.Popen[bytes]
    log_file: IO[bytes]
    started_at: float
    ready_after: float | None = None
    crashes: list[float] = field(default_factory=list)
    restarts: int = 0
    restart_at: float | None = None
    last_exit_code: int | None = None

    @property
    def pid(self) -> int:
        """Process id of the service (also its process group id)."""
        return self.process.pid

    def recent_crashes(self, policy: RestartPolicy, now: float) -> int:
        """How many crashes fall within the policy's window before ``now``."""
        return sum(1 for moment in self.crashes if now - moment <= policy.window_seconds)


class ServiceFailedError(RuntimeError):
    """A service exited or never became healthy; carries its name and the end of its log."""

    def __init__(self, service: RunningService, reason: str) -> None:
        self.service_name = service.spec.name
        self.log_path = service.spec.log_path
        self.log_tail = tail(service.spec.log_path, 30)
        self.reason = reason
        super().__init__(f"{self.service_name} {reason}")


class Supervisor:
    """Owns a set of child processes; restarts or stops them, always as whole process groups."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.services: list[RunningService] = []
        self._health_client: httpx.Client | None = None

    def _client(self) -> httpx.Client:
        if self._health_client is None:
            self._health_client = httpx.Client(timeout=2.0)
        return self._health_client

    def start(self, spec: ServiceSpec) -> RunningService:
        """Start ``spec`` in its own process group, its output going to its log file."""
        process, log_file = _spawn(spec)
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
                        if _is_healthy(client, service.spec):
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

    def watch(
        self,
        *,
        poll_seconds: float = 0.5,
        restart: RestartPolicy | None = None,
        stop_timeout: float = 15.0,
    ) -> RunningService:
        """Block until a service is lost for good; return it (the caller stops the others).

        Args:
            poll_seconds: How often the processes are checked.
            restart: Restart crashed services under this policy; ``None`` returns the
                first service that exits.
            stop_timeout: Seconds a crashed service's leftover processes get after SIGTERM
                before SIGKILL.

        Returns:
            The service that exited (without a policy) or that crashed too often.
        """
        while True:
            if restart is None:
                for service in self.services:
                    if service.process.poll() is not None:
                        return service
            else:
                lost = self.check(restart, stop_timeout=stop_timeout)
                if lost is not None:
                    return lost
            time.sleep(poll_seconds)

    def check(self, policy: RestartPolicy, *, stop_timeout: float = 15.0) -> RunningService | None:
        """One pass over the services: restart what crashed, bring back what restarted.

        Args:
            policy: When to restart and when to give up.
            stop_timeout: Seconds a crashed service's leftover processes get after SIGTERM
                before SIGKILL.

        Returns:
            A service that crashed too often (``watch`` gives up on it), else ``None``.
        """
        for service in self.services:
            if self._tend(service, policy, stop_timeout=stop_timeout):
                return service
        return None

    def _tend(self, service: RunningService, policy: RestartPolicy, *, stop_timeout: float) -> bool:
        """Advance one service's restart cycle; True when it crashed too often."""
        now = time.monotonic()
        name = service.spec.name
        if service.restart_at is not None:
            if now >= service.restart_at:
                self._respawn(service)
            return False
        code = service.process.poll()
        if service.ready_after is None:  # (re)starting
            if code is None and _is_healthy(self._client(), service.spec):
                service.ready_after = now - service.started_at
                logger.info(
                    "%s is back pid=%s after %.1f s", name, service.pid, service.ready_after
                )
                self.console.print(
                    f"[green]✓[/] {name} is back ({service.ready_after:.0f} s after restart)"
                )
                self._after_ready(service)
                return False
            if code is None and now - service.started_at <= service.spec.start_timeout:
                return False
            reason = (
                f"exited with code {code} while starting"
                if code is not None
                else f"did not become healthy within {service.spec.start_timeout:.0f} s"
            )
        elif code is None:
            return False
        else:
            reason = f"exited with code {code}"
        return self._crashed(service, policy, reason, now=now, stop_timeout=stop_timeout)

    def _crashed(
        self,
        service: RunningService,
        policy: RestartPolicy,
        reason: str,
        *,
        now: float,
        stop_timeout: float,
    ) -> bool:
        """Record a crash, clear the service's process group, schedule or refuse a restart."""
        _stop_group(service, timeout=stop_timeout)
        service.last_exit_code = service.process.returncode
        service.crashes.append(now)
        recent = service.recent_crashes(policy, now)
        name = service.spec.name
        if recent >= policy.max_crashes:
            logger.error(
                "%s %s; %s crashes within %.0f s, giving up",
                name,
                reason,
                recent,
                policy.window_seconds,
            )
            return True
        delay = policy.backoff(recent)
        service.restart_at = now + delay
        logger.warning(
            "%s %s; restarting in %.1f s (crash %s within %.0f s; giving up at %s)",
            name,
            reason,
            delay,
            recent,
            policy.window_seconds,
            policy.max_crashes,
        )
        self.console.print(
            f"[yellow]! {name} {reason}; restarting in {delay:.0f} s "
            f"(crash {recent} within {policy.window_seconds:.0f} s; "
            f"giving up at {policy.max_crashes})[/]"
        )
        return False

    def _respawn(self, service: RunningService) -> None:
        """Start a crashed service again, once its port is free."""
        port = service.spec.port
        if port is not None and not _wait_for_free_port(*port):
            logger.warning("%s: port %s:%s still taken; starting anyway", service.spec.name, *port)
        service.log_file.close()
        service.process, service.log_file = _spawn(service.spec)
        service.started_at = time.monotonic()
        service.ready_after = None
        service.restart_at = None
        service.restarts += 1
        logger.info(
            "restarted %s pid=%s (restart %s)", service.spec.name, service.pid, service.restarts
        )

    def _after_ready(self, service: RunningService) -> None:
        hook = service.spec.after_ready
        if hook is None:
            return
        try:
            hook()
        except Exception as error:  # not fatal: the next turn just waits longer
            logger.warning("%s: after-ready step failed: %s", service.spec.name, error)

    def _check_alive(self, service: RunningService) -> None:
        code = service.process.poll()
        if code is not None:
            raise ServiceFailedError(service, f"exited with code {code} while starting")

    def stop(self, *, timeout: float = 15.0) -> None:
        """Stop every service as a group: SIGTERM to each process group, SIGKILL after ``timeout``.

        A group whose main process already died is still signalled, so its leftover
        processes (a Sanic worker holding the port) go with it. Returns once each
        service's port can be bound again (the kernel may release a listening socket a
        moment after its process has gone), or after ``PORT_RELEASE_TIMEOUT_SECONDS``
        with a warning.
        """
        for service in reversed(self.services):
            _signal_group(service.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for service in reversed(self.services):
            _stop_group(service, timeout=max(0.1, deadline - time.monotonic()))
            service.log_file.close()
            port = service.spec.port
            if port is not None and not _wait_for_free_port(*port):
                logger.warning("%s: port %s:%s still taken after stop", service.spec.name, *port)
        self.services.clear()
        if self._health_client is not None:
            self._health_client.close()
            self._health_client = None

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _spawn(spec: ServiceSpec) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    spec.log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = spec.log_path.open("ab")
    log_file.write(f"\n--- starting {spec.name}: {' '.join(_redacted(spec.argv))}\n".encode())
    log_file.flush()
    process = subprocess.Popen(
        spec.argv,
        cwd=spec.cwd,
        env={**os.environ, **spec.env},
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, stopped as a whole
    )
    return process, log_file


def _redacted(argv: list[str]) -> list[str]:
    """The command line with token values hidden (it goes into the service's log)."""
    shown: list[str] = []
    for arg in argv:
        name, sep, _value = arg.partition("=")
        shown.append(f"{name}=***" if sep and "token" in name.lower() else arg)
    return shown


def _stop_group(service: RunningService, *, timeout: float) -> None:
    """SIGTERM the service's process group, SIGKILL it after ``timeout``, reap the leader."""
    pgid = service.pid
    _signal_group(pgid, signal.SIGTERM)
    if not _wait_for_empty_group(service.process, pgid, timeout):
        logger.warning("%s did not stop in %.0f s; killing its group", service.spec.name, timeout)
        _signal_group(pgid, signal.SIGKILL)
        _wait_for_empty_group(service.process, pgid, 5.0)
    with contextlib.suppress(subprocess.TimeoutExpired):
        service.process.wait(timeout=5)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _wait_for_empty_group(process: subprocess.Popen[bytes], pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        process.poll()  # reap the leader, so it does not linger as a zombie
        if not group_members(pgid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_GROUP_POLL_SECONDS)


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group ``pgid``.

    Reads ``/proc`` on Linux; elsewhere only tells whether any member exists.
    """
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members: list[int] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ..."; comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 3 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def port_is_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be bound for listening (nothing else listens there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _wait_for_free_port(host: str, port: int) -> bool:
    deadline = time.monotonic() + PORT_RELEASE_TIMEOUT_SECONDS
    while not port_is_free(host, port):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def _is_healthy(client: httpx.Client, spec: ServiceSpec) -> bool:
    if spec.health_check is not None:
        try:
            return spec.health_check()
        except Exception:
            return False
    try:
        return client.get(spec.health_url).status_code == 200
    except httpx.HTTPError:
        return False
