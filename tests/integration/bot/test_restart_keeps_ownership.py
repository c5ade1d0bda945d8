"""The bot service restarted while a person owns a conversation: ownership survives.

Who answers lives in the database, not in the process: after a restart the customer's
next message still goes to the agent, never to Rasa (no Rasa runs here, so a message
forwarded to it would come back as the "can't reach my answer service" apology).
"""

from __future__ import annotations

import json

import pytest
import websockets
from sqlalchemy import select

from bot.accounts.demo import seed_demo_database
from bot.agents.service import create_agent
from bot.chat import messages
from bot.conversations.models import Conversation, Message
from bot.db.session import create_db_engine, create_session_factory, upgrade_database
from bot.handoff import service as tickets
from bot.ops.stack import free_port
from tests.helpers.web_process import start_web


async def _say(url: str, token: str, text: str) -> list[dict]:
    """One customer turn over the websocket; the frames until typing goes off."""
    async with websockets.connect(url.replace("http://", "ws://") + "/ws/chat") as socket:
        await socket.send(json.dumps({"type": "hello", "token": token}))
        assert json.loads(await socket.recv())["type"] == "history"
        await socket.send(json.dumps({"type": "message", "text": text}))
        frames = []
        while True:
            frame = json.loads(await socket.recv())
            if frame["type"] == "typing" and frame["on"] is False:
                return frames
            frames.append(frame)


async def test_a_restarted_service_keeps_the_agent_in_charge(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    var_dir = tmp_path_factory.mktemp("restart-var")
    database_url = f"sqlite:///{var_dir / 'concierge.db'}"
    upgrade_database(database_url)
    seed_demo_database(database_url)
    env = {
        "CONCIERGE_VAR_DIR": str(var_dir),
        "CONCIERGE_DATABASE_URL": database_url,
        "CONCIERGE_RASA_PORT": str(free_port()),  # nothing listens there
        "CONCIERGE_RASA_TIMEOUT_SECONDS": "2",
    }
    port = free_port()
    web = start_web(port=port, env=env, log=var_dir / "web.log")
    try:
        import httpx

        created = httpx.post(f"{web.url}/api/conversations").json()
    finally:
        web.stop()

    engine = create_db_engine(database_url)
    sessions = create_session_factory(engine)
    with sessions() as session:
        agent = create_agent(
            session,
            email="alex@kestrel.example",
            name="Alex Morgan",
            password="correct-horse-battery",
            team_slugs=["customer-care"],
        )
        opened = tickets.open_ticket(
            session,
            conversation_id=created["conversation_id"],
            reason_code="customer_request",
            reason="customer asked for a human",
            context={},
        )
        tickets.claim_ticket(session, ticket_id=opened.ticket.id, agent=agent)

    restarted = start_web(port=port, env=env, log=var_dir / "web.log")
    try:
        frames = await _say(restarted.url, created["token"], "are you still there?")
    finally:
        restarted.stop()

    # Not forwarded: no bot reply, and no "can't reach my answer service" apology.
    assert [frame for frame in frames if frame["type"] != "typing"] == []
    assert messages.RASA_UNAVAILABLE not in json.dumps(frames)
    with sessions() as session:
        conversation = session.get(Conversation, created["conversation_id"])
        stored = session.scalars(
            select(Message.text).where(Message.conversation_id == created["conversation_id"])
        ).all()
    engine.dispose()
    assert conversation is not None and conversation.mode == "agent"
    assert "are you still there?" in stored
