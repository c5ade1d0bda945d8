"""SIGKILL of the real action server mid-load: one polite sentence, nothing lost, restarted.

Twelve web chats ask a question a second while the action server's main process is
killed with SIGKILL (its Sanic worker is orphaned, as in the issue). The supervisor's
restart pass (what ``python -m bot run`` does every second) must stop the whole process
group, free the port and start the service again; meanwhile every customer message is
stored and every turn ends in a bot answer or one polite sentence; afterwards questions
are answered again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

from bot.chat import messages
from bot.config import Settings
from bot.conversations.models import MessageRole
from bot.conversations.service import conversation_for_token, history
from bot.db.session import create_db_engine, create_session_factory
from bot.ops.supervisor import RestartPolicy, RunningService, Supervisor, group_members
from tests.helpers.chat_client import ChatClient

CHATS = 12
QUESTIONS = [
    "how long does delivery take?",
    "can i send back a lamp i bought?",
    "my payment got declined",
]
POLITE = {messages.NO_REPLY, messages.RASA_UNAVAILABLE}
FAST_RESTART = RestartPolicy(max_crashes=3, window_seconds=60, initial_backoff=0.5)
RESTART_TIMEOUT = 180.0
# Below the chat rate limit (10 messages in 10 s): a customer, not a burst.
PAUSE_SECONDS = 1.05


def _action_server(supervisor: Supervisor) -> RunningService:
    return next(s for s in supervisor.services if s.spec.name == "action server")


async def _chat(
    web_url: str, stop: asyncio.Event, turns: list[list[dict]]
) -> tuple[str, list[str]]:
    """Ask questions until told to stop; record each turn's frames.

    Returns:
        The chat's token and the questions it asked.
    """
    asked: list[str] = []
    async with ChatClient(web_url, timeout=60) as chat:
        while not stop.is_set() or len(asked) < 2:
            asked.append(f"{QUESTIONS[len(asked) % len(QUESTIONS)]} ({len(asked)})")
            turns.append(await chat.say(asked[-1]))
            await asyncio.sleep(PAUSE_SECONDS)
        return chat.token or "", asked


async def test_a_killed_action_server_is_restarted_while_customers_lose_nothing(
    running_stack: Settings, stack_supervisor: Supervisor
) -> None:
    service = _action_server(stack_supervisor)
    killed_pid = service.pid
    old_group = set(group_members(killed_pid))
    stop = asyncio.Event()
    turns: list[list[dict]] = []
    chats = [asyncio.create_task(_chat(running_stack.web_url, stop, turns)) for _ in range(CHATS)]
    await asyncio.sleep(2)  # under load
    os.kill(killed_pid, signal.SIGKILL)

    deadline = time.monotonic() + RESTART_TIMEOUT
    while not (service.restarts >= 1 and service.ready_after is not None):
        assert time.monotonic() < deadline, "the action server did not come back"
        gave_up = await asyncio.to_thread(stack_supervisor.check, FAST_RESTART)
        assert gave_up is None
        await asyncio.sleep(0.2)
    await asyncio.sleep(2)  # a few turns after the restart
    stop.set()
    asked_by_token = dict(await asyncio.gather(*chats))

    # The old group is gone, orphaned worker included, and a new process serves the port.
    assert service.pid != killed_pid
    assert not (set(group_members(killed_pid)) & old_group)
    # Every turn ended in an answer or exactly one polite sentence.
    for frames in turns:
        shown = [f for f in frames if f.get("type") == "message"]
        assert shown, frames
        roles = {f["role"] for f in shown}
        if roles != {"bot"}:
            assert [(f["role"], f["text"]) for f in shown] in (
                [("system", text)] for text in POLITE
            ), frames
    assert any(
        [f["text"] for f in frames if f.get("type") == "message"] in ([t] for t in POLITE)
        for frames in turns
    ), "no turn fell into the gap: the kill did not happen mid-load"
    # Nothing lost: every question asked is stored, in order, in its conversation.
    engine = create_db_engine(running_stack.database_url)
    try:
        with create_session_factory(engine)() as session:
            for token, asked in asked_by_token.items():
                conversation = conversation_for_token(session, token)
                assert conversation is not None
                stored = history(session, conversation_id=conversation.id, limit=500)
                customer = [m.text for m in stored if m.role == MessageRole.CUSTOMER.value]
                assert customer == asked
    finally:
        engine.dispose()
    # And questions are answered again.
    async with ChatClient(running_stack.web_url, timeout=60) as chat:
        frames = await chat.say(QUESTIONS[0])
    assert any(f.get("role") == "bot" and f.get("citation") for f in frames), frames
