from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from bot.channels import webchat as chat_routes
from bot.chat import messages
from bot.config import Settings
from bot.conversations.models import Conversation


def _hello(ws: WebSocketTestSession, token: str | None = None) -> tuple[str | None, list[dict]]:
    """Say hello; return the new token (if one was issued) and the history."""
    frame: dict[str, Any] = {"type": "hello"}
    if token is not None:
        frame["token"] = token
    ws.send_json(frame)
    first = ws.receive_json()
    new_token = None
    if first["type"] == "session":
        new_token = first["token"]
        first = ws.receive_json()
    assert first["type"] == "history"
    return new_token, first["messages"]


def _turn(ws: WebSocketTestSession, frame: dict[str, Any], replies: int) -> list[dict]:
    ws.send_json(frame)
    assert ws.receive_json() == {"type": "typing", "on": True}
    received = [ws.receive_json() for _ in range(replies)]
    assert ws.receive_json() == {"type": "typing", "on": False}  # typing off ends the turn
    return received


def test_hello_without_token_starts_a_conversation(client: TestClient) -> None:
    with client.websocket_connect("/ws/chat") as ws:
        ws.send_json({"type": "hello"})
        session = ws.receive_json()
        history = ws.receive_json()

    assert session["type"] == "session"
    assert len(session["token"]) >= 40
    assert len(session["conversation_id"]) == 32
    assert history == {"type": "history", "messages": []}


def test_message_gets_reply_with_citation_and_buttons(client: TestClient, fake_rasa: Any) -> None:
    fake_rasa.replies["How do returns work?"] = [
        {
            "text": "You can return most items within 30 days.",
            "buttons": [{"title": "Start a return", "payload": "/start_return"}],
        },
        {
            "custom": {
                "citation": {
                    "article_id": "returns-start-a-return",
                    "title": "How do I return an item?",
                    "score": 0.78,
                }
            }
        },
    ]
    with client.websocket_connect("/ws/chat") as ws:
        token, _ = _hello(ws)
        (reply,) = _turn(ws, {"type": "message", "text": "How do returns work?"}, 1)

    assert reply["type"] == "message"
    assert reply["role"] == "bot"
    assert reply["text"] == "You can return most items within 30 days."
    assert reply["buttons"] == [{"title": "Start a return", "payload": "/start_return"}]
    assert reply["citation"]["article_id"] == "returns-start-a-return"
    assert reply["citation"]["title"] == "How do I return an item?"
    assert isinstance(reply["id"], int)
    assert reply["created_at"].endswith(("Z", "+00:00"))
    # The sender id is the server-side conversation id, not anything from the client.
    conversation_id = fake_rasa.sent[0]["sender"]
    assert len(conversation_id) == 32 and conversation_id != token


def test_button_sends_payload_and_shows_title(client: TestClient, fake_rasa: Any) -> None:
    fake_rasa.replies["/start_return"] = [{"text": "Which order?"}]
    with client.websocket_connect("/ws/chat") as ws:
        token, _ = _hello(ws)
        (reply,) = _turn(
            ws, {"type": "button", "title": "Start a return", "payload": "/start_return"}, 1
        )
    assert reply["text"] == "Which order?"
    assert fake_rasa.sent[-1]["message"] == "/start_return"

    with client.websocket_connect("/ws/chat") as ws:
        _, history = _hello(ws, token)
    assert [(m["role"], m["text"]) for m in history] == [
        ("customer", "Start a return"),
        ("bot", "Which order?"),
    ]


def test_history_replayed_on_reconnect_with_token(client: TestClient) -> None:
    with client.websocket_connect("/ws/chat") as ws:
        token, _ = _hello(ws)
        _turn(ws, {"type": "message", "text": "first"}, 1)
        _turn(ws, {"type": "message", "text": "second"}, 1)

    with client.websocket_connect("/ws/chat") as ws:
        new_token, history = _hello(ws, token)

    assert new_token is None  # same conversation, no new session
    assert [(m["role"], m["text"]) for m in history] == [
        ("customer", "first"),
        ("bot", "echo: first"),
        ("customer", "second"),
        ("bot", "echo: second"),
    ]


def test_tokens_isolate_conversations(client: TestClient, fake_rasa: Any) -> None:
    with client.websocket_connect("/ws/chat") as ws:
        first_token, _ = _hello(ws)
        _turn(ws, {"type": "message", "text": "my secret order ORD-100231"}, 1)

    with client.websocket_connect("/ws/chat") as ws:
        second_token, history = _hello(ws)
        assert history == []
        _turn(ws, {"type": "message", "text": "hello"}, 1)

    with client.websocket_connect("/ws/chat") as ws:
        unknown_token_reply, history = _hello(ws, "forged-or-expired-token")
    assert unknown_token_reply is not None  # a NEW conversation was started
    assert unknown_token_reply not in (first_token, second_token)
    assert history == []

    with client.websocket_connect("/ws/chat") as ws:
        _, history = _hello(ws, second_token)
    assert all("ORD-100231" not in m["text"] for m in history)
    assert len({sent["sender"] for sent in fake_rasa.sent}) == 2


def test_html_and_script_are_kept_as_text(client: TestClient) -> None:
    text = '<img src=x onerror="alert(1)"><script>alert("x")</script> & done'
    with client.websocket_connect("/ws/chat") as ws:
        token, _ = _hello(ws)
        (reply,) = _turn(ws, {"type": "message", "text": text}, 1)
    assert reply["text"] == f"echo: {text}"

    with client.websocket_connect("/ws/chat") as ws:
        _, history = _hello(ws, token)
    assert history[0]["text"] == text


def test_binary_and_invalid_frames_get_errors_and_connection_survives(client: TestClient) -> None:
    with client.websocket_connect("/ws/chat") as ws:
        _hello(ws)
        ws.send_bytes(b"\xff\xfe\xfd not utf-8")
        assert ws.receive_json() == {"type": "error", "message": messages.INVALID_FRAME}
        ws.send_bytes(b'{"type": "message", "text": "binary json"}')
        assert ws.receive_json()["type"] == "error"
        ws.send_text("{not json")
        assert ws.receive_json()["type"] == "error"
        ws.send_text('["a", "list"]')
        assert ws.receive_json()["type"] == "error"
        ws.send_json({"type": "shout", "text": "?"})
        assert ws.receive_json()["type"] == "error"
        ws.send_json({"type": "message"})
        assert ws.receive_json()["type"] == "error"
        # Still usable afterwards.
        (reply,) = _turn(ws, {"type": "message", "text": "still here"}, 1)
        assert reply["text"] == "echo: still here"


def test_oversized_frame_is_refused_without_storing(
    client: TestClient, fake_rasa: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chat_routes, "MAX_FRAME_CHARS", 5000)
    with client.websocket_connect("/ws/chat") as ws:
        token, _ = _hello(ws)
        ws.send_json({"type": "message", "text": "q" * 6000})
        assert ws.receive_json() == {"type": "error", "message": messages.FRAME_TOO_LARGE}
    with client.websocket_connect("/ws/chat") as ws:
        _, history = _hello(ws, token)
    assert history == []
    assert fake_rasa.sent == []


def test_invalid_frame_before_hello_then_hello(client: TestClient) -> None:
    with client.websocket_connect("/ws/chat") as ws:
        ws.send_bytes(b"\x80\x81")
        assert ws.receive_json()["type"] == "error"
        ws.send_json({"type": "message", "text": "too early"})
        assert ws.receive_json() == {"type": "error", "message": messages.HELLO_FIRST}
        token, history = _hello(ws)
    assert token is not None and history == []


def test_100_kb_message_is_refused_politely_and_stored(client: TestClient, fake_rasa: Any) -> None:
    text = "z" * 100_000
    with client.websocket_connect("/ws/chat") as ws:
        token, _ = _hello(ws)
        (reply,) = _turn(ws, {"type": "message", "text": text}, 1)
    assert reply["role"] == "system"
    assert reply["text"] == messages.MESSAGE_TOO_LONG.format(max_chars=2000)
    assert fake_rasa.sent == []

    with client.websocket_connect("/ws/chat") as ws:
        _, history = _hello(ws, token)
    assert history[0]["text"] == text
    assert history[0]["status"] == "rejected"


def test_empty_message_gets_polite_sentence(client: TestClient, fake_rasa: Any) -> None:
    with client.websocket_connect("/ws/chat") as ws:
        _hello(ws)
        (reply,) = _turn(ws, {"type": "message", "text": "   "}, 1)
    assert reply["text"] == messages.EMPTY_MESSAGE
    assert fake_rasa.sent == []


def test_rasa_down_gives_polite_system_message(client: TestClient, fake_rasa: Any) -> None:
    fake_rasa.down = True
    with client.websocket_connect("/ws/chat") as ws:
        token, _ = _hello(ws)
        (reply,) = _turn(ws, {"type": "message", "text": "anyone?"}, 1)
    assert reply["role"] == "system"
    assert reply["text"] == messages.RASA_UNAVAILABLE

    fake_rasa.down = False
    with client.websocket_connect("/ws/chat") as ws:
        _, history = _hello(ws, token)
    assert [(m["role"], m["status"]) for m in history] == [
        ("customer", "undelivered"),
        ("system", "delivered"),
    ]


def test_handoff_notice_is_passed_on(client: TestClient, fake_rasa: Any) -> None:
    from bot.db.session import create_db_engine, create_session_factory
    from bot.handoff.service import open_ticket

    database_url = client.app.state.settings.database_url  # type: ignore[attr-defined]

    def action_server(sender: str) -> list[dict[str, Any]]:
        engine = create_db_engine(database_url)
        try:
            with create_session_factory(engine)() as session:
                handoff = open_ticket(
                    session,
                    conversation_id=sender,
                    reason_code="customer_request",
                    reason="customer asked for a human",
                    context={},
                ).ticket
        finally:
            engine.dispose()
        return [
            {"recipient_id": sender, "text": "I'm connecting you with a person."},
            {"recipient_id": sender, "custom": {"handoff": {"id": handoff.id, "team": None}}},
        ]

    fake_rasa.handlers["/human_handoff"] = action_server
    with client.websocket_connect("/ws/chat") as ws:
        _hello(ws)
        (reply,) = _turn(
            ws, {"type": "button", "title": "Talk to a person", "payload": "/human_handoff"}, 1
        )
    assert reply["handoff"]["id"] >= 1

    engine = create_db_engine(database_url)
    try:
        with create_session_factory(engine)() as session:
            conversation = session.get(Conversation, fake_rasa.sent[-1]["sender"])
            assert conversation is not None
            assert conversation.mode == "handoff_pending"
            assert conversation.channel == "webchat"
    finally:
        engine.dispose()


def test_second_hello_resends_history(client: TestClient) -> None:
    with client.websocket_connect("/ws/chat") as ws:
        _hello(ws)
        _turn(ws, {"type": "message", "text": "one"}, 1)
        ws.send_json({"type": "hello", "token": "someone-elses-token"})
        frame = ws.receive_json()
    assert frame["type"] == "history"
    assert [m["text"] for m in frame["messages"]] == ["one", "echo: one"]


def test_no_hello_closes_the_connection(
    client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "chat_hello_timeout_seconds", 0.2)
    with client.websocket_connect("/ws/chat") as ws, pytest.raises(WebSocketDisconnect) as caught:
        ws.receive_json()
    assert caught.value.code == 1008


def test_unexpected_failure_in_a_turn_keeps_the_connection(
    client: TestClient, fake_rasa: Any
) -> None:
    def explode(sender: str) -> list[dict[str, Any]]:
        raise RuntimeError("bug in a fake")

    fake_rasa.handlers["boom"] = explode
    with client.websocket_connect("/ws/chat") as ws:
        _hello(ws)
        ws.send_json({"type": "message", "text": "boom"})
        assert ws.receive_json() == {"type": "typing", "on": True}
        assert ws.receive_json() == {"type": "typing", "on": False}
        assert ws.receive_json() == {"type": "error", "message": messages.UNEXPECTED_ERROR}
        (reply,) = _turn(ws, {"type": "message", "text": "after"}, 1)
    assert reply["text"] == "echo: after"


def test_tokens_never_reach_the_logs(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG), client.websocket_connect("/ws/chat") as ws:
        token, _ = _hello(ws)
        _turn(ws, {"type": "message", "text": "hi"}, 1)
    with caplog.at_level(logging.DEBUG), client.websocket_connect("/ws/chat") as ws:
        _hello(ws, token)
    assert token
    assert all(token not in record.getMessage() for record in caplog.records)
