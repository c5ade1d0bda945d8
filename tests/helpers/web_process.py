"""Start and stop a real bot-service process (``python -m bot web``) for integration tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 60.0


@dataclass
class WebProcess:
    """One running bot-service process and where it listens."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> None:
        """Terminate it (SIGTERM, then SIGKILL after 15 s)."""
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def start_web(*, port: int, env: dict[str, str], log: Path) -> WebProcess:
    """Start ``python -m bot web`` on ``port`` with ``CONCIERGE_*`` variables from ``env``.

    Waits until ``/health`` answers; fails the test with the log's end otherwise.
    """
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "web"],
            cwd=PROJECT_ROOT,
            env={**os.environ, **env, "CONCIERGE_WEB_PORT": str(port)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    web = WebProcess(process=process, url=f"http://127.0.0.1:{port}", log=log)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"bot service exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{web.url}/health", timeout=2).status_code == 200:
                return web
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    web.stop()
    pytest.fail(f"bot service at {web.url} never became healthy")
