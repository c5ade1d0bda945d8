"""A throwaway redis-server on 127.0.0.1 for tests that need a real one (no persistence)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from bot.ops.environments import REDIS_SERVER_PATH
from bot.ops.stack import free_port


@contextmanager
def running_redis(workdir: Path, *, timeout: float = 15.0) -> Iterator[str]:
    """Start Debian's redis-server on a free loopback port; stop it on exit.

    Args:
        workdir: An empty folder for the server (nothing is saved there).
        timeout: Seconds to wait for the first PING to succeed.

    Yields:
        The server's ``redis://`` URL.
    """
    if not REDIS_SERVER_PATH.exists():
        pytest.fail("redis-server is missing: run `python -m bot setup --for-tests`")
    port = free_port()
    process = subprocess.Popen(
        [
            str(REDIS_SERVER_PATH),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if redis.Redis.from_url(url).ping():
                    break
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("redis-server did not start")
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
