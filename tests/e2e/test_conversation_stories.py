"""Conversation tests (tests/test_stories.yml) run by ``rasa test`` against the trained model.

Also, through the real stack (Rasa, action server): which action handles a question that
quotes an order number, and an out-of-scope-looking message.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import httpx

from bot.config import Settings, get_settings
from bot.ops.environments import rasa_executable
from bot.ops.training import model_path, rasa_environment
from tests.helpers.chat_client import ChatClient


def test_conversation_stories_pass_without_prediction_errors(tmp_path: Path) -> None:
    settings = get_settings()
    result = subprocess.run(
        [
            str(rasa_executable(settings)),
            "test",
            "core",
            "--stories",
            "tests/test_stories.yml",
            "--model",
            str(model_path(settings)),
            "--fail-on-prediction-errors",
            "--out",
            str(tmp_path / "results"),
        ],
        cwd=settings.project_root,
        env=rasa_environment(settings),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    failed = tmp_path / "results" / "failed_test_stories.yml"
    assert not failed.exists() or "steps:" not in failed.read_text()


# --- routing through the real stack: which action answers ---------------------------------


def _ask(settings: Settings, sender: str, text: str) -> tuple[list[dict], list[dict]]:
    """Post one message to Rasa's REST channel; return the replies and the tracker's events."""
    assert settings.rasa_token is not None
    token = {"token": settings.rasa_token.get_secret_value()}
    with httpx.Client(timeout=60) as client:
        replies = client.post(
            f"{settings.rasa_url}/webhooks/rest/webhook", json={"sender": sender, "message": text}
        )
        replies.raise_for_status()
        tracker = client.get(f"{settings.rasa_url}/conversations/{sender}/tracker", params=token)
        tracker.raise_for_status()
    return replies.json(), tracker.json()["events"]


def _actions_after_last_message(events: list[dict]) -> list[str]:
    last_user = max(i for i, event in enumerate(events) if event["event"] == "user")
    return [
        event["name"]
        for event in events[last_user + 1 :]
        if event["event"] == "action" and event["name"] != "action_listen"
    ]


async def test_a_question_quoting_an_order_number_is_answered_and_the_number_noted(
    running_stack: Settings,
) -> None:
    """Through the web chat (the bot service must know the conversation to note identity)."""
    async with ChatClient(running_stack.web_url) as chat:
        frames = await chat.say(
            "my parcel for ORD-271828 was due yesterday and still nothing, where is it"
        )
        conversation_id = _conversation_for(running_stack, chat.token or "")
    events = _tracker_events(running_stack, conversation_id)

    assert _actions_after_last_message(events) == [
        "action_answer_from_knowledge",
        "action_identify_customer",
    ]
    bot = [frame for frame in frames if frame.get("role") == "bot"]
    # The right article comes first: as the answer, or as the first suggestion (the bands
    # decide which; either way it was searched without the order number).
    shown = [f["citation"]["article_id"] for f in bot if f.get("citation")] or [
        json.loads(b["payload"].removeprefix("/choose_article"))["article_id"]
        for f in bot
        for b in f.get("buttons") or []
        if b["payload"].startswith("/choose_article")
    ]
    assert shown[:1] == ["orders-track-my-order"], bot
    assert any(f.get("text", "").startswith("Thanks — I've noted") for f in bot), bot


def _conversation_for(settings: Settings, token: str) -> str:
    from bot.conversations.service import conversation_for_token
    from bot.db.session import create_db_engine, create_session_factory

    engine = create_db_engine(settings.database_url)
    try:
        with create_session_factory(engine)() as session:
            conversation = conversation_for_token(session, token)
            assert conversation is not None
            return str(conversation.id)
    finally:
        engine.dispose()


def _tracker_events(settings: Settings, sender: str) -> list[dict]:
    assert settings.rasa_token is not None
    token = {"token": settings.rasa_token.get_secret_value()}
    tracker = httpx.get(
        f"{settings.rasa_url}/conversations/{sender}/tracker", params=token, timeout=60
    )
    tracker.raise_for_status()
    return list(tracker.json()["events"])


def test_an_out_of_scope_message_reaches_the_knowledge_base(running_stack: Settings) -> None:
    replies, events = _ask(running_stack, f"e2e-oos-{uuid.uuid4().hex}", "tell me a joke")

    user = [event for event in events if event["event"] == "user"][-1]
    assert user["parse_data"]["intent"]["name"] == "out_of_scope"
    assert _actions_after_last_message(events) == ["action_answer_from_knowledge"]
    assert replies[0]["text"].startswith("That's outside what I can help with")
    assert not any("citation" in r.get("custom", {}) for r in replies)
