"""Fifty messages in one second over the web chat socket: one polite sentence, all stored."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from bot.chat import messages
from bot.config import Settings
from bot.conversations.service import history
from bot.db.session import create_db_engine, create_session_factory

BURST = 50


def test_a_burst_is_rate_limited_with_one_polite_sentence(
    client: TestClient, fake_rasa: Any, settings: Settings
) -> None:
    with client.websocket_connect("/ws/chat") as ws:
        ws.send_json({"type": "hello"})
        conversation_id = ws.receive_json()["conversation_id"]
        assert ws.receive_json()["type"] == "history"
        for number in range(BURST):  # all sent before the first answer is read
            ws.send_json({"type": "message", "text": f"hello {number}"})
        shown: list[dict[str, Any]] = []
        turns_done = 0
        while turns_done < BURST:
            frame = ws.receive_json()
            if frame["type"] == "typing" and frame["on"] is False:
                turns_done += 1
            elif frame["type"] == "message":
                shown.append(frame)

    limit = settings.chat_rate_limit_messages
    assert len(fake_rasa.sent) == limit
    assert [(f["role"], f["text"]) for f in shown] == [
        *(("bot", f"echo: hello {n}") for n in range(limit)),
        ("system", messages.RATE_LIMITED),
    ]
    engine = create_db_engine(settings.database_url)
    try:
        with create_session_factory(engine)() as session:
            stored = history(session, conversation_id=conversation_id, limit=200)
            customer = [(m.text, m.status) for m in stored if m.role == "customer"]
    finally:
        engine.dispose()
    assert [text for text, _ in customer] == [f"hello {n}" for n in range(BURST)]
    assert [status for _, status in customer].count("rate_limited") == BURST - limit
