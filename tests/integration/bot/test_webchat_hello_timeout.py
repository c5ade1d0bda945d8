"""A web chat socket opened and never spoken on is closed after the hello timeout.

A real bot-service process (``python -m bot web``) with the timeout shortened through
the environment (``CONCIERGE_CHAT_HELLO_TIMEOUT_SECONDS``); real websocket clients.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from bot.db.session import upgrade_database
from bot.ops.stack import free_port
from tests.helpers.web_process import WebProcess, start_web

pytestmark = [pytest.mark.integration, pytest.mark.network]

HELLO_TIMEOUT = 1.5
CLOSED_LOG_LINE = "websocket sent no hello within"


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebProcess]:
    var_dir = tmp_path_factory.mktemp("hello-timeout")
    database_url = f"sqlite:///{var_dir / 'concierge.db'}"
    upgrade_database(database_url)
    env = {
        "CONCIERGE_VAR_DIR": str(var_dir),
        "CONCIERGE_DATABASE_URL": database_url,
        "CONCIERGE_SERVICE_TOKEN": "hello-timeout-service-token",
        "CONCIERGE_RASA_PORT": str(free_port()),  # nothing listens: no turn reaches Rasa
        "CONCIERGE_CHAT_HELLO_TIMEOUT_SECONDS": str(HELLO_TIMEOUT),
    }
    process = start_web(port=free_port(), env=env, log=var_dir / "web.log")
    try:
        yield process
    finally:
        process.stop()


def _socket_url(web: WebProcess) -> str:
    return web.url.replace("http://", "ws://") + "/ws/chat"


async def _seconds_until_closed(url: str) -> tuple[float, int | None]:
    async with websockets.connect(url) as socket:
        opened = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), timeout=HELLO_TIMEOUT + 10)
        return time.monotonic() - opened, closed.value.rcvd.code if closed.value.rcvd else None


def _count_in_log(log: Path, text: str) -> int:
    return log.read_text(encoding="utf-8", errors="replace").count(text)


async def test_a_silent_socket_is_closed_with_1008_after_the_timeout_and_logged_once(
    web: WebProcess,
) -> None:
    before = _count_in_log(web.log, CLOSED_LOG_LINE)

    elapsed, code = await _seconds_until_closed(_socket_url(web))

    assert code == 1008  # policy violation
    assert HELLO_TIMEOUT - 0.2 <= elapsed <= HELLO_TIMEOUT + 3
    await asyncio.sleep(0.3)  # the log line is written as the socket closes
    assert _count_in_log(web.log, CLOSED_LOG_LINE) == before + 1


async def test_a_socket_that_said_hello_stays_open_past_the_timeout(web: WebProcess) -> None:
    async with websockets.connect(_socket_url(web)) as socket:
        await socket.send(json.dumps({"type": "hello"}))
        assert json.loads(await socket.recv())["type"] == "session"
        assert json.loads(await socket.recv())["type"] == "history"
        await asyncio.sleep(HELLO_TIMEOUT + 1)
        await socket.send(json.dumps({"type": "hello"}))  # still served: history again
        frame = json.loads(await asyncio.wait_for(socket.recv(), timeout=10))
    assert frame["type"] == "history"
