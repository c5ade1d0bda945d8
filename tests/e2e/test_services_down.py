"""A service going down mid-conversation: the customer gets one polite sentence, nothing is lost."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from bot.chat import messages
from bot.config import Settings
from bot.conversations.service import conversation_for_token, history
from bot.db.session import create_db_engine, create_session_factory
from bot.ops.stack import warm_up_action_server
from bot.ops.supervisor import RunningService, Supervisor
from tests.helpers.chat_client import ChatClient


def _service(supervisor: Supervisor, name: str) -> RunningService:
    return next(s for s in supervisor.services if s.spec.name == name)


@pytest.fixture
def action_server_stopped(
    stack_supervisor: Supervisor, running_stack: Settings
) -> Iterator[RunningService]:
    """Stop the real action server for one test, then start it again for the others."""
    stopped = _service(stack_supervisor, "action server")
    os.killpg(stopped.pid, signal.SIGTERM)
    stopped.process.wait(timeout=30)
    try:
        yield stopped
    finally:
        stack_supervisor.services.remove(stopped)
        stopped.log_file.close()
        stack_supervisor.start(stopped.spec)
        stack_supervisor.wait_until_healthy(show_progress=False)
        warm_up_action_server(running_stack)


async def test_action_server_down_gets_a_polite_sentence_and_keeps_the_message(
    running_stack: Settings, action_server_stopped: RunningService
) -> None:
    question = "how long does delivery take to Spain?"
    async with ChatClient(running_stack.web_url) as chat:
        replies = await chat.say(question)
        token = chat.token

    assert [(r["role"], r["text"]) for r in replies] == [("system", messages.NO_REPLY)]
    engine = create_db_engine(running_stack.database_url)
    try:
        with create_session_factory(engine)() as session:
            conversation = conversation_for_token(session, token or "")
            assert conversation is not None
            stored = [(m.role, m.text) for m in history(session, conversation_id=conversation.id)]
    finally:
        engine.dispose()
    assert ("customer", question) in stored
    web_log = (running_stack.log_dir / "web.log").read_text()
    assert f"rasa returned no reply conversation={conversation.id}" in web_log
