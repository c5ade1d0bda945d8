"""Two real bot-service processes on one database: races are settled by the database.

Each replica is ``python -m bot web`` on its own port, sharing the SQLite file (WAL) and
the service token, exactly as two replicas behind a load balancer would. Requests are
fired at both at the same moment; whatever the interleaving, the outcome must be one
ticket per conversation (the partial unique index), never an error.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from bot.accounts.demo import seed_demo_database
from bot.db.session import create_db_engine, upgrade_database
from bot.ops.stack import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[3]
TOKEN = "two-replicas-service-token"
CONVERSATIONS = 12


@dataclass(frozen=True)
class Replicas:
    urls: tuple[str, str]
    database_url: str


def _wait_healthy(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"replica exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"replica at {url} never became healthy")


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    var_dir = tmp_path_factory.mktemp("replicas-var")
    database_url = f"sqlite:///{var_dir / 'concierge.db'}"
    upgrade_database(database_url)
    seed_demo_database(database_url)
    processes: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    try:
        for number in range(2):
            port = free_port()
            log = var_dir / f"web-{number}.log"
            env = {
                **os.environ,
                "CONCIERGE_VAR_DIR": str(var_dir),
                "CONCIERGE_DATABASE_URL": database_url,
                "CONCIERGE_WEB_PORT": str(port),
                "CONCIERGE_SERVICE_TOKEN": TOKEN,
            }
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [sys.executable, "-m", "bot", "web"],
                    cwd=PROJECT_ROOT,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            processes.append(process)
            url = f"http://127.0.0.1:{port}"
            _wait_healthy(process, url, log)
            urls.append(url)
        yield Replicas(urls=(urls[0], urls[1]), database_url=database_url)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


async def test_simultaneous_handoff_requests_on_two_replicas_give_one_ticket(
    replicas: Replicas,
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(timeout=30) as client:
        created = [
            (await client.post(f"{replicas.urls[0]}/api/conversations")).json()["conversation_id"]
            for _ in range(CONVERSATIONS)
        ]

        async def ask(url: str, conversation_id: str) -> httpx.Response:
            return await client.post(
                f"{url}/internal/v1/handoffs",
                headers=headers,
                json={
                    "conversation_id": conversation_id,
                    "reason_code": "customer_request",
                    "reason": "customer asked for a human",
                    "context": {},
                },
            )

        responses = await asyncio.gather(
            *(ask(url, cid) for cid in created for url in replicas.urls)
        )

    assert [r.status_code for r in responses] == [200] * (2 * CONVERSATIONS), [
        r.text for r in responses if r.status_code != 200
    ]
    by_conversation: dict[str, set[int]] = {}
    for response, cid in zip(responses, [c for c in created for _ in range(2)], strict=True):
        by_conversation.setdefault(cid, set()).add(response.json()["ticket_id"])
    assert all(len(ids) == 1 for ids in by_conversation.values())
    assert sum(not r.json()["already_open"] for r in responses) == CONVERSATIONS
    engine = create_db_engine(replicas.database_url)
    try:
        with engine.connect() as connection:
            counts = connection.execute(
                text("SELECT conversation_id, count(*) FROM tickets GROUP BY conversation_id")
            ).all()
    finally:
        engine.dispose()
    assert sorted(count for _, count in counts) == [1] * CONVERSATIONS
