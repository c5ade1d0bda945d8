"""Two real bot-service processes on one database: races are settled by the database.

Each replica is ``python -m bot web`` on its own port, sharing the SQLite file (WAL), the
service token and a throwaway redis-server (``CONCIERGE_REDIS_URL``), exactly as two
replicas behind a load balancer would. Requests are fired at both at the same moment;
whatever the interleaving, the outcome must be one ticket per conversation (the partial
unique index) and one agent per ticket (a conditional update), never an error; and an
agent's reply sent through one replica reaches a customer connected to the other.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import websockets
from sqlalchemy import text

from bot.accounts.demo import seed_demo_database
from bot.agents.service import create_agent
from bot.db.session import create_db_engine, create_session_factory, upgrade_database
from bot.handoff.models import Ticket
from bot.ops.stack import free_port
from tests.helpers.desk import DeskUser
from tests.helpers.desk import sign_in as sign_in_form
from tests.helpers.redis_server import running_redis
from tests.helpers.web_process import WebProcess, start_web

TOKEN = "two-replicas-service-token"
CONVERSATIONS = 12
CLAIM_RACES = 8
AGENT_PASSWORD = "two replicas, one desk"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
FRAME_TIMEOUT = 10.0


@dataclass(frozen=True)
class Replicas:
    urls: tuple[str, str]
    database_url: str


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    var_dir = tmp_path_factory.mktemp("replicas-var")
    database_url = f"sqlite:///{var_dir / 'concierge.db'}"
    upgrade_database(database_url)
    seed_demo_database(database_url)
    redis_dir = tmp_path_factory.mktemp("replicas-redis")
    # Nothing listens on this port: telling Rasa of a takeover fails fast, as it may.
    no_rasa_port = free_port()
    with running_redis(redis_dir) as redis_url:
        yield from _start_replicas(var_dir, database_url, redis_url, no_rasa_port)


def _start_replicas(
    var_dir: Path, database_url: str, redis_url: str, rasa_port: int
) -> Iterator[Replicas]:
    env = {
        "CONCIERGE_VAR_DIR": str(var_dir),
        "CONCIERGE_DATABASE_URL": database_url,
        "CONCIERGE_SERVICE_TOKEN": TOKEN,
        "CONCIERGE_REDIS_URL": redis_url,
        "CONCIERGE_RASA_PORT": str(rasa_port),
    }
    started: list[WebProcess] = []
    try:
        for number in range(2):
            started.append(start_web(port=free_port(), env=env, log=var_dir / f"web-{number}.log"))
        yield Replicas(urls=(started[0].url, started[1].url), database_url=database_url)
    finally:
        for web in started:
            web.stop()


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


# -- the desk across replicas ---------------------------------------------------------------------


@dataclass
class SignedInAgent:
    """An agent signed in through one replica's /desk/login, with that session's CSRF token."""

    name: str
    url: str
    cookies: httpx.Cookies
    csrf_token: str

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url,
            cookies=self.cookies,
            headers={"X-CSRF-Token": self.csrf_token, "Accept": "application/json"},
            timeout=30,
        )


def _agent_on(replicas: Replicas, url: str, name: str) -> SignedInAgent:
    """Create a Customer Care agent in the shared database; sign in through ``url``'s form."""
    email = f"{name.split()[0].lower()}.{os.urandom(3).hex()}@desk.example"
    engine = create_db_engine(replicas.database_url)
    try:
        with create_session_factory(engine)() as session:
            agent = create_agent(
                session,
                email=email,
                name=name,
                password=AGENT_PASSWORD,
                team_slugs=("customer-care",),
                actor="test",
            )
            user = DeskUser(agent.id, agent.email, AGENT_PASSWORD, agent.role)
    finally:
        engine.dispose()
    with httpx.Client(base_url=url, timeout=30) as client:
        sign_in_form(client, user)
        queue = client.get("/desk")
        assert queue.status_code == 200, queue.text
        match = CSRF_META.search(queue.text)
        assert match, "the queue page carries no CSRF token"
        return SignedInAgent(name=name, url=url, cookies=client.cookies, csrf_token=match[1])


async def _open_tickets(url: str, count: int) -> list[int]:
    """Start ``count`` conversations and open a Customer Care ticket for each."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    ticket_ids = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for _ in range(count):
            created = await client.post("/api/conversations")
            opened = await client.post(
                "/internal/v1/handoffs",
                headers=headers,
                json={
                    "conversation_id": created.json()["conversation_id"],
                    "reason_code": "customer_request",
                    "reason": "customer asked for a human",
                    "context": {},
                },
            )
            assert opened.status_code == 200, opened.text
            ticket_ids.append(opened.json()["ticket_id"])
    return ticket_ids


async def test_two_agents_claiming_at_once_through_two_replicas_one_wins_one_is_told(
    replicas: Replicas,
) -> None:
    ada = _agent_on(replicas, replicas.urls[0], "Ada Lovelace")
    grace = _agent_on(replicas, replicas.urls[1], "Grace Hopper")
    ticket_ids = await _open_tickets(replicas.urls[0], CLAIM_RACES)

    winners: dict[int, str] = {}
    async with ada.client() as on_a, grace.client() as on_b:
        for number, ticket_id in enumerate(ticket_ids):
            path = f"/desk/api/tickets/{ticket_id}/claim"
            # Alternate who goes first; both requests are in flight together either way.
            pair = [(ada, on_a), (grace, on_b)][:: 1 if number % 2 == 0 else -1]
            responses = await asyncio.gather(*(client.post(path) for _, client in pair))
            by_agent = {
                agent.name: response for (agent, _), response in zip(pair, responses, strict=True)
            }
            statuses = sorted(response.status_code for response in responses)
            assert statuses == [200, 409], [(r.status_code, r.text) for r in responses]
            winner = next(name for name, r in by_agent.items() if r.status_code == 200)
            loser = next(r for r in by_agent.values() if r.status_code == 409)
            assert by_agent[winner].json()["ticket"]["assignee_name"] == winner
            assert loser.json() == {"error": f"{winner} has already claimed this ticket."}
            winners[ticket_id] = winner

    engine = create_db_engine(replicas.database_url)
    try:
        with create_session_factory(engine)() as session:
            for ticket_id, winner in winners.items():
                ticket = session.get(Ticket, ticket_id)
                assert ticket is not None and ticket.status == "assigned"
                assert ticket.assignee is not None and ticket.assignee.name == winner
    finally:
        engine.dispose()


async def _next_message(socket: websockets.ClientConnection) -> dict[str, object]:
    """The next unprompted ``message`` frame (anything else is skipped)."""
    while True:
        frame = json.loads(await asyncio.wait_for(socket.recv(), FRAME_TIMEOUT))
        if frame.get("type") == "message":
            return dict(frame)


async def test_a_reply_sent_through_one_replica_reaches_a_customer_on_the_other(
    replicas: Replicas,
) -> None:
    agent = _agent_on(replicas, replicas.urls[0], "Katherine Johnson")
    customer_url = replicas.urls[1].replace("http://", "ws://") + "/ws/chat"
    async with websockets.connect(customer_url) as socket:
        await socket.send(json.dumps({"type": "hello"}))
        session = json.loads(await asyncio.wait_for(socket.recv(), FRAME_TIMEOUT))
        assert session["type"] == "session"
        history = json.loads(await asyncio.wait_for(socket.recv(), FRAME_TIMEOUT))
        assert history == {"type": "history", "messages": []}

        async with httpx.AsyncClient(base_url=replicas.urls[1], timeout=30) as internal:
            opened = await internal.post(
                "/internal/v1/handoffs",
                headers={"Authorization": f"Bearer {TOKEN}"},
                json={
                    "conversation_id": session["conversation_id"],
                    "reason_code": "customer_request",
                    "reason": "customer asked for a human",
                    "context": {},
                },
            )
        ticket_id = opened.json()["ticket_id"]

        async with agent.client() as desk:
            claimed = await desk.post(f"/desk/api/tickets/{ticket_id}/claim")
            assert claimed.status_code == 200, claimed.text
            joined = await _next_message(socket)
            assert joined["role"] == "system"
            assert joined["text"] == "Katherine from our Customer Care team has joined the chat."

            for text in ("Hello from replica A.", "A second reply, in order."):
                sent = await desk.post(f"/desk/api/tickets/{ticket_id}/reply", json={"text": text})
                assert sent.status_code == 200, sent.text
                frame = await _next_message(socket)
                assert (frame["role"], frame["text"], frame["agent_name"]) == (
                    "agent",
                    text,
                    "Katherine Johnson",
                )
                assert frame["id"] == sent.json()["message"]["id"]
